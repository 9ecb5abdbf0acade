"""A per-environment summary of the processed runs: what each architecture cost, in a Markdown table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

COLUMNS = {
    "runs": ("run_id", "count"),
    "median_total_energy_J": ("total_energy_J", "median"),
    "median_energy_kWh": ("energy_kWh", "median"),
    "median_emissions_gCO2e": ("emissions_gCO2e", "median"),
    "median_duration_s": ("duration_s", "median"),
    "median_energy_per_image_J": ("energy_per_image_J", "median"),
    "median_val_f1": ("val_f1", "median"),
}


def architecture_table(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.groupby("architecture", sort=True).agg(**COLUMNS).reset_index()


def write_environment_summary(processed: Path, environment: str, out_dir: Path) -> Path:
    """OUTPUT_DIR/<environment>/summary.md: medians per architecture over every aggregated run."""
    runs = pd.read_parquet(processed)
    runs = runs[runs["environment"] == environment]
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "summary.md"
    lines = [f"# Energy of training on `{environment}`", "",
             f"{len(runs)} aggregated run(s) from {processed}.", ""]
    if len(runs):
        table = architecture_table(runs)
        sources = ", ".join(f"GPU {g} / CPU {c}" for g, c in
                            runs[["gpu_energy_source", "cpu_energy_source"]].drop_duplicates().itertuples(index=False))
        lines += ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table.itertuples(index=False)]
        lines += ["", f"Energy sources: {sources}."]
    tmp = path.with_name(".summary.md.tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)
    return path
