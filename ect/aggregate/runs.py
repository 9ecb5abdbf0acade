"""One processed row per run: energy over the measurement window, emissions, power, usage and quality."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ect.aggregate.samples import values, window_seconds
from ect.profiling.energy import counter_delta, covers, integrate_power_J
from ect.raw import read_json

JOULES_PER_KWH = 3.6e6
DEFAULT_CARBON_INTENSITY = 232.0  # gCO2e/kWh, the original's (Spain)
QUALITY = ("val_loss", "val_accuracy", "val_precision", "val_recall", "val_auc", "val_f1")


def carbon_factors(environment) -> tuple[float, float]:
    """(carbon intensity in gCO2e/kWh, PUE) of the environment (config/environments.yaml), else the original's."""
    if environment is None:
        return DEFAULT_CARBON_INTENSITY, 1.0
    return environment.carbon_intensity_gco2e_per_kwh, environment.pue


def emissions_gCO2e(energy_kWh: float, environment) -> float:
    """energy x PUE x carbon intensity of the environment."""
    intensity, pue = carbon_factors(environment)
    return energy_kWh * pue * intensity


def campaign_of(run_id: str) -> str:
    """The DAG run or `ect profile` campaign a run belongs to: its id without the -rep<KK> suffix."""
    return re.sub(r"-rep\d+$", "", run_id)


def _empty(table) -> bool:
    return table is None or table.num_rows == 0


def _gpu_indices(gpu) -> np.ndarray:
    """The distinct GPU indices of the samples (for the usual single GPU, one comparison instead of a sort)."""
    if _empty(gpu):
        return np.empty(0)
    indices = values(gpu, "gpu_index")
    return indices[:1] if (indices == indices[0]).all() else np.unique(indices)


def _gpu_energy(gpu, gpus: np.ndarray, start_ms: int, end_ms: int) -> tuple[float | None, str]:
    if _empty(gpu):
        return None, "unavailable"
    end_s = (end_ms - start_ms) / 1000
    times, power, counter = (values(gpu, c) for c in ("time_ms", "power_W", "energy_counter_mJ"))
    joules, sources = [], set()
    for index in gpus:
        mine = slice(None) if len(gpus) == 1 else values(gpu, "gpu_index") == index
        t = window_seconds(times[mine], start_ms)
        if covers(t, counter[mine], 0.0, end_s):
            joules.append(counter_delta(t, counter[mine], 0.0, end_s) / 1e3)
            sources.add("counter")
        else:
            joules.append(integrate_power_J(t, power[mine], 0.0, end_s))
            sources.add("integrated")
    return math.fsum(joules), "+".join(sorted(sources))


def _read_in(table, column: str) -> bool:
    """Whether the column has any reading (Arrow knows its null count without looking at the values)."""
    return table.column(column).null_count < table.num_rows


def _cpu_energy(cpu, start_ms: int, end_ms: int) -> tuple[float | None, str, float | None, str]:
    if _empty(cpu):
        return None, "unavailable", None, "unavailable"
    t = window_seconds(values(cpu, "time_ms"), start_ms)
    end_s = (end_ms - start_ms) / 1000
    if _read_in(cpu, "rapl_package_energy_uJ"):
        cpu_J, cpu_source = counter_delta(t, values(cpu, "rapl_package_energy_uJ"), 0.0, end_s) / 1e6, "counter"
    elif _read_in(cpu, "cpu_power_estimated_W"):
        cpu_J, cpu_source = integrate_power_J(t, values(cpu, "cpu_power_estimated_W"), 0.0, end_s), "estimated"
    else:
        cpu_J, cpu_source = None, "unavailable"
    if _read_in(cpu, "rapl_dram_energy_uJ"):
        return cpu_J, cpu_source, counter_delta(t, values(cpu, "rapl_dram_energy_uJ"), 0.0, end_s) / 1e6, "counter"
    return cpu_J, cpu_source, None, "unavailable"


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


def run_row(folder: Path, manifest: dict, gpu, cpu, environments: dict) -> dict:
    """The processed row of one validated run."""
    window = manifest["window"]
    start_ms, end_ms = round(window["start_unix_s"] * 1000), round(window["end_unix_s"] * 1000)
    gpus = _gpu_indices(gpu)
    gpu_J, gpu_source = _gpu_energy(gpu, gpus, start_ms, end_ms)
    cpu_J, cpu_source, dram_J, dram_source = _cpu_energy(cpu, start_ms, end_ms)
    total_J = math.fsum(x for x in (gpu_J, cpu_J, dram_J) if x is not None)
    environment = manifest["environment"]
    env = environments.get(environment)
    intensity, pue = carbon_factors(env)
    energy_kWh = total_J / JOULES_PER_KWH

    gpu_inside, cpu_inside = _inside(gpu, start_ms, end_ms), _inside(cpu, start_ms, end_ms)
    (power_mean, power_std), (usage_mean, _), (memory_mean, memory_std), (temperature_mean, temperature_std) = _stats(
        gpu, ("power_W", "utilization_gpu_pct", "memory_used_MiB", "temperature_C"), gpu_inside)
    (cpu_power_mean, cpu_power_std), (cpu_usage_mean, _) = _stats(
        cpu, ("cpu_power_estimated_W", "process_cpu_pct"), cpu_inside)
    metrics = read_json(folder / "metrics.json") or {}
    images_seen = metrics.get("images_seen")
    return {
        "environment": environment,
        "architecture": manifest["architecture"],
        "run_id": manifest["run_id"],
        "campaign_id": campaign_of(manifest["run_id"]),
        "repetition": manifest.get("repetition"),
        "source": manifest.get("source", "ect"),
        "experiment_name": manifest.get("experiment_name"),
        "start": pd.Timestamp(start_ms, unit="ms", tz="UTC"),
        "duration_s": (end_ms - start_ms) / 1000,
        "gpu_energy_J": gpu_J,
        "cpu_energy_J": cpu_J,
        "dram_energy_J": dram_J,
        "total_energy_J": total_J,
        "energy_kWh": energy_kWh,
        "emissions_gCO2e": energy_kWh * pue * intensity,
        "gpu_energy_source": gpu_source,
        "cpu_energy_source": cpu_source,
        "dram_energy_source": dram_source,
        "carbon_intensity_gCO2e_per_kWh": intensity,
        "pue": pue,
        "carbon_intensity_source": "config/environments.yaml" if env else "default: 232 gCO2e/kWh, PUE 1.0 (the original's)",
        "hostname": (manifest.get("host") or {}).get("hostname"),
        "platform": (manifest.get("host") or {}).get("platform"),
        "cpu_model": (manifest.get("host") or {}).get("cpu_model"),
        "cpu_count": (manifest.get("host") or {}).get("cpu_count"),
        "python_version": (manifest.get("software") or {}).get("python"),
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
        "samples": int(gpu_inside.sum()) if gpu_inside is not None and gpu_inside.any()
        else int(cpu_inside.sum()) if cpu_inside is not None else 0,
        **{name: metrics.get(name) for name in QUALITY},
        "gflops": metrics.get("gflops"),
        "params_total": metrics.get("params_total"),
        "trained_epochs": metrics.get("trained_epochs"),
        "images_seen": images_seen,
        "energy_per_image_J": total_J / images_seen if images_seen else None,
    }
