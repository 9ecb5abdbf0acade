"""`ect analyze`: the paper's statistics on the processed dataset, as JSON and as a Markdown and HTML report
with tables and figures. The HTML report embeds its figures, so it is one self-contained file."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import pandas as pd

from ect import __version__
from ect.analysis import plots
from ect.analysis.stats import (BACKEND, CELL, analyze, backends, cell_columns, group_label, group_values,
                                median_uncertainty, shows_backend, uncertainty, with_backend, without_one_class_f1)
from ect.backends import DEFAULT_BACKEND
from ect.quality import ONE_CLASS_NOTE
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
    """One row per environment, architecture and backend: runs, medians and energy sources."""
    runs = with_backend(runs)
    keys = ["environment", "architecture", BACKEND]
    table = runs.groupby(keys, sort=True).agg(**SUMMARY_COLUMNS).reset_index()
    sources = runs.groupby(keys, sort=True).apply(
        lambda g: ", ".join(sorted({f"GPU {a} / CPU {b}" for a, b in zip(g["gpu_energy_source"], g["cpu_energy_source"])})),
        include_groups=False)
    table["energy_sources"] = sources.to_numpy()
    measured = runs.dropna(subset=["total_energy_J"])  # the runs behind each median
    bounds = measured.assign(bound=uncertainty(measured, "total_energy_J").to_numpy())
    bound = bounds.groupby(keys, sort=True)["bound"].agg(median_uncertainty)
    table["median_total_energy_uncertainty_J"] = bound.reindex(pd.MultiIndex.from_frame(table[keys])).to_numpy()
    return table


UNCERTAINTY_RULE = ("Energy as median ± its uncertainty: the largest uncertainty of the runs behind the median (a "
                    "median of runs each within ± its own uncertainty of the true energy is within ± the largest); "
                    "each run's from how it was measured (README, Energy measurement: Uncertainty).")


def with_uncertainty(value, bound, scale: float = 1e3) -> str:
    """A value and its uncertainty, both divided by scale (J to kJ): the uncertainty to 2 significant digits, the value
    to the same decimal place but at most 4 significant digits ("5.264 ± 0.012", "0.64 ± 0.32"); "5.264 (uncertainty
    unknown)" for runs processed before uncertainties were recorded; "–" without a value."""
    if value is None or not math.isfinite(value):
        return "–"
    if bound is None or not math.isfinite(bound):
        return f"{value / scale:.4g} (uncertainty unknown)"
    value, bound = value / scale, float(f"{bound / scale:.2g}")
    if bound <= 0:
        return f"{value:.4g} ± 0"
    bound_places = 1 - math.floor(math.log10(bound))
    value_places = 3 - math.floor(math.log10(abs(value))) if value else bound_places
    return f"{value:.{max(0, min(bound_places, value_places))}f} ± {bound:.{max(0, bound_places)}f}"


