"""One processed row per run: energy over the measurement window, emissions, power, usage and quality."""

from __future__ import annotations

import csv
import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from ect.aggregate.samples import values
from ect.backends import DEFAULT_BACKEND
from ect.energy import CpuSeries, GpuSeries, carbon_factors, to_kWh, window_energy
from ect.raw.atomic import read_json, read_text
from ect.raw.columns import VALIDATION_METRICS
from ect.raw.layout import HISTORY_FILE, METRICS_FILE, campaign_of
from ect.raw.manifest import Manifest
from ect.steady import PHASES, images_per_epoch, read_history, steady_state


# The processed row's text and integer columns (the others are numbers, but `start`, a time): a row whose value is
# of another kind would break the processed dataset's columns for every run, so the run fails alone instead.
TEXT_COLUMNS = ("environment", "architecture", "run_id", "campaign_id", "source", "experiment_name", "backend",
                "backend_version", "keras_version", "gpu_energy_source", "cpu_energy_source", "dram_energy_source",
                "carbon_intensity_source", "hostname", "platform", "cpu_model", "python_version", "gpu_name")
INTEGER_COLUMNS = ("repetition", "cpu_count", "gpu_count", "samples", "params_total", "trained_epochs", "images_seen")
TIME_COLUMNS = ("start",)
BOOL_COLUMNS = ("hot_start",)  # true, false, or None (not assessed)


def _of_its_kind(column: str, value) -> bool:
    if value is None:
        return True
    if column in TEXT_COLUMNS:
        return isinstance(value, str)
    if column in TIME_COLUMNS:
        return isinstance(value, pd.Timestamp)
    if column in BOOL_COLUMNS:
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        return False
    return column not in INTEGER_COLUMNS or isinstance(value, numbers.Integral) or float(value).is_integer()


def checked(row: dict) -> dict:
    """The row, if every value is of its column's kind (a whole number written as 2.0 made an int); else ValueError
    naming the column and the value."""
    wrong = [f"{column} = {value!r}" for column, value in row.items() if not _of_its_kind(column, value)]
    if wrong:
        raise ValueError(f"values of the wrong kind for the processed dataset: {', '.join(wrong)}")
    return {column: int(value) if column in INTEGER_COLUMNS and value is not None else value
            for column, value in row.items()}


def _empty(table) -> bool:
    return table is None or table.num_rows == 0


def _gpu_indices(gpu) -> np.ndarray:
    """The distinct GPU indices of the samples (for the usual single GPU, one comparison instead of a sort)."""
    if _empty(gpu):
        return np.empty(0)
    indices = values(gpu, "gpu_index")
    return indices[:1] if (indices == indices[0]).all() else np.unique(indices)


def _gpu_series(gpu, gpus: np.ndarray) -> dict[int, GpuSeries]:
    if _empty(gpu):
        return {}
    times, power, counter = (values(gpu, c) for c in ("time_ms", "power_W", "energy_counter_mJ"))
    series = {}
    for index in gpus:
        mine = slice(None) if len(gpus) == 1 else values(gpu, "gpu_index") == index
        series[int(index)] = GpuSeries(times[mine], power[mine], counter[mine])
    return series


def _column_read(table, column: str) -> np.ndarray | None:
    """The column's values, or None when it has no reading at all (Arrow knows its null count at no cost)."""
    column_data = table.column(column)
    return None if column_data.null_count == table.num_rows else column_data.to_numpy()


def _cpu_series(cpu) -> CpuSeries | None:
    if _empty(cpu):
        return None
    return CpuSeries(values(cpu, "time_ms"), _column_read(cpu, "rapl_package_energy_uJ"),
                     _column_read(cpu, "rapl_dram_energy_uJ"), _column_read(cpu, "cpu_power_estimated_W"))


def _stats(table, columns: tuple[str, ...], inside: np.ndarray | None) -> list[tuple[float, float]]:
    """Mean and (population) standard deviation of each column over the samples inside the window, NaNs
    skipped: all columns in one numpy pass, as per-column calls cost more than the arithmetic at these sizes."""
    if inside is None:
        return [(math.nan, math.nan)] * len(columns)
    block = np.stack([values(table, c)[inside] for c in columns])
    valid = ~np.isnan(block)
    count = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid, block, 0.0).sum(axis=1) / count
        deviation = np.where(valid, block - mean[:, None], 0.0)
        std = np.sqrt((deviation * deviation).sum(axis=1) / count)
    return [(float(m), float(d)) for m, d in zip(mean, std)]


def _inside(table, start_ms: int, end_ms: int) -> np.ndarray | None:
    """Which samples lie inside the window (None without samples)."""
    if _empty(table):
        return None
    times = values(table, "time_ms")
    return (times >= start_ms) & (times <= end_ms)


