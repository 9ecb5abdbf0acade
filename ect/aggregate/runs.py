"""One processed row per run: energy over the measurement window, emissions, power, usage and quality."""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import numpy as np
import pandas as pd

from ect.aggregate.samples import values
from ect.backends import DEFAULT_BACKEND
from ect.energy import CpuSeries, GpuSeries, carbon_factors, to_kWh, window_energy
from ect.raw.atomic import read_json
from ect.raw.columns import VALIDATION_METRICS
from ect.raw.layout import METRICS_FILE, campaign_of
from ect.raw.manifest import Manifest


# The processed row's text and integer columns (the others are numbers, but `start`, a time): a row whose value is
# of another kind would break the processed dataset's columns for every run, so the run fails alone instead.
TEXT_COLUMNS = ("environment", "architecture", "run_id", "campaign_id", "source", "experiment_name", "backend",
                "backend_version", "keras_version", "gpu_energy_source", "cpu_energy_source", "dram_energy_source",
                "carbon_intensity_source", "hostname", "platform", "cpu_model", "python_version", "gpu_name")
INTEGER_COLUMNS = ("repetition", "cpu_count", "gpu_count", "samples", "params_total", "trained_epochs", "images_seen")
TIME_COLUMNS = ("start",)


def _of_its_kind(column: str, value) -> bool:
    if value is None:
        return True
    if column in TEXT_COLUMNS:
        return isinstance(value, str)
    if column in TIME_COLUMNS:
        return isinstance(value, pd.Timestamp)
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
    })