def _cell(value) -> str:
    """A value as people read it: numbers to 4 significant digits, "–" where there is none (results.json and the
    CSVs keep every digit)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table, numbers to 4 significant digits."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def readable_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """summary_table with readable headers and the units of the figures (kJ, Wh, gCO2e, s); the backend where one
    other than TensorFlow ran (shows_backend)."""
    t = summary_table(runs)
    backend = {"Backend": t[BACKEND]} if shows_backend(t[BACKEND]) else {}
    return pd.DataFrame({
        "Environment": t["environment"], "Architecture": t["architecture"], **backend, "Runs": t["runs"],
        "Median energy (kJ)": [with_uncertainty(v, u) for v, u in zip(t["median_total_energy_J"],
                                                                       t["median_total_energy_uncertainty_J"])],
        "Median energy (Wh)": t["median_energy_kWh"] * 1e3,
        "Median emissions (gCO2e)": t["median_emissions_gCO2e"], "Median duration (s)": t["median_duration_s"],
        "Median energy per image (J)": t["median_energy_per_image_J"], "Median F1": t["median_val_f1"],
        "Energy sources": t["energy_sources"],
    })


def run_label(run) -> str:
    """A run as people name it: "vgg16 · rep 3 · local", "vgg16 · rep 3 · local · jax" on another backend than
    TensorFlow."""
    repetition = run.get("repetition")
    rep = f" · rep {int(repetition)}" if repetition is not None and repetition == repetition else ""
    backend = run.get(BACKEND)
    on = f" · {backend}" if isinstance(backend, str) and shows_backend([backend]) else ""
    return f"{run['architecture']}{rep} · {run['environment']}{on}"


def in_words(label: str) -> str:
    """A cell's label in words: "vgg16@local·jax" -> "vgg16 on local with jax"."""
    return label.replace("@", " on ").replace("·", " with ")


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

    def items(self, texts: list[str]) -> None:
        self.md += [f"- {text}" for text in texts] + [""]
        self.html.append("<ul class='findings'>" + "".join(f"<li>{html.escape(t)}</li>" for t in texts) + "</ul>")

    def footer(self, text: str) -> None:
        self.md += ["---", "", f"*{text}*", ""]
        self.html.append(f"<footer>{html.escape(text)}</footer>")

    def table(self, frame: pd.DataFrame) -> None:
        self.md += [markdown_table(frame), ""]
        head = "".join(f"<th>{html.escape(str(column))}</th>" for column in frame.columns)
        body = "".join("<tr>" + "".join(
            f"<td class='num'>{_cell(v)}</td>" if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>" for row in frame.astype(object).itertuples(index=False))
        self.html.append(f"<table class='ect'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")

    def figure(self, path: Path, caption: str) -> None:
        self.md += [f"![{caption}]({path.relative_to(self.figures_dir.parent).as_posix()})", ""]
        data = base64.b64encode(path.read_bytes()).decode()
        self.html.append(f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        page = f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(self.md[0][2:])}</title>" \
               f"<style>{STYLE}</style></head><body>{''.join(self.html)}</body></html>"
        return write_text(out_dir / "report.md", "\n".join(self.md) + "\n"), write_text(out_dir / "report.html", page)


# Tables scroll inside themselves, never the page: a 1280 px window shows the whole page.
STYLE = ("body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#1b1f23;"
         "line-height:1.45}h1,h2,h3{font-weight:600}"
         "table.ect{display:block;max-width:100%;overflow-x:auto;border-collapse:collapse;margin:1em 0;font-size:90%}"
         "table.ect td,table.ect th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}"
         "table.ect td.num{text-align:right;white-space:nowrap}table.ect th{background:#f6f8fa}"
         "img{max-width:100%}ul.findings li{margin:.3em 0}footer{margin-top:3em;color:#57606a;font-size:85%;"
         "border-top:1px solid #d0d7de;padding-top:1em}")
METRIC_LABELS = {"total_energy_J": "Energy per run", "energy_per_image_J": "Energy per image",
                 "gpu_utilization_mean_pct": "GPU utilisation", "val_f1": "Validation F1"}


def _comparison_tables(doc: Document, name: str, comparison: dict) -> None:
    """One comparison of groups (e.g. architectures on one environment) for one metric."""
    label = METRIC_LABELS.get(name, name)
    if comparison.get("skipped"):
        doc.paragraph(f"{label}: not tested ({comparison['skipped']}).")
        return
    kruskal, levene = comparison["kruskal_wallis"], comparison["levene"]
    if kruskal.get("H") is None:
        text = f"{label}: Kruskal-Wallis {kruskal.get('reason', 'not tested')}"
    else:
        text = (f"{label}: Kruskal-Wallis H = {_cell(kruskal['H'])}, p = {_cell(kruskal['p'])}, eta squared = "
                f"{_cell(kruskal['eta_squared'])}" + (f" ({kruskal['eta_squared_note']})" if kruskal.get("eta_squared_note") else ""))
    text += "; Levene " + (levene.get("reason", "not tested") if levene.get("p") is None else f"p = {_cell(levene['p'])}")
    doc.paragraph(text + ".")
    tested = [pair for pair in comparison.get("dunn", []) if pair.get("p") is not None]
    if not tested:
        if comparison.get("dunn"):
            doc.paragraph(f"Dunn's pairwise test and Cliff's delta {comparison['dunn'][0]['reason']}.")
        return
    cliffs = {(c["a"], c["b"]): c for c in comparison.get("cliffs_delta", [])}
    doc.table(pd.DataFrame({
        "A": [p["a"] for p in tested], "B": [p["b"] for p in tested], "Dunn z": [p["z"] for p in tested],
        "p": [p["p"] for p in tested], "p adjusted": [p["p_adjusted"] for p in tested],
        "significant": ["no: within uncertainty" if p.get("within_uncertainty") else p["significant"] for p in tested],
        "Cliff's delta": [cliffs.get((p["a"], p["b"]), {}).get("delta") for p in tested],
        "magnitude": [cliffs.get((p["a"], p["b"]), {}).get("magnitude") or "–" for p in tested],
    }))


def findings(runs: pd.DataFrame, results: dict, alpha: float) -> list[str]:
    """What the report found, in sentences: the largest reduction (with its interval where n allows), the best
    architecture per environment, the environment effect per architecture."""
    from ect.analysis.regression import ratio_interval
    from ect.analysis.stats import MIN_TEST_N

    runs = with_backend(runs)
    several = len(backends(runs)) > 1
    lines = []
    largest = (results.get("energy_reduction") or {}).get("largest")
    if largest:
        values = group_values(runs, "total_energy_J", cell_columns(runs))
        source, target = values[largest["from"]], values[largest["to"]]
        text = (f"Largest reduction of the median energy: {_cell(100 * largest['reduction'])} % by running "
                f"{in_words(largest['to'])} instead of {in_words(largest['from'])} "
                f"({_cell(largest['from_median_J'] / 1e3)} kJ to {_cell(largest['to_median_J'] / 1e3)} kJ per run)")
        low, high = ratio_interval(target, source, alpha) if min(len(source), len(target)) >= MIN_TEST_N else (0, math.inf)
        if math.isfinite(high):
            text += f"; {_cell(100 * (1 - 2 * alpha))} % interval {_cell(100 * (1 - high))} % to {_cell(100 * (1 - low))} %"
        else:
            text += f"; no interval: n = {len(source)} and {len(target)} runs (needs >= {MIN_TEST_N} each)"
        if largest.get("within_uncertainty") is not None:
            covered = "within" if largest["within_uncertainty"] else "beyond"
            text += (f"; the difference is {covered} the medians' uncertainty together, "
                     f"± {_cell(largest['uncertainty_J'] / 1e3)} kJ")
        lines.append(text + ".")
    per_environment = ["environment", BACKEND] if several else ["environment"]
    for where, group in _medians(runs, per_environment, "architecture"):
        lines.append(f"On {in_words(where)}, {group.idxmin()[-1]} costs the least energy per run: median "
                     f"{_cell(group.min() / 1e3)} kJ, against {_cell(group.max() / 1e3)} kJ for {group.idxmax()[-1]}.")
    scopes = [("by_architecture", ["architecture", BACKEND] if several else ["architecture"], "environment")]
    if several:
        scopes.append(("by_backend", CELL, BACKEND))  # the backend effect per architecture on each environment
    for scope, within, across in scopes:
        for name, group in _medians(runs, within, across):
            tested = (results.get(scope, {}).get(name, {}).get("metrics", {})
                      .get("total_energy_J", {}).get("kruskal_wallis", {}))
            evidence = (f"Kruskal-Wallis p = {_cell(tested['p'])}" if tested.get("p") is not None
                        else tested.get("reason", "not tested"))
            lines.append(f"{in_words(name)}: {group.idxmin()[-1]} needs "
                         f"{_cell(100 * (1 - group.min() / group.max()))} % less energy per run than "
                         f"{group.idxmax()[-1]} (medians; {evidence}).")
    return lines or ["Too few runs for any finding."]


def _medians(runs: pd.DataFrame, within: list[str], across: str) -> list[tuple[str, pd.Series]]:
    """The median energy per run of each value of `across` within each group of `within` that has at least two,
    with the group's name (as the statistics name it: "local", "local·jax", "vgg16@local")."""
    medians = runs.groupby(within + [across])["total_energy_J"].median().dropna()
    return [(group_label(key if isinstance(key, tuple) else (key,), within), group)
            for key, group in medians.groupby(level=within) if len(group) > 1]


def write_report(runs: pd.DataFrame, out_dir: Path, title: str, alpha: float = 0.05, correction: str = "holm",
                 outliers: bool = False, samples_path: Path | None = None, regression: dict | None = None,
                 trend_png: Path | None = None, processed_path: Path | None = None, raw_dir: Path | None = None,
                 backtest: dict | None = None) -> dict:
    """Writes results.json, report.md, report.html and figures/*.png to out_dir; returns their paths. The footer
    names processed_path (the processed runs, e.g. METRICS_DIR/processed/runs.parquet) as the full-precision data.
    raw_dir (the run folders): the latest campaign's projections while training (history.csv) beside what was
    measured; backtest (ect.runs.forecast.backtest_of): the predictors' backtest table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = out_dir / "figures"
    if runs.empty:
        doc = Document(title, figures)
        doc.paragraph("No aggregated run yet: nothing to analyse.")
        write_json(out_dir / "results.json", {"n_runs": 0, "regression": regression})
        markdown, page = doc.write(out_dir)
        return {"results": str(out_dir / "results.json"), "markdown": str(markdown), "html": str(page),
                "figures": str(figures)}
    runs = with_backend(runs)
    results = analyze(runs, alpha=alpha, correction=correction, outliers=outliers)
    if regression is not None:
        results["regression"] = regression
    if backtest is not None:
        from ect.analysis.predict import as_json

        results["backtest"] = as_json(backtest)
    write_json(out_dir / "results.json", results)

    names = results["backends"]
    doc = Document(title, figures)
    doc.paragraph(f"{len(runs)} run(s) of {runs['architecture'].nunique()} architecture(s) on "
                  f"{runs['environment'].nunique()} environment(s) with {len(names)} Keras backend(s) "
                  f"({', '.join(names)}); tests at alpha = {alpha}, Dunn's p-values "
                  f"corrected with {correction}; outlier removal {'on' if outliers else 'off'}.")
    doc.heading("Findings")
    doc.items(findings(runs, results, alpha))
    quality_runs, one_class = without_one_class_f1(runs)  # the same F1 the statistics used
    doc.heading("Energy per architecture and environment")
    doc.table(readable_summary(quality_runs))
    doc.paragraph(UNCERTAINTY_RULE)
    doc.figure(plots.energy_boxplot(runs, figures / "energy_boxplot.png"),
               f"Energy per run: each point a run, a box behind the groups of at least {plots.BOX_MIN_RUNS} runs")
    doc.figure(plots.median_bars(runs, figures / "median_energy.png"), "Median energy per run")
    _trimmed_section(doc, runs)
    _steady_section(doc, runs)
    _backend_section(doc, quality_runs, results)
    _idle_section(doc, runs)
    _warnings_section(doc, runs)
    if raw_dir is not None:
        _projection_section(doc, runs, raw_dir)
    if backtest is not None:
        _backtest_section(doc, backtest)
    doc.heading("Energy vs quality: the Pareto front")
    front = results.get("pareto_front") or []
    by_backend = results.get("pareto_front_by_backend")
    if one_class:
        doc.paragraph(_one_class_text(runs, one_class))
    if front:
        doc.table(pareto_frame(front, shows_backend(names)))
        if by_backend:
            doc.heading("The Pareto front of each backend", level=3)
            doc.table(pareto_frame([f for name in sorted(by_backend) for f in by_backend[name]], True))
        doc.figure(plots.pareto_scatter(quality_runs, front, figures / "pareto.png", by_backend),
                   "Median energy vs median F1" + (", the Pareto front of each backend" if by_backend else ""))
    elif one_class and runs["val_f1"].notna().any():
        doc.paragraph("No Pareto front: every run with a validation F1 predicted one class.")
    else:
        doc.paragraph("No Pareto front: no run has a validation F1 (e.g. runs imported without --model-metrics).")
    if runs["gflops"].notna().any():
        doc.figure(plots.energy_vs_gflops(runs, figures / "energy_vs_gflops.png"), "Energy per image vs GFLOPs")
    if samples_path is not None and samples_path.exists():
        latest = runs.sort_values("start").iloc[-1]
        samples = pd.read_parquet(samples_path, filters=[("run_id", "==", latest["run_id"])])
        doc.figure(plots.power_timeline(samples, latest, figures / "power_timeline.png"),
                   f"Power over time of the latest run ({run_label(latest)})")
    doc.heading("Statistics")
    for scope, label in (("by_environment", "Environment"), ("by_architecture", "Architecture"),
                         ("by_backend", "Backend effect on")):
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
        _regression_section(doc, regression, trend_png)
    latest_run = latest_campaign(runs)
    doc.footer(f"Generated {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC by ect {__version__}"
               + (f" after DAG run {latest_run}" if latest_run else "") + ". Numbers here are rounded to 4 "
               "significant digits; results.json beside this page and the processed runs "
               + (f"({processed_path}) " if processed_path is not None else "") + "keep every digit.")
    markdown, page = doc.write(out_dir)
    return {"results": str(out_dir / "results.json"), "markdown": str(markdown), "html": str(page),
            "figures": str(figures)}


TRIM_MIN_RUNS = 3  # dropping the best and the worst run leaves at least one


def trimmed_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Per environment, architecture and backend: the mean energy per run with the best and the worst run dropped
    (MLPerf Power's rule) beside the plain mean, and the spread of the runs kept, (max - min) / median; with fewer
    than TRIM_MIN_RUNS runs nothing is dropped and the row says so."""
    runs = with_backend(runs)
    rows = []
    for (environment, architecture, backend), group in runs.groupby(["environment", "architecture", BACKEND], sort=True):
        energies = group["total_energy_J"].dropna().sort_values()
        kept = energies.iloc[1:-1] if len(energies) >= TRIM_MIN_RUNS else energies.iloc[:0]
        rows.append({"Environment": environment, "Architecture": architecture, "Backend": backend,
                     "Runs": len(energies), "Mean energy (kJ)": energies.mean() / 1e3 if len(energies) else None,
                     "Trimmed mean energy (kJ)": kept.mean() / 1e3 if len(kept) else None,
                     "Spread of the runs kept (%)": 100 * (kept.max() - kept.min()) / kept.median()
                     if len(kept) >= 2 and kept.median() > 0 else None,  # one run kept has no spread
                     "Note": "" if len(kept) else f"not trimmed: {len(energies)} run(s), needs >= {TRIM_MIN_RUNS}"})
    frame = pd.DataFrame(rows)
    return frame if shows_backend(frame["Backend"]) else frame.drop(columns="Backend")


def _trimmed_section(doc: Document, runs: pd.DataFrame) -> None:
    doc.heading("Trimmed (best and worst run dropped)", level=3)
    doc.paragraph(f"The mean energy per run without the best and the worst run of each architecture (MLPerf Power's "
                  f"rule: one run off at either end moves it little), where there are at least {TRIM_MIN_RUNS} runs.")
    doc.table(trimmed_frame(runs))


STEADY_SECTION_COLUMNS = {"steady_power_W": "Power (W)", "steady_energy_per_epoch_J": "Energy per epoch (J)",
                          "steady_energy_per_image_J": "Energy per image (J)", "steady_duration_s": "Duration (s)"}


def steady_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Per environment, architecture and backend, the medians over its runs of the steady state's mean power, energy
    per epoch and per image and duration (ect.steady), and how many runs have a steady state."""
    runs = with_backend(runs)
    rows = []
    for (environment, architecture, backend), group in runs.groupby(["environment", "architecture", BACKEND], sort=True):
        steady = group[group["steady_energy_per_epoch_J"].notna()] if "steady_energy_per_epoch_J" in group \
            else group.iloc[:0]
        rows.append({"Environment": environment, "Architecture": architecture, "Backend": backend,
                     "Runs with a steady state": f"{len(steady)} of {len(group)}",
                     **{label: steady[column].median() if len(steady) and column in steady else None
                        for column, label in STEADY_SECTION_COLUMNS.items()}})
    frame = pd.DataFrame(rows)
    return frame if shows_backend(frame["Backend"]) else frame.drop(columns="Backend")


def _steady_section(doc: Document, runs: pd.DataFrame) -> None:
    from ect.steady import RULE

    doc.heading("Steady state")
    frame = steady_frame(runs)
    doc.paragraph(f"The training after set-up ({RULE}): medians over the runs of its mean power, energy per epoch, "
                  "energy per image (of the training and validation images of an epoch) and duration.")
    doc.table(frame)
    none = frame[frame["Runs with a steady state"].str.startswith("0 of")]
    if len(none):
        named = ", ".join(f"{row['Architecture']} on {row['Environment']}" for _, row in none.iterrows())
        doc.paragraph(f"No steady state for {named}: too few epochs (each epoch the first of its phase) or no "
                      "per-epoch energy in history.csv.")


def latest_campaign(runs: pd.DataFrame):
    """The campaign (DAG run) id of the runs' latest start; None without campaign ids."""
    return runs.sort_values("start")["campaign_id"].iloc[-1] if "campaign_id" in runs else None


def _projected(row: dict | None, measured: float) -> tuple[str, float | None]:
    """A history row's projection in kJ with its interval, and its error (%) against the measured energy."""
    from ect.numbers import finite
    from ect.projection import PROJECTION_COLUMNS

    total, low, high = (finite(row.get(c)) for c in PROJECTION_COLUMNS[:3]) if row else (None, None, None)
    if total is None:
        return "–", None
    span = f" ({low / 1e3:.4g}–{high / 1e3:.4g})" if low is not None and high is not None else " (no interval)"
    return f"{total / 1e3:.4g}{span}", 100 * (total - measured) / measured if measured else None


def projection_frame(runs: pd.DataFrame, raw_dir: Path) -> pd.DataFrame:
    """The latest campaign's runs: what each projected, while it trained, after its first settled epoch (the first
    that is not the first of its phase) and at halfway (epoch ceil(n / 2) of n), beside the energy it measured; the
    projections from its history.csv (ect.projection), runs without them left out."""
    from ect.analysis.predict import history_rows
    from ect.projection import PROJECTION_COLUMNS

    runs = with_backend(runs)
    if "campaign_id" in runs and runs["campaign_id"].notna().any():
        runs = runs[runs["campaign_id"] == latest_campaign(runs)]
    rows = []
    for _, run in runs.sort_values(["architecture", "run_id"]).iterrows():
        history = history_rows(raw_dir, run)
        if not history or PROJECTION_COLUMNS[0] not in history[0]:
            continue
        phases = [h.get("phase") for h in history]
        settled = next((i for i in range(1, len(history)) if phases[i] == phases[i - 1]), None)
        halfway = math.ceil(len(history) / 2) - 1
        measured = float(run["total_energy_J"])
        early, early_error = _projected(history[settled] if settled is not None else None, measured)
        middle, middle_error = _projected(history[halfway], measured)
        rows.append({"Run": run_label(run), "Trained epochs": len(history), "Measured (kJ)": measured / 1e3,
                     "First settled epoch": settled + 1 if settled is not None else None,
                     "Projected then (kJ)": early, "Error then (%)": early_error,
                     "Halfway epoch": halfway + 1, "Projected at halfway (kJ)": middle,
                     "Error at halfway (%)": middle_error,
                     "Basis at halfway": str(history[halfway].get("projection_basis") or "–").split(";")[0]})
    return pd.DataFrame(rows)


def _projection_section(doc: Document, runs: pd.DataFrame, raw_dir: Path) -> None:
    from ect.projection import LEVEL

    doc.heading("Energy projected while training", level=3)
    frame = projection_frame(runs, raw_dir)
    if frame.empty:
        doc.paragraph("No run of the latest campaign recorded a projection (history.csv without per-epoch energy, or "
                      "from before projections were recorded).")
        return
    doc.paragraph(f"After each epoch a run projects its total energy from the energy so far, its steady energy per "
                  f"epoch and the history's early stopping (README, Projecting a run's energy while it trains); in "
                  f"brackets the {100 * LEVEL:g} % interval. Here after the first settled epoch and at halfway, "
                  "beside the energy measured; the error is (projected - measured) / measured.")
    doc.table(frame)


def _backtest_section(doc: Document, backtest: dict) -> None:
    from ect.analysis.predict import backtest_table

    doc.heading("Predicting a run's energy: backtest", level=3)
    if "predictors" not in backtest:
        doc.paragraph(f"The backtest was not possible: {backtest.get('reason', 'too little history')}.")
        return
    header, rows, lines = backtest_table(backtest)
    doc.paragraph("Each campaign left out in turn and its runs predicted from the others (`ect predict ENVIRONMENT "
                  "--backtest`): MAPE, RMSE and how often the intervals covered the measured energy. A predictor "
                  "whose intervals cover far less or far more than they claim is FLAGGED.")
    doc.table(pd.DataFrame(rows, columns=header))
    flagged = [p["name"] for p in backtest["predictors"].values()
               if any(c.get("flagged") for c in p["coverage"].values())]
    if flagged:
        doc.paragraph(f"Flagged: {', '.join(flagged)}: its intervals do not cover what they claim.")
    doc.items(lines)


def _warnings_section(doc: Document, runs: pd.DataFrame) -> None:
    """The runs kept with validation warnings (fewer samples than expected, a hot start, a short steady state, ...),
    named with the checks that warned: their numbers stand, with the caveat."""
    doc.heading("Validation warnings", level=3)
    if "validation_warning_count" not in runs:
        doc.paragraph("Not known for these processed runs (aggregated by an older ect): run `ect aggregate`.")
        return
    warned = runs[runs["validation_warning_count"].fillna(0) > 0].sort_values(["environment", "architecture", "run_id"])
    if warned.empty:
        doc.paragraph(f"None of the {len(runs)} run(s) passed with a warning.")
        return
    doc.paragraph(f"{len(warned)} of {len(runs)} run(s) passed validation with warnings: they are kept and counted "
                  "above; METRICS_DIR/validation/summary.txt gives each warning with its numbers.")
    doc.table(pd.DataFrame({"Run": [run_label(run) for _, run in warned.iterrows()], "Run id": warned["run_id"],
                            "Warnings": warned["validation_warnings"].str.replace("; ", ", ")}))


def pareto_frame(front: list[dict], backend: bool) -> pd.DataFrame:
    """A Pareto front as people read it, its backend where `backend`."""
    return pd.DataFrame({"Architecture": [f["architecture"] for f in front],
                         "Environment": [f["environment"] for f in front],
                         **({"Backend": [f.get(BACKEND, DEFAULT_BACKEND) for f in front]} if backend else {}),
                         "Median energy (kJ)": [f["median_total_energy_J"] / 1e3 for f in front],
                         "Median F1": [f["median_val_f1"] for f in front]})


def backend_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Energy and F1 per environment, architecture and backend: runs, medians and how much more energy per run each
    backend needs than the cheapest one of that architecture on that environment."""
    table = summary_table(runs)
    cheapest = table.groupby(["environment", "architecture"])["median_total_energy_J"].transform("min")
    return pd.DataFrame({
        "Environment": table["environment"], "Architecture": table["architecture"], "Backend": table[BACKEND],
        "Runs": table["runs"], "Median energy (kJ)": table["median_total_energy_J"] / 1e3,
        "Median F1": table["median_val_f1"],
        "Energy above the cheapest backend (%)": 100 * (table["median_total_energy_J"] / cheapest - 1),
    })


def backend_effect_frame(runs: pd.DataFrame, results: dict) -> pd.DataFrame:
    """The backend effect on the energy per run of each architecture on each environment: Kruskal-Wallis across
    the backends and Cliff's delta of each pair, or why they were not tested."""
    rows = []
    for (environment, architecture), _ in runs.groupby(["environment", "architecture"], sort=True):
        entry = results.get("by_backend", {}).get(group_label((architecture, environment), CELL), {})
        energy = entry.get("metrics", {}).get("total_energy_J", {})
        kruskal = energy.get("kruskal_wallis", {})
        skipped = entry.get("skipped") or energy.get("skipped")
        why = f"not tested: {skipped}" if skipped else kruskal.get("reason", "not tested")
        tested = kruskal.get("p") is not None
        pairs = "; ".join(f"{c['a']} vs {c['b']}: {_cell(c['delta'])} ({c['magnitude']})"
                          for c in energy.get("cliffs_delta", []) if c.get("delta") is not None)
        rows.append({"Environment": environment, "Architecture": architecture,
                     "Kruskal-Wallis p": kruskal["p"] if tested else why,
                     "Eta squared": kruskal.get("eta_squared") if tested else None,
                     "Cliff's delta (energy)": pairs or "–"})
    return pd.DataFrame(rows)


def _backend_section(doc: Document, runs: pd.DataFrame, results: dict) -> None:
    """The backend as a factor: energy and F1 per architecture and backend, and the backend effect; or, with runs of
    one backend, that it was not tested."""
    doc.heading("Energy per architecture and backend")
    names = results["backends"]
    if len(names) < 2:
        doc.paragraph(f"One backend ({names[0]}): backend effect not tested.")
        return
    doc.paragraph(f"The same architectures trained with Keras on {len(names)} backends ({', '.join(names)}): median "
                  "energy per run and F1 of each, and the backend effect on the energy of each architecture on each "
                  "environment (tests as for the environments; each test and pair under Statistics: Backend effect "
                  "on ...).")
    doc.table(backend_frame(runs))
    doc.table(backend_effect_frame(runs, results))


def idle_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """Per environment, architecture and backend, the runs with an idle baseline: their medians of idle power, total
    energy and the energy above idle (dynamic), its share of the total, the start temperature, and the hot starts."""
    measured = with_backend(runs.dropna(subset=["idle_power_W"]))
    rows = []
    for (environment, architecture, backend), group in measured.groupby(["environment", "architecture", BACKEND],
                                                                        sort=True):
        total, dynamic = group["total_energy_J"].median(), group["dynamic_energy_J"].median()
        rows.append({
            "Environment": environment, "Architecture": architecture, "Backend": backend, "Runs": len(group),
            "Median idle power (W)": group["idle_power_W"].median(),
            "Median GPU idle power (W)": group["gpu_idle_power_W"].median(),
            "Median energy (kJ)": total / 1e3, "Median dynamic energy (kJ)": dynamic / 1e3,
            "Dynamic share (%)": 100 * dynamic / total if total else None,
            "Median start temperature (C)": group["start_temperature_C"].median(),
            "Hot starts": int((group["hot_start"] == True).sum()),  # noqa: E712 - None (not assessed) is not hot
        })
    frame = pd.DataFrame(rows)
    return frame if shows_backend(measured[BACKEND]) else frame.drop(columns="Backend")


def _idle_section(doc: Document, runs: pd.DataFrame) -> None:
    """Idle power and the energy above it beside the total; or why there is none."""
    doc.heading("Idle baseline and dynamic energy")
    if "idle_power_W" not in runs or runs["idle_power_W"].isna().all():
        doc.paragraph("No run has an idle baseline (IDLE_BASELINE 0, or runs measured before it): only total energy.")
        return
    doc.paragraph("Each run measured IDLE_BASELINE seconds of idle before its window, in the training process with the "
                  "framework loaded; dynamic energy is the total minus that idle power times the window's duration. "
                  "A hot start: the run began above its campaign's first idle baseline by more than the cool-down's "
                  "tolerance (a validation warning).")
    doc.table(idle_frame(runs))


def _one_class_text(runs: pd.DataFrame, one_class: list[dict]) -> str:
    """The runs whose model predicts one class, counted per architecture and environment: "3 run(s) predicted one
    class: ...: tiny_cnn on local (2 of 5 runs), ...", with one of the reasons."""
    totals = runs.groupby(["architecture", "environment"]).size()
    counts: dict[tuple, int] = {}
    for run in one_class:
        cell = (run.get("architecture"), run.get("environment"))
        counts[cell] = counts.get(cell, 0) + 1
    named = "; ".join(f"{architecture} on {environment} ({n} of {totals.get((architecture, environment), n)} runs)"
                      for (architecture, environment), n in counts.items())
    return (f"{len(one_class)} run(s) {ONE_CLASS_NOTE}: {named}. For example, {one_class[0]['reason']} "
            "(each run and its reason: one_class_models in results.json).")


def _regression_section(doc: Document, regression: dict, trend_png: Path | None) -> None:
    doc.heading("Nightly regression check")
    verdicts = regression.get("architectures", {})
    doc.paragraph(f"Latest DAG run {regression.get('latest_campaign')} against "
                  f"{len(regression.get('baseline_campaigns', []))} previous run(s); regressions: "
                  f"{', '.join(regression.get('regressions', [])) or 'none'}"
                  + (f"; inconclusive: {', '.join(regression['inconclusive'])}" if regression.get("inconclusive") else "")
                  + ".")
    if verdicts:
        # Results of before backends were a choice have no backend: TensorFlow's.
        named = [v.get(BACKEND, DEFAULT_BACKEND) for v in verdicts.values()]
        doc.table(pd.DataFrame({
            "Architecture": [v.get("architecture", key) for key, v in verdicts.items()],
            **({"Backend": named} if shows_backend(named) else {}),
            "Runs": [v["latest_runs"] for v in verdicts.values()],
            "Baseline runs": [v["baseline_runs"] for v in verdicts.values()],
            "Median (kJ)": [with_uncertainty(v["latest_median"], v.get("latest_median_uncertainty"))
                            for v in verdicts.values()],
            "Baseline median (kJ)": [with_uncertainty(v["baseline_median"], v.get("baseline_median_uncertainty"))
                                     for v in verdicts.values()],
            "Change (%)": [None if v["relative_change"] is None else 100 * v["relative_change"]
                           for v in verdicts.values()],
            "Verdict": [v["status"] for v in verdicts.values()], "Why": [v["decided_by"] for v in verdicts.values()],
        }))
    if trend_png is not None and trend_png.exists():
        doc.figure(trend_png, "Median energy per DAG run")


COMPARISON_COLUMNS = ["Environment", "Architecture", "Runs 1st", "Runs 2nd", "1st (kJ)", "2nd (kJ)", "Change (%)",
                      "Interval (%)", "Verdict", "Why"]


def compared_backends(result: dict) -> list[str]:
    """The backends of a compare_campaigns result's cells, compared or not."""
    return sorted({r[BACKEND] for r in result["comparisons"]}
                  | {backend for key in ("only_in_first", "only_in_second") for _, _, backend in result[key]})


def comparison_frame(result: dict) -> pd.DataFrame:
    """compare_campaigns' result as people read it: one row per environment and architecture, and backend where one
    other than TensorFlow ran: then the first column is "Environment·backend" ("local·jax", as the figures name a
    training environment and its backend; a column of its own would not fit the terminal's width). The headers say
    1st and 2nd (DAG run ids are long): comparison_legend names them."""
    rows = result["comparisons"]
    environments = {"Environment": [r["environment"] for r in rows]}
    if shows_backend(compared_backends(result)):
        environments = {"Environment·backend": [f"{r['environment']}·{r[BACKEND]}" for r in rows]}
    return pd.DataFrame({
        **environments, "Architecture": [r["architecture"] for r in rows],
        "Runs 1st": [r["baseline_runs"] for r in rows], "Runs 2nd": [r["latest_runs"] for r in rows],
        "1st (kJ)": [r["baseline_median"] / 1e3 for r in rows], "2nd (kJ)": [r["latest_median"] / 1e3 for r in rows],
        "Change (%)": [100 * r["relative_change"] for r in rows],
        "Interval (%)": ["–" if r["ratio_interval"] is None else
                         f"{100 * (r['ratio_interval'][0] - 1):+.3g} to {100 * (r['ratio_interval'][1] - 1):+.3g}"
                         for r in rows],
        "Verdict": [r["status"] for r in rows], "Why": [r["decided_by"] for r in rows],
    }, columns=[*environments, *COMPARISON_COLUMNS[1:]])


def compared_cell(environment: str, architecture: str, backend: str, shown: bool) -> str:
    """A cell of compare_campaigns in words: "vgg16 on local", "vgg16 on local with jax" where the backend is shown."""
    return f"{architecture} on {environment}" + (f" with {backend}" if shown else "")


def comparison_legend(result: dict) -> list[str]:
    """What the short headers of comparison_frame stand for."""
    return [f"1st: the first campaign, {result['first']}", f"2nd: the second campaign, {result['second']}",
            "kJ: median energy per run; change and interval: the second against the first"]


def write_comparison(result: dict, out_dir: Path) -> dict:
    """compare.json (every digit) and a report section comparing two campaigns, report.md and report.html."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "compare.json", result)
    doc = Document(f"{result['second']} against {result['first']}", out_dir / "figures")
    threshold = result["settings"]["threshold"]
    backend = shows_backend(compared_backends(result))
    doc.paragraph(f"Median energy per run of each architecture and environment{' and backend' if backend else ''} "
                  f"that ran in both campaigns (a backend compared only with itself); a change "
                  f"counts as a regression when its whole interval lies above +{100 * threshold:g} % "
                  f"(REGRESSION: THRESHOLD), with at least {result['settings']['min_runs']} runs on each side.")
    if result["comparisons"]:
        doc.table(comparison_frame(result))
        doc.paragraph("; ".join(comparison_legend(result)) + ".")
    else:
        doc.paragraph("No architecture ran in both campaigns on the same environment.")
    for key, label in (("only_in_first", result["first"]), ("only_in_second", result["second"])):
        if result[key]:
            doc.paragraph(f"Only in {label}: " + ", ".join(compared_cell(*cell, backend) for cell in result[key]) + ".")
    doc.footer(f"Generated {pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M} UTC by ect {__version__}; compare.json "
               "beside this page keeps every digit.")
    markdown, page = doc.write(out_dir)
    return {"results": str(out_dir / "compare.json"), "markdown": str(markdown), "html": str(page)}


def list_reports(output_dir: Path) -> dict[str, float]:
    """{name: modification time} of the reports under OUTPUT_DIR: "report" (all environments) and one per
    environment."""
    return {p.parent.name: p.stat().st_mtime for p in Path(output_dir).glob("*/report.html") if p.is_file()}


CROSS_ENVIRONMENT = "report"  # OUTPUT_DIR/report/: every environment's runs together
INDEX_STYLE = ("body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1b1f23;background:#fff}"
               "header{background:#017cee;color:#fff;padding:14px 24px;font-size:20px;font-weight:600}"
               "main{max-width:1100px;margin:24px auto;padding:0 24px}table{border-collapse:collapse;width:100%}"
               "th,td{text-align:left;padding:8px 12px;border-bottom:1px solid #e1e4e8;vertical-align:top}"
               "th{background:#f6f8fa;font-weight:600}a{color:#017cee;text-decoration:none}a:hover{text-decoration:underline}"
               ".muted{color:#57606a}")


def report_headline(results: dict) -> str:
    """A report's headline numbers from its results.json: runs, the largest reduction, the regression verdicts."""
    parts = [f"{results.get('n_runs', 0)} run(s)"]
    largest = (results.get("energy_reduction") or {}).get("largest")
    if largest:
        parts.append(f"largest reduction {_cell(100 * largest['reduction'])} % "
                     f"({largest['from'].replace('@', ' on ')} → {largest['to'].replace('@', ' on ')})")
    verdicts = (results.get("regression") or {}).get("architectures") or {}
    statuses = sorted(str(v.get("status")) for v in verdicts.values())
    regressed = [a for a, v in verdicts.items() if v.get("status") == "regression"]
    if regressed:
        parts.append(f"regression: {', '.join(regressed)}")
    elif statuses and set(statuses) == {"no regression"}:
        parts.append("no regression")
    elif statuses:  # nothing decided yet: say so, never "no regression"
        parts.append("regression check: " + ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses)))
    return "; ".join(parts)


