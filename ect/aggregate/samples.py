"""Reading one run's raw samples into typed frames, fast: Arrow's CSV reader with the contract's column types."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as arrow_csv

from ect.profiling.sampler import CPU_COLUMNS, GPU_COLUMNS

_TEXT = {"name", "cpu_power_source"}


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    types = {c: pa.string() if c in _TEXT else pa.float64() for c in columns}
    types["timestamp"] = pa.timestamp("ms", tz="UTC")
    table = arrow_csv.read_csv(path, convert_options=arrow_csv.ConvertOptions(
        column_types=types, include_columns=list(columns), strings_can_be_null=True))
    frame = table.to_pandas()
    frame.insert(1, "time_ms", table["timestamp"].cast(pa.int64()).to_numpy())
    return frame


def read_gpu(folder: Path) -> pd.DataFrame | None:
    path = folder / "gpu.csv"
    return _read(path, GPU_COLUMNS) if path.exists() else None


def read_cpu(folder: Path) -> pd.DataFrame | None:
    path = folder / "cpu.csv"
    return _read(path, CPU_COLUMNS) if path.exists() else None


def nearest(sorted_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each of `times`, the index of the nearest of `sorted_times` (the earlier one on a tie)."""
    right = np.clip(np.searchsorted(sorted_times, times), 0, len(sorted_times) - 1)
    left = np.clip(right - 1, 0, len(sorted_times) - 1)
    return np.where(np.abs(sorted_times[right] - times) < np.abs(times - sorted_times[left]), right, left)


def joined_samples(gpu: pd.DataFrame | None, cpu: pd.DataFrame | None, tolerance_ms: int) -> pd.DataFrame:
    """GPU samples with the CPU sample nearest in time (within tolerance_ms) beside each; CPU samples alone
    when no GPU was measured."""
    if gpu is None:
        return cpu.copy()
    if cpu is None or cpu.empty:
        return gpu.copy()
    gpu_times, cpu_times = gpu["time_ms"].to_numpy(), cpu["time_ms"].to_numpy()
    index = nearest(cpu_times, gpu_times)
    cpu_part = cpu.drop(columns=["timestamp", "time_ms"]).iloc[index].reset_index(drop=True)
    cpu_part[np.abs(cpu_times[index] - gpu_times) > tolerance_ms] = None
    return pd.concat([gpu.reset_index(drop=True), cpu_part], axis=1)


def window_seconds(times_ms: np.ndarray, start_ms: int) -> np.ndarray:
    """Sample times in seconds since the window's start: small, exact numbers for the energy arithmetic."""
    return (np.asarray(times_ms, dtype="int64") - start_ms) / 1000
