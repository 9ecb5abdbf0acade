"""`ect export --format codecarbon`: the processed runs as CodeCarbon's emissions.csv, so that its tooling
(e.g. carbonboard) reads our runs: CodeCarbon 3's columns in its order (its EmissionsData) and its units and
meanings: energies in kWh and powers in W including the PUE (CodeCarbon multiplies both by it), emissions in kg CO2e,
water in L, utilisation in %, the location from the environment's COUNTRY_ISO_CODE, REGION, CLOUD_PROVIDER and
CLOUD_REGION. What ect does not measure stays empty, never a made-up number."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ect import __version__
from ect.config.carbon import location
from ect.energy import to_kWh
from ect.raw.atomic import atomic_path
from ect.raw.layout import run_name

# CodeCarbon 3.3's EmissionsData fields, in order (tests check them against the installed codecarbon).
CODECARBON_COLUMNS = (
    "timestamp", "project_name", "run_id", "experiment_id", "duration", "emissions", "emissions_rate",
    "cpu_power", "gpu_power", "ram_power", "cpu_energy", "gpu_energy", "ram_energy", "energy_consumed",
    "water_consumed", "country_name", "country_iso_code", "region", "cloud_provider", "cloud_region", "os",
    "python_version", "codecarbon_version", "cpu_count", "cpu_model", "gpu_count", "gpu_model", "longitude",
    "latitude", "ram_total_size", "tracking_mode", "cpu_utilization_percent", "gpu_utilization_percent",
    "ram_utilization_percent", "ram_used_gb", "on_cloud", "pue", "wue",
)
LOCATION_COLUMNS = ("country_iso_code", "country_name", "region", "cloud_provider", "cloud_region")


def _column(runs: pd.DataFrame, name: str) -> pd.Series:
    """A processed column, or empty values where an older processed dataset lacks it."""
    return runs[name] if name in runs else pd.Series(float("nan"), index=runs.index)


def _locations(runs: pd.DataFrame, environments: dict) -> pd.DataFrame:
    """The location columns of each run, from its environment (empty for an environment the config lacks)."""
    places = {name: location(environments.get(name)) for name in runs["environment"].unique()}
    frame = pd.DataFrame({column: runs["environment"].map(lambda e: getattr(places[e], column))
                          for column in LOCATION_COLUMNS}, index=runs.index)
    frame["on_cloud"] = runs["environment"].map(lambda e: places[e].on_cloud)
    return frame


def to_codecarbon(runs: pd.DataFrame, environments: dict | None = None) -> pd.DataFrame:
    """One CodeCarbon row per run. Fields ect does not have (RAM use and size, water, coordinates) stay empty."""
    if runs.empty:  # an empty processed dataset may have no columns at all: the header alone
        return pd.DataFrame(columns=list(CODECARBON_COLUMNS))
    duration = runs["duration_s"]
    emissions_kg = runs["emissions_gCO2e"] / 1000
    pue = runs["pue"]
    frame = pd.DataFrame({
        "timestamp": runs["start"].astype(str),
        "project_name": "ect-" + runs["environment"] + "-" + runs["architecture"],
        "run_id": run_name(runs["environment"], runs["architecture"], runs["run_id"]),
        "experiment_id": runs["experiment_name"].fillna(""),
        "duration": duration,
        "emissions": emissions_kg,
        "emissions_rate": emissions_kg / duration,
        "cpu_power": runs["cpu_energy_J"] * pue / duration,
        "gpu_power": runs["gpu_energy_J"] * pue / duration,
        "ram_power": runs["dram_energy_J"] * pue / duration,
        "cpu_energy": to_kWh(runs["cpu_energy_J"]) * pue,
        "gpu_energy": to_kWh(runs["gpu_energy_J"]) * pue,
        "ram_energy": to_kWh(runs["dram_energy_J"]) * pue,
        "energy_consumed": runs["energy_kWh"] * pue,
        "gpu_count": runs["gpu_count"],
        "gpu_model": runs["gpu_name"],
        "tracking_mode": "process",
        "pue": pue,
        "os": runs["platform"],
        "python_version": runs["python_version"],
        "codecarbon_version": f"ect {__version__}",
        "cpu_count": runs["cpu_count"],
        "cpu_model": runs["cpu_model"],
        "cpu_utilization_percent": _column(runs, "system_cpu_mean_pct"),
        "gpu_utilization_percent": runs["gpu_utilization_mean_pct"],
    }, index=runs.index)
    frame = frame.join(_locations(runs, environments or {}))
    return frame.reindex(columns=list(CODECARBON_COLUMNS))


def export_codecarbon(processed: Path, out: Path, environments: dict | None = None) -> Path:
    """Writes emissions.csv; `environments` (config/environments.yaml's) give the runs' locations."""
    runs = pd.read_parquet(processed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        to_codecarbon(runs, environments).to_csv(tmp, index=False)
    return out
