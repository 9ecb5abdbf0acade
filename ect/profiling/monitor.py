"""EnergyMonitor: measurement windows over a background sampler, returning small dataclasses.

    with EnergyMonitor(folder, interval_s=0.1) as monitor:
        monitor.begin_window("training")
        ...
        measurement = monitor.end_window("training")

begin_window and end_window read every sensor once, in the caller's thread, at the moment they are called: a window's
edges are samples of their own, however late a busy CPU lets the sampler thread take the periodic samples between them.

GPU energy comes from the NVML total-energy counter where the GPU has one ("counter"), else from
the trapezoid rule over its power samples ("integrated"). CPU energy comes from RAPL counters
("counter"), else from the utilisation x TDP estimate ("estimated"). Never an estimate for a GPU.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ect.energy import CpuSeries, GpuSeries, WindowEnergy, window_energy
from ect.errors import MeasurementError
from ect.profiling.sampler import Sampler


@dataclass(frozen=True)
class Measurement:
    name: str
    start: float  # Unix time, s
    end: float
    duration_s: float
    energy: WindowEnergy
    samples: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def gpu_energy_J(self) -> dict[int, float]:
        """Per GPU index; empty when no GPU was measured."""
        return self.energy.gpu_J

    @property
    def gpu_energy_source(self) -> dict[int, str]:
        """Per GPU: counter | integrated."""
        return self.energy.gpu_source

    @property
    def cpu_energy_J(self) -> float | None:
        return self.energy.cpu_J

    @property
    def cpu_energy_source(self) -> str:
        """counter | estimated | unavailable"""
        return self.energy.cpu_source

    @property
    def dram_energy_J(self) -> float | None:
        return self.energy.dram_J

    @property
    def dram_energy_source(self) -> str:
        return self.energy.dram_source

    @property
    def total_energy_J(self) -> float:
        """GPU + CPU + DRAM energy of the window (the parts that were measured or estimated)."""
        return self.energy.total_J

    def to_dict(self) -> dict:
        return {
            "name": self.name, "start": self.start, "end": self.end, "duration_s": self.duration_s,
            # No GPU measured is "unavailable", never zero joules.
            "gpu_energy_J": {str(k): v for k, v in self.gpu_energy_J.items()} or None,
            "gpu_energy_source": {str(k): v for k, v in self.gpu_energy_source.items()} or "unavailable",
            "cpu_energy_J": self.cpu_energy_J, "cpu_energy_source": self.cpu_energy_source,
            "dram_energy_J": self.dram_energy_J, "dram_energy_source": self.dram_energy_source,
            "samples": self.samples, "notes": list(self.notes), "total_energy_J": self.total_energy_J,
        }


class EnergyMonitor:
    def __init__(self, folder: Path | None = None, interval_s: float = 0.1, gpu_devices: str | Sequence[int] = "all",
                 cpu_tdp_W: float | None = None, pid: int | None = None, choice=None):
        if choice is None:
            from ect.sensors import select_sensors

            choice = select_sensors(gpu_devices=gpu_devices, pid=pid, cpu_tdp_W=cpu_tdp_W)
        self.choice = choice
        self.sampler = Sampler(choice, Path(folder) if folder else None, interval_s)
        self._open: dict[str, int] = {}
        self.windows: dict[str, Measurement] = {}  # every ended window, by name

    def __enter__(self) -> "EnergyMonitor":
        self.sampler.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sampler.stop()

    def begin_window(self, name: str) -> None:
        if name in self._open:
            raise MeasurementError(f"measurement window {name!r} is already open")
        self._open[name] = self.sampler.sample_now()

    def end_window(self, name: str) -> Measurement:
        if name not in self._open:
            raise MeasurementError(f"measurement window {name!r} was never begun")
        start = self._open.pop(name)
        end = self.sampler.sample_now()
        self.windows[name] = self.measure(name, start, end)
        return self.windows[name]

    def measure(self, name: str, start_ms: int, end_ms: int) -> Measurement:
        """The energy of [start_ms, end_ms] (Unix ms) from the samples taken so far."""
        s = self.sampler
        with s._lock:
            times_ms, gpu_rows, cpu_rows = list(s.times_ms), list(s.gpu_rows), list(s.cpu_rows)
        gpus = {}
        for index in sorted({row["gpu_index"] for rows in gpu_rows for row in rows}):
            series = [(t, row) for t, rows in zip(times_ms, gpu_rows) for row in rows if row["gpu_index"] == index]
            gpus[index] = GpuSeries(np.array([t for t, _ in series], dtype="int64"),
                                    _column([row for _, row in series], "power_W"),
                                    _column([row for _, row in series], "energy_counter_mJ"))
        cpu = CpuSeries(np.array(times_ms, dtype="int64"), _column(cpu_rows, "rapl_package_energy_uJ"),
                        _column(cpu_rows, "rapl_dram_energy_uJ"), _column(cpu_rows, "cpu_power_estimated_W"))
        notes = [f"{sensor.name}: {sensor.error}" for sensor in (*s.choice.gpu, *s.choice.cpu) if sensor.error]
        samples = sum(start_ms <= t <= end_ms for t in times_ms)
        return Measurement(name, start_ms / 1000, end_ms / 1000, (end_ms - start_ms) / 1000,
                           window_energy(start_ms, end_ms, gpus, cpu), samples, tuple(notes))


def _column(rows: list[dict], key: str) -> np.ndarray:
    """One value of every row (NaN where it was not read)."""
    return np.array([math.nan if row.get(key) is None else row[key] for row in rows], dtype=float)