def index_page(reports: dict[str, float], headlines: dict[str, str] | None = None) -> str:
    """The list of reports, newest first, with their headline numbers; styled like the Airflow UI."""
    headlines = headlines or {}
    rows = "".join(
        f'<tr><td><a href="{html.escape(name)}">'
        f"{'All environments (cross-environment report)' if name == CROSS_ENVIRONMENT else html.escape(name)}</a></td>"
        f"<td>{pd.Timestamp(mtime, unit='s', tz='UTC'):%Y-%m-%d %H:%M} UTC</td>"
        f"<td>{html.escape(headlines.get(name, ''))}</td></tr>"
        for name, mtime in sorted(reports.items(), key=lambda item: -item[1]))
    body = (f"<table><thead><tr><th>Report</th><th>Updated</th><th>Headline</th></tr></thead><tbody>{rows}</tbody></table>"
            if rows else "<p class='muted'>No report yet: trigger an ect DAG (e.g. ect_local) and come back when it "
                         "has finished.</p>")
    return ("<!DOCTYPE html><html><head><meta charset='utf-8'><title>Energy reports · ect</title>"
            f"<style>{INDEX_STYLE}</style></head><body><header>Energy reports</header><main>"
            "<p class='muted'>The latest report of each training environment and the cross-environment one. Each "
            f"report says which DAG run it comes from.</p>{body}</main></body></html>")