def backend_of(manifest: Manifest) -> dict:
    """The run's Keras backend, its version and Keras's: the manifest's backend record; a run without one (measured
    before backends were a choice, or imported from the original) trained on TensorFlow, whose version and Keras's
    its software list may name."""
    record = manifest.backend
    if isinstance(record, dict) and record.get("name") is not None:
        return {"backend": record["name"], "backend_version": record.get("version"),
                "keras_version": record.get("keras_version")}
    software = manifest.software if isinstance(manifest.software, dict) else {}
    return {"backend": DEFAULT_BACKEND, "backend_version": software.get("tensorflow"),
            "keras_version": software.get("keras")}


def steady_columns(folder: Path, metrics: dict) -> dict:
    """The run's steady state (ect.steady) from its history.csv: mean power, energy per epoch and per image and
    duration, and each phase's energy per epoch and power; None where history.csv has no per-epoch energy (runs
    measured before it was recorded, imported runs) or no epoch after the first of its phase."""
    try:
        rows = read_history(read_text(folder / HISTORY_FILE))
    except (OSError, UnicodeDecodeError, csv.Error):
        rows = []
    steady = steady_state(rows, images_per_epoch(metrics))
    overall = steady.overall
    columns = {"steady_power_W": None, "steady_energy_per_epoch_J": None, "steady_energy_per_image_J": None,
               "steady_duration_s": None}
    if overall is not None:
        columns = {"steady_power_W": overall.power_W, "steady_energy_per_epoch_J": overall.energy_per_epoch_J,
                   "steady_energy_per_image_J": overall.energy_per_image_J, "steady_duration_s": overall.duration_s}
    for phase in PHASES:
        mine = steady.phases.get(phase)
        columns[f"{phase}_steady_energy_per_epoch_J"] = None if mine is None else mine.energy_per_epoch_J
        columns[f"{phase}_steady_power_W"] = None if mine is None else mine.power_W
    return columns


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        return None
    return float(value)


def _start_temperature(gpu, start_ms: int) -> float | None:
    """The hottest GPU's temperature in the first GPU sample at or after start_ms."""
    if _empty(gpu):
        return None
    times, temperatures = values(gpu, "time_ms"), values(gpu, "temperature_C")
    after = times >= start_ms
    if not after.any():
        return None
    first = temperatures[times == times[after].min()]
    return float(np.nanmax(first)) if np.isfinite(first).any() else None


IDLE_COLUMNS = ("idle_duration_s", "gpu_idle_power_W", "cpu_idle_power_W", "idle_power_W", "dynamic_energy_J",
                "gpu_dynamic_energy_J", "start_temperature_C", "hot_start")


def idle_columns(manifest: Manifest, gpu, cpu, gpus: np.ndarray, energy, duration_s: float) -> dict:
    """The idle baseline (ect.profiling.thermal), recomputed from the samples of the manifest's idle window: the idle
    power of the GPUs, of the CPU (package) and in all (GPU + CPU + DRAM), the energy above idle over the measurement
    window (dynamic_energy_J = total - idle power x duration; the GPUs' alone), the hottest GPU's temperature at the
    idle window's start and whether the run started hot (the manifest's verdict). None where the run has no idle
    baseline (IDLE_BASELINE 0, runs measured before it, imported runs) or a sensor did not measure it."""
    columns = dict.fromkeys(IDLE_COLUMNS)
    record = manifest.idle_baseline if isinstance(manifest.idle_baseline, dict) else {}
    start, end = _finite(record.get("start_unix_s")), _finite(record.get("end_unix_s"))
    if start is None or end is None or round(end * 1000) <= round(start * 1000):
        return columns
    start_ms, end_ms = round(start * 1000), round(end * 1000)
    seconds = (end_ms - start_ms) / 1000
    idle = window_energy(start_ms, end_ms, _gpu_series(gpu, gpus), _cpu_series(cpu))
    gpu_W, cpu_W, dram_W = (None if joules is None or math.isnan(joules) else joules / seconds
                            for joules in (idle.gpu_total_J, idle.cpu_J, idle.dram_J))
    parts = [watts for watts in (gpu_W, cpu_W, dram_W) if watts is not None]
    idle_W = math.fsum(parts) if parts else None
    hot_start = record.get("hot_start")
    columns.update({
        "idle_duration_s": seconds, "gpu_idle_power_W": gpu_W, "cpu_idle_power_W": cpu_W, "idle_power_W": idle_W,
        "dynamic_energy_J": None if idle_W is None else energy.total_J - idle_W * duration_s,
        "gpu_dynamic_energy_J": None if gpu_W is None or energy.gpu_total_J is None
        else energy.gpu_total_J - gpu_W * duration_s,
        "start_temperature_C": _start_temperature(gpu, start_ms),
        "hot_start": hot_start if isinstance(hot_start, bool) else None,
    })
    return columns


