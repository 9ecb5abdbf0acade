"""`ect analyze`: the paper's statistics on the processed dataset, as JSON and as a Markdown and HTML report
with tables and figures. The HTML report embeds its figures, so it is one self-contained file."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from ect.analysis import plots
from ect.analysis.stats import analyze
from ect.raw.atomic import write_json, write_text

SUMMARY_COLUMNS = {
    "runs": ("run_id", "count"),
    "median_total_energy_J": ("total_energy_J", "median"),
    "median_energy_kWh": ("energy_kWh", "median"),
    "median_emissions_gCO2e": ("emissions_gCO2e", "median"),
    "median_duration_s": ("duration_s", "median"),
    "median_energy_per_image_J": ("energy_per_image_J", "median"),
    "median_val_f1": ("val_f1", "median"),
}


def summary_table(runs: pd.DataFrame) -> pd.DataFrame:
    table = runs.groupby(["environment", "architecture"], sort=True).agg(**SUMMARY_COLUMNS).reset_index()
    sources = runs.groupby(["environment", "architecture"], sort=True).apply(
        lambda g: ", ".join(sorted({f"GPU {a} / CPU {b}" for a, b in zip(g["gpu_energy_source"], g["cpu_energy_source"])})),
        include_groups=False)
    table["energy_sources"] = sources.to_numpy()
    return table


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(value) if isinstance(value, float) else str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table; numbers at full precision (repr), never rounded."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


class Document:
    """Builds the Markdown and the HTML version of the report side by side."""

    def __init__(self, title: str, figures_dir: Path):
        self.md, self.html, self.figures_dir = [f"# {title}", ""], [f"<h1>{html.escape(title)}</h1>"], figures_dir

    def heading(self, text: str, level: int = 2) -> None:
        self.md += ["#" * level + " " + text, ""]
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def paragraph(self, text: str) -> None:
        self.md += [text, ""]
        self.html.append(f"<p>{html.escape(text)}</p>")

    def table(self, frame: pd.DataFrame) -> None:
        self.md += [markdown_table(frame), ""]
        self.html.append(frame.map(_cell).to_html(index=False, border=0, classes="ect"))

    def figure(self, path: Path, caption: str) -> None:
        self.md += [f"![{caption}]({path.relative_to(self.figures_dir.parent).as_posix()})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
                 "table.ect{border-collapse:collapse;margin:1em 0;font-size:90%}"
                 "table.ect td,table.ect th{border:1px solid #ccc;padding:3px 6px}img{max-width:100%}")
        page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.md[0][2:])}</title>" \
               f"<style>{style}</style></head><body>{''.join(self.html)}</body></html>"
        return write_text(out_dir / "report.md", "\n".join(self.md) + "\n"), write_text(out_dir / "report.html", page)


def _comparison_tables(doc: Document, name: str, comparison: dict) -> None:
    """One comparison of groups (e.g. architectures on one environment) for one metric."""
    if comparison.get("skipped"):
        doc.paragraph(f"{name}: not tested ({comparison['skipped']}).")
        return
    kruskal = comparison["kruskal_wallis"]
    doc.paragraph(f"{name}: Kruskal-Wallis H = {_cell(kruskal.get('H'))}, p = {_cell(kruskal.get('p'))}, "
                  f"eta squared = {_cell(kruskal.get('eta_squared'))}; Levene p = {_cell(comparison['levene'].get('p'))}.")
    if comparison.get("dunn"):
        pairs = pd.DataFrame(comparison["dunn"])
        cliffs = {(c["a"], c["b"]): c for c in comparison.get("cliffs_delta", [])}
        pairs["cliffs_delta"] = [cliffs.get((a, b), {}).get("delta") for a, b in zip(pairs["a"], pairs["b"])]
        pairs["magnitude"] = [cliffs.get((a, b), {}).get("magnitude") for a, b in zip(pairs["a"], pairs["b"])]
        doc.table(pairs)


def write_report(runs: pd.DataFrame, out_dir: Path, title: str, alpha: float = 0.05, correction: str = "holm",
                 outliers: bool = False, samples_path: Path | None = None, regression: dict | None = None,
                 trend_png: Path | None = None) -> dict:
    """Writes results.json, report.md, report.html and figures/*.png to out_dir; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "figures"
    if runs.empty:
        doc = Document(title, figures)
        doc.paragraph("No aggregated run yet: nothing to analyse.")
        write_json(out_dir / "results.json", {"n_runs": 0, "regression": regression})
        markdown, page = doc.write(out_dir)
        return {"results": str(out_dir / "results.json"), "markdown": str(markdown), "html": str(page),
                "figures": str(figures)}
    results = analyze(runs, alpha=alpha, correction=correction, outliers=outliers)
    if regression is not None:
        results["regression"] = regression
    write_json(out_dir / "results.json", results)

    doc = Document(title, figures)
    doc.paragraph(f"{len(runs)} run(s) of {runs['architecture'].nunique()} architecture(s) on "
                  f"{runs['environment'].nunique()} environment(s); tests at alpha = {alpha}, Dunn's p-values "
                  f"corrected with {correction}; outlier removal {'on' if outliers else 'off'}.")
    doc.heading("Energy per architecture and environment")
    doc.table(summary_table(runs))
    largest = (results.get("energy_reduction") or {}).get("largest")
    if largest:
        doc.paragraph(f"Largest reduction of the median energy: {largest['reduction'] * 100!r} % by running "
                      f"{largest['to']} instead of {largest['from']}.")
    doc.figure(plots.energy_boxplot(runs, figures / "energy_boxplot.png"), "Energy per run (box plots)")
    doc.figure(plots.median_bars(runs, figures / "median_energy.png"), "Median energy per run")
    doc.heading("Energy vs quality: the Pareto front")
    front = results.get("pareto_front") or []
    if front:
        doc.table(pd.DataFrame(front))
    doc.figure(plots.pareto_scatter(runs, front, figures / "pareto.png"), "Median energy vs median F1")
    if runs["gflops"].notna().any():
        doc.figure(plots.energy_vs_gflops(runs, figures / "energy_vs_gflops.png"), "Energy per image vs GFLOPs")
    if samples_path is not None and samples_path.exists():
        latest = runs.sort_values("start").iloc[-1]
        samples = pd.read_parquet(samples_path, filters=[("run_id", "==", latest["run_id"])])
        doc.figure(plots.power_timeline(samples, latest, figures / "power_timeline.png"),
                   f"Power over time of run {latest['run_id']} ({latest['architecture']}, {latest['environment']})")
    doc.heading("Statistics")
    for scope, label in (("by_environment", "environment"), ("by_architecture", "architecture")):
        for key, entry in results.get(scope, {}).items():
            doc.heading(f"{label} {key}: across {entry['across']}s", level=3)
            if "skipped" in entry:
                doc.paragraph(f"Not tested: {entry['skipped']}.")
                continue
            for metric, comparison in entry["metrics"].items():
                _comparison_tables(doc, metric, comparison)
    if outliers:
        removed = results.get("outliers", {}).get("removed", [])
        doc.paragraph(f"Outliers removed before the tests: {len(removed)}.")
        if removed:
            doc.table(pd.DataFrame(removed))
    if regression is not None:
        doc.heading("Nightly regression check")
        rows = [{"architecture": arch, **{k: v for k, v in entry.items() if not isinstance(v, (list, dict))}}
                for arch, entry in regression.get("architectures", {}).items()]
        doc.paragraph(f"Latest DAG run {regression.get('latest_campaign')} against "
                      f"{len(regression.get('baseline_campaigns', []))} previous run(s); regressions: "
                      f"{', '.join(regression.get('regressions', [])) or 'none'}.")
        if rows:
            doc.table(pd.DataFrame(rows))
        if trend_png is not None and trend_png.exists():
            doc.figure(trend_png, "Median energy per DAG run")
    markdown, page = doc.write(out_dir)
    return {"results": str(out_dir / "results.json"), "markdown": str(markdown), "html": str(page),
            "figures": str(figures)}


def list_reports(output_dir: Path) -> dict[str, float]:
    """{name: modification time} of the reports under OUTPUT_DIR: "report" (all environments) and one per
    environment."""
    return {p.parent.name: p.stat().st_mtime for p in Path(output_dir).glob("*/report.html") if p.is_file()}


def index_page(reports: dict[str, float]) -> str:
    """The list of reports, newest first."""
    items = "".join(f'<li><a href="{html.escape(name)}">{html.escape(name)}</a> '
                    f"(updated {pd.Timestamp(mtime, unit='s', tz='UTC'):%Y-%m-%d %H:%M} UTC)</li>"
                    for name, mtime in sorted(reports.items(), key=lambda item: -item[1]))
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>ect energy reports</title></head><body>"
            f"<h1>ect energy reports</h1><ul>{items or '<li>No report yet: run an ect DAG.</li>'}</ul></body></html>")
