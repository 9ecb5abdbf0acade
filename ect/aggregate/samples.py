"""Reading one run's raw samples into typed frames (fast: pandas' C parser, explicit dtypes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ect.profiling.sampler import CPU_COLUMNS, GPU_COLUMNS
from ect.raw import TIMESTAMP_FORMAT

_TEXT = {"timestamp", "name", "cpu_power_source"}


def _read(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    dtypes = {c: (str if c in _TEXT else "float64") for c in columns}
    frame = pd.read_csv(path, dtype=dtypes, usecols=list(columns), engine="c")
    times = pd.to_datetime(frame["timestamp"], format=TIMESTAMP_FORMAT, utc=True)
    frame["timestamp"] = times.dt.as_unit("ms")
    frame.insert(1, "time_ms", (times - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms"))
    return frame


def read_gpu(folder: Path) -> pd.DataFrame | None:
    path = folder / "gpu.csv"
    return _read(path, GPU_COLUMNS) if path.exists() else None


def read_cpu(folder: Path) -> pd.DataFrame | None:
    path = folder / "cpu.csv"
    return _read(path, CPU_COLUMNS) if path.exists() else None


def joined_samples(gpu: pd.DataFrame | None, cpu: pd.DataFrame | None, tolerance_ms: int) -> pd.DataFrame:
    """GPU samples with the CPU sample nearest in time (within tolerance_ms) beside each; CPU samples alone
    when no GPU was measured."""
    if gpu is None:
        return cpu.copy()
    if cpu is None:
        return gpu.copy()
    cpu_part = cpu.drop(columns=["timestamp"]).rename(columns={"time_ms": "cpu_time_ms"})
    joined = pd.merge_asof(gpu.sort_values("time_ms"), cpu_part.sort_values("cpu_time_ms"), left_on="time_ms",
                           right_on="cpu_time_ms", direction="nearest", tolerance=tolerance_ms)
    return joined.sort_values(["time_ms", "gpu_index"], kind="stable").drop(columns=["cpu_time_ms"])


def window_seconds(times_ms: pd.Series, start_ms: int) -> np.ndarray:
    """Sample times in seconds since the window's start: small, exact numbers for the energy arithmetic."""
    return (times_ms.to_numpy(dtype="int64") - start_ms) / 1000