def run_row(folder: Path, manifest: Manifest, gpu, cpu, environments: dict) -> dict:
    """The processed row of one validated run (ValueError when a value is of the wrong kind for its column)."""
    start_ms, end_ms = manifest.window.start_ms, manifest.window.end_ms
    gpus = _gpu_indices(gpu)
    energy = window_energy(start_ms, end_ms, _gpu_series(gpu, gpus), _cpu_series(cpu))
    total_J = energy.total_J
    env = environments.get(manifest.environment)
    intensity, pue, carbon_source = carbon_factors(env)
    energy_kWh = to_kWh(total_J)

    gpu_inside, cpu_inside = _inside(gpu, start_ms, end_ms), _inside(cpu, start_ms, end_ms)
    (power_mean, power_std), (usage_mean, _), (memory_mean, memory_std), (temperature_mean, temperature_std) = _stats(
        gpu, ("power_W", "utilization_gpu_pct", "memory_used_MiB", "temperature_C"), gpu_inside)
    (cpu_power_mean, cpu_power_std), (cpu_usage_mean, _), (system_cpu_mean, _) = _stats(
        cpu, ("cpu_power_estimated_W", "process_cpu_pct", "system_cpu_pct"), cpu_inside)
    metrics = read_json(folder / METRICS_FILE) or {}
    software = manifest.software if isinstance(manifest.software, dict) else {}
    images_seen = metrics.get("images_seen")
    return checked({
        "environment": manifest.environment,
        "architecture": manifest.architecture,
        "run_id": manifest.run_id,
        "campaign_id": campaign_of(manifest.run_id),
        "repetition": manifest.repetition,
        "source": manifest.source,
        "experiment_name": manifest.experiment_name,
        **backend_of(manifest),
        "start": pd.Timestamp(start_ms, unit="ms", tz="UTC"),
        "duration_s": (end_ms - start_ms) / 1000,
        "gpu_energy_J": energy.gpu_total_J,
        "cpu_energy_J": energy.cpu_J,
        "dram_energy_J": energy.dram_J,
        "total_energy_J": total_J,
        "gpu_energy_uncertainty_J": energy.gpu_total_uncertainty_J,
        "cpu_energy_uncertainty_J": energy.cpu_uncertainty_J,
        "dram_energy_uncertainty_J": energy.dram_uncertainty_J,
        "total_energy_uncertainty_J": energy.total_uncertainty_J,
        "energy_kWh": energy_kWh,
        "emissions_gCO2e": energy_kWh * pue * intensity,
        "gpu_energy_source": energy.gpu_sources,
        "cpu_energy_source": energy.cpu_source,
        "dram_energy_source": energy.dram_source,
        "carbon_intensity_gCO2e_per_kWh": intensity,
        "pue": pue,
        "carbon_intensity_source": carbon_source,
        "hostname": manifest.host.hostname,
        "platform": manifest.host.platform,
        "cpu_model": manifest.host.cpu_model,
        "cpu_count": manifest.host.cpu_count,
        "python_version": software.get("python"),
        "gpu_name": None if _empty(gpu) else gpu.column("name")[0].as_py(),
        "gpu_count": len(gpus),
        "gpu_power_mean_W": power_mean,
        "gpu_power_std_W": power_std,
        "gpu_utilization_mean_pct": usage_mean,
        "gpu_memory_used_mean_MiB": memory_mean,
        "gpu_memory_used_std_MiB": memory_std,
        "gpu_temperature_mean_C": temperature_mean,
        "gpu_temperature_std_C": temperature_std,
        "cpu_power_mean_W": cpu_power_mean,
        "cpu_power_std_W": cpu_power_std,
        "process_cpu_mean_pct": cpu_usage_mean,
        "system_cpu_mean_pct": system_cpu_mean,
        "samples": int(gpu_inside.sum()) if gpu_inside is not None and gpu_inside.any()
        else int(cpu_inside.sum()) if cpu_inside is not None else 0,
        **{name: metrics.get(name) for name in VALIDATION_METRICS},
        "gflops": metrics.get("gflops"),
        "params_total": metrics.get("params_total"),
        "trained_epochs": metrics.get("trained_epochs"),
        "images_seen": images_seen,
        "energy_per_image_J": total_J / images_seen if images_seen else None,
        **idle_columns(manifest, gpu, cpu, gpus, energy, (end_ms - start_ms) / 1000),
        **steady_columns(folder, metrics),
    })
