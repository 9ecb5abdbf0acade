"""`ect export --format codecarbon`: the processed runs as CodeCarbon's emissions.csv, so that its tooling
(e.g. carbonboard) reads our runs. CodeCarbon's units: energies in kWh, emissions in kg CO2e, power in W."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ect import __version__
from ect.energy import to_kWh
from ect.raw.atomic import atomic_path
from ect.raw.layout import run_name

CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os", "python_version",
    "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude", "latitude",
    "ram_total_size", "tracking_mode", "on_cloud", "pue",
)
def to_codecarbon(runs: pd.DataFrame) -> pd.DataFrame:
    """One CodeCarbon row per run. Fields ect does not have (location, RAM power, ...) stay empty."""
    duration = runs["duration_s"]
    emissions_kg = runs["emissions_gCO2e"] / 1000
    frame = pd.DataFrame({
        "timestamp": runs["start"].astype(str),
        "project_name": "ect-" + runs["environment"] + "-" + runs["architecture"],
        "run_id": run_name(runs["environment"], runs["architecture"], runs["run_id"]),
        "experiment_id": runs["experiment_name"].fillna(""),
        "duration": duration,
        "emissions": emissions_kg,
        "emissions_rate": emissions_kg / duration,
        "cpu_power": runs["cpu_energy_J"] / duration,
        "gpu_power": runs["gpu_energy_J"] / duration,
        "ram_power": runs["dram_energy_J"] / duration,
        "cpu_energy": to_kWh(runs["cpu_energy_J"]),
        "gpu_energy": to_kWh(runs["gpu_energy_J"]),
        "ram_energy": to_kWh(runs["dram_energy_J"]),
        "energy_consumed": runs["energy_kWh"],
        "gpu_count": runs["gpu_count"],
        "gpu_model": runs["gpu_name"],
        "tracking_mode": "process",
        "on_cloud": "N",
        "pue": runs["pue"],
        "os": runs["platform"],
        "python_version": runs["python_version"],
        "codecarbon_version": f"ect {__version__}",
        "cpu_count": runs["cpu_count"],
        "cpu_model": runs["cpu_model"],
    })
    return frame.reindex(columns=list(CODECARBON_COLUMNS))


def export_codecarbon(processed: Path, out: Path) -> Path:
    runs = pd.read_parquet(processed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        to_codecarbon(runs).to_csv(tmp, index=False)
    return out
