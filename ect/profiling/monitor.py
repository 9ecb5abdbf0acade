"""EnergyMonitor: measurement windows over a background sampler, returning small dataclasses.

    with EnergyMonitor(folder, interval_s=0.1) as monitor:
        monitor.begin_window("training")
        ...
        measurement = monitor.end_window("training")

GPU energy comes from the NVML total-energy counter where the GPU has one ("counter"), else from
the trapezoid rule over its power samples ("integrated"). CPU energy comes from RAPL counters
("counter"), else from the utilisation x TDP estimate ("estimated"). Never an estimate for a GPU.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from ect.profiling.energy import counter_delta, covers, integrate_power_J
from ect.profiling.sampler import Sampler


@dataclass(frozen=True)
class Measurement:
    name: str
    start: float  # Unix time, s
    end: float
    duration_s: float
    gpu_energy_J: dict[int, float]  # per GPU index; empty when no GPU was measured
    gpu_energy_source: dict[int, str]  # per GPU: counter | integrated
    cpu_energy_J: float | None
    cpu_energy_source: str  # counter | estimated | unavailable
    dram_energy_J: float | None
    dram_energy_source: str  # counter | unavailable
    samples: int
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_energy_J(self) -> float:
        """GPU + CPU + DRAM energy of the window (the parts that were measured or estimated)."""
        parts = [*self.gpu_energy_J.values(), self.cpu_energy_J, self.dram_energy_J]
        return math.fsum(p for p in parts if p is not None and not math.isnan(p))

    def to_dict(self) -> dict:
        data = asdict(self)
        # No GPU measured is "unavailable", never zero joules.
        data["gpu_energy_J"] = {str(k): v for k, v in self.gpu_energy_J.items()} or None
        data["gpu_energy_source"] = {str(k): v for k, v in self.gpu_energy_source.items()} or "unavailable"
        data["total_energy_J"] = self.total_energy_J
        data["notes"] = list(self.notes)
        return data


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
            raise ValueError(f"measurement window {name!r} is already open")
        self._open[name] = self.sampler.sample_now()

    def end_window(self, name: str) -> Measurement:
        if name not in self._open:
            raise ValueError(f"measurement window {name!r} was never begun")
        start = self._open.pop(name)
        end = self.sampler.sample_now()
        self.windows[name] = self.measure(name, start, end)
        return self.windows[name]

    def measure(self, name: str, start_ms: int, end_ms: int) -> Measurement:
        """The energy of [start_ms, end_ms] (Unix ms) from the samples taken so far."""
        s = self.sampler
        with s._lock:
            times_ms, gpu_rows, cpu_rows = list(s.times_ms), list(s.gpu_rows), list(s.cpu_rows)
        # Seconds since the window's start: small numbers, exact differences.
        times = [(t - start_ms) / 1000 for t in times_ms]
        start, end = 0.0, (end_ms - start_ms) / 1000
        gpu_J, gpu_source = {}, {}
        for index in sorted({row["gpu_index"] for rows in gpu_rows for row in rows}):
            series = [(t, row) for t, rows in zip(times, gpu_rows) for row in rows if row["gpu_index"] == index]
            t = [x for x, _ in series]
            counters = [row.get("energy_counter_mJ") for _, row in series]
            if covers(t, counters, start, end):
                gpu_J[index], gpu_source[index] = counter_delta(t, counters, start, end) / 1e3, "counter"
            else:
                gpu_J[index] = integrate_power_J(t, [row["power_W"] for _, row in series], start, end)
                gpu_source[index] = "integrated"

        def column(key):
            return [math.nan if row.get(key) is None else row[key] for row in cpu_rows]

        notes = [f"{sensor.name}: {sensor.error}" for sensor in (*s.choice.gpu, *s.choice.cpu) if sensor.error]
        if any(row.get("rapl_package_energy_uJ") is not None for row in cpu_rows):
            cpu_J, cpu_source = counter_delta(times, column("rapl_package_energy_uJ"), start, end) / 1e6, "counter"
        elif any(row.get("cpu_power_estimated_W") is not None for row in cpu_rows):
            cpu_J, cpu_source = integrate_power_J(times, column("cpu_power_estimated_W"), start, end), "estimated"
        else:
            cpu_J, cpu_source = None, "unavailable"
        if any(row.get("rapl_dram_energy_uJ") is not None for row in cpu_rows):
            dram_J, dram_source = counter_delta(times, column("rapl_dram_energy_uJ"), start, end) / 1e6, "counter"
        else:
            dram_J, dram_source = None, "unavailable"
        samples = sum(start_ms <= t <= end_ms for t in times_ms)
        return Measurement(name, start_ms / 1000, end_ms / 1000, end, gpu_J, gpu_source, cpu_J, cpu_source,
                           dram_J, dram_source, samples, tuple(notes))
