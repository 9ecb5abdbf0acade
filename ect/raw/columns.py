"""The columns of a raw run's CSV files and the formats of their timestamps: what the sampler writes and every
reader (validation, aggregation, the legacy importer, tracking) expects."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

# gpu.csv: one row per GPU per sample.
GPU_COLUMNS = (
    "timestamp", "gpu_index", "name", "power_W", "energy_counter_mJ", "utilization_gpu_pct",
    "utilization_memory_pct", "memory_used_MiB", "memory_total_MiB", "temperature_C", "power_limit_W",
)
# cpu.csv: one row per sample.
CPU_COLUMNS = (
    "timestamp", "process_cpu_pct", "process_rss_MiB", "system_cpu_pct", "rapl_package_energy_uJ",
    "rapl_dram_energy_uJ", "cpu_power_estimated_W", "cpu_power_source",
)
TEXT_COLUMNS = frozenset({"name", "cpu_power_source"})
GPU_NUMERIC = GPU_COLUMNS[3:] + ("gpu_index",)
CPU_NUMERIC = CPU_COLUMNS[1:-1]
CPU_POWER_SOURCES = ("rapl", "estimate", "none")

# history.csv: one row per epoch; profiled runs add the epoch's energy.
QUALITY_METRICS = ("accuracy", "precision", "recall", "auc")
HISTORY_COLUMNS = (
    "epoch", "phase", "duration_s", "learning_rate", "loss",
    *QUALITY_METRICS, "f1", "val_loss", *(f"val_{m}" for m in QUALITY_METRICS), "val_f1",
)
EPOCH_ENERGY_COLUMNS = ("gpu_energy_J", "gpu_energy_source", "cpu_energy_J", "cpu_energy_source", "total_energy_J")
# metrics.json: the final validation metrics of the trained model.
VALIDATION_METRICS = ("val_loss", *(f"val_{m}" for m in QUALITY_METRICS), "val_f1")

# Timestamps are UTC with whole milliseconds: 2026-12-01T03:52:18.948Z.
TIMESTAMP_PATTERN = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$"
_TIMESTAMP = re.compile(TIMESTAMP_PATTERN)


def iso_utc(t: float) -> str:
    """Unix seconds as a timestamp of the contract (sub-millisecond digits cut)."""
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def iso_utc_ms(t_ms: int) -> str:
    """Unix milliseconds as a timestamp of the contract, exactly."""
    seconds, ms = divmod(int(t_ms), 1000)
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def now_utc() -> str:
    """The current time as a timestamp of the contract."""
    return iso_utc(time.time())


def is_timestamp(text: str) -> bool:
    return bool(_TIMESTAMP.match(text))
