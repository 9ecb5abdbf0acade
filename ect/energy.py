"""Energy of a measurement window, units and carbon: the arithmetic the profiler and the aggregation share.

The rule, in one place (window_energy): a GPU's energy is its NVML counter's increase where the counter was read
at the window's edges ("counter"), else the trapezoid rule over its power samples ("integrated"); CPU energy is
the RAPL package counter's increase ("counter"), else the integrated utilisation x TDP estimate ("estimated");
DRAM energy is the RAPL DRAM counter's increase. What was not measured is "unavailable", never zero joules.
Pure functions, exact arithmetic: times are whole milliseconds, turned into seconds since the window's start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

JOULES_PER_KWH = 3.6e6
MILLIJOULES_PER_JOULE = 1e3  # NVML's energy counter counts mJ
MICROJOULES_PER_JOULE = 1e6  # RAPL's counters count uJ
DEFAULT_CARBON_INTENSITY_GCO2E_PER_KWH = 232.0  # the original's (Spain)
DEFAULT_PUE = 1.0


def to_kWh(joules):
    return joules / JOULES_PER_KWH


DEFAULT_CARBON_SOURCE = "default: 232 gCO2e/kWh, PUE 1.0 (the original's)"


def carbon_factors(environment) -> tuple[float, float, str]:
    """(carbon intensity in gCO2e/kWh, PUE, where the intensity comes from) of an environment of
    config/environments.yaml (its `carbon_intensity()`: the configured value, else CodeCarbon's data for its
    location, else the original's), else the original's."""
    if environment is None:
        return DEFAULT_CARBON_INTENSITY_GCO2E_PER_KWH, DEFAULT_PUE, DEFAULT_CARBON_SOURCE
    intensity, source = environment.carbon_intensity()
    return intensity, environment.pue, source


def emissions_gCO2e(energy_kWh: float, environment) -> float:
    """energy x PUE x carbon intensity of the environment."""
    intensity, pue, _ = carbon_factors(environment)
    return energy_kWh * pue * intensity


def _readings(times_s: Sequence[float], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Times and values of the samples that have a reading (NaN values dropped)."""
    t = np.asarray(times_s, dtype=float)
    v = np.asarray(values, dtype=float)
    missing = np.isnan(v)
    return (t[~missing], v[~missing]) if missing.any() else (t, v)


def _window(t: np.ndarray, start: float, end: float) -> tuple[float, float] | None:
    """The window [start, end] cut to the readings' span (no extrapolation beyond the samples); None when
    there is nothing to measure."""
    if len(t) < 2 or end <= start:
        return None
    return max(start, t[0]), min(end, t[-1])


def _window_points(times_s: Sequence[float], values: Sequence[float], start: float, end: float):
    """The samples inside [start, end] plus values linearly interpolated at start and end (NaNs dropped).
    Times increase, as np.interp needs them to."""
    t, v = _readings(times_s, values)
    if (window := _window(t, start, end)) is None:
        return np.empty(0), np.empty(0)
    start, end = window
    first, stop = np.searchsorted(t, start, side="right"), np.searchsorted(t, end, side="left")  # start < t < end
    points_t = np.concatenate(([start], t[first:stop], [end]))
    points_v = np.concatenate(([np.interp(start, t, v)], v[first:stop], [np.interp(end, t, v)]))
    return points_t, points_v


def integrate_power_J(times_s: Sequence[float], power_W: Sequence[float], start: float, end: float) -> float:
    """Trapezoid rule over power samples (W) at times (s), restricted to the window [start, end]: joules.

    Exact for power that is linear between samples. NaN samples (missing readings) are skipped.
    """
    t, p = _window_points(times_s, power_W, start, end)
    return float(np.trapezoid(p, t)) if len(t) else float("nan")


def covers(times_s: Sequence[float], values: Sequence[float], start: float, end: float) -> bool:
    """Whether readings (not NaN/None) exist at or before `start` and at or after `end`: a counter read
    only now and then still measures the window exactly when it was read at the window's edges."""
    read, _ = _readings(times_s, values)
    return bool(len(read)) and read[0] <= start and read[-1] >= end


def counter_delta(times_s: Sequence[float], counter: Sequence[float], start: float, end: float) -> float:
    """Increase of a cumulative (already unwrapped) counter over [start, end], in the counter's unit."""
    t, c = _readings(times_s, counter)
    if (window := _window(t, start, end)) is None:
        return float("nan")
    start, end = window  # the counter at the window's edges: _window_points' first and last values
    return float(np.interp(end, t, c) - np.interp(start, t, c))


@dataclass(frozen=True)
class GpuSeries:
    """One GPU's samples: times in Unix ms, power in W, the energy counter in mJ (NaN between its reads)."""

    times_ms: np.ndarray
    power_W: np.ndarray
    counter_mJ: np.ndarray


@dataclass(frozen=True)
class CpuSeries:
    """The CPU samples: times in Unix ms, and each energy column (NaN where not read; None: not measured)."""

    times_ms: np.ndarray
    rapl_package_uJ: np.ndarray | None = None
    rapl_dram_uJ: np.ndarray | None = None
    estimated_W: np.ndarray | None = None


@dataclass(frozen=True)
class WindowEnergy:
    gpu_J: dict[int, float] = field(default_factory=dict)  # per GPU index; empty when no GPU was measured
    gpu_source: dict[int, str] = field(default_factory=dict)  # per GPU: counter | integrated
    cpu_J: float | None = None
    cpu_source: str = "unavailable"  # counter | estimated | unavailable
    dram_J: float | None = None
    dram_source: str = "unavailable"  # counter | unavailable

    @property
    def gpu_total_J(self) -> float | None:
        return math.fsum(self.gpu_J.values()) if self.gpu_J else None

    @property
    def gpu_sources(self) -> str:
        """The GPUs' sources as one label: counter, integrated, counter+integrated or unavailable."""
        return "+".join(sorted(set(self.gpu_source.values()))) or "unavailable"

    @property
    def total_J(self) -> float:
        """GPU + CPU + DRAM energy of the window (the parts that were measured or estimated)."""
        parts = [*self.gpu_J.values(), self.cpu_J, self.dram_J]
        return math.fsum(p for p in parts if p is not None and not math.isnan(p))


def _read(values: np.ndarray | None) -> bool:
    return values is not None and not np.isnan(values).all()


def window_energy(start_ms: int, end_ms: int, gpus: Mapping[int, GpuSeries], cpu: CpuSeries | None) -> WindowEnergy:
    """The energy of the window [start_ms, end_ms] from its samples, by the rule of this module."""
    end = (end_ms - start_ms) / 1000
    gpu_J, gpu_source = {}, {}
    for index, series in gpus.items():
        t = (np.asarray(series.times_ms, dtype="int64") - start_ms) / 1000
        if covers(t, series.counter_mJ, 0.0, end):
            gpu_J[index] = counter_delta(t, series.counter_mJ, 0.0, end) / MILLIJOULES_PER_JOULE
            gpu_source[index] = "counter"
        else:
            gpu_J[index] = integrate_power_J(t, series.power_W, 0.0, end)
            gpu_source[index] = "integrated"
    if cpu is None:
        return WindowEnergy(gpu_J, gpu_source)
    t = (np.asarray(cpu.times_ms, dtype="int64") - start_ms) / 1000
    cpu_J, cpu_source, dram_J, dram_source = None, "unavailable", None, "unavailable"
    if _read(cpu.rapl_package_uJ):
        cpu_J, cpu_source = counter_delta(t, cpu.rapl_package_uJ, 0.0, end) / MICROJOULES_PER_JOULE, "counter"
    elif _read(cpu.estimated_W):
        cpu_J, cpu_source = integrate_power_J(t, cpu.estimated_W, 0.0, end), "estimated"
    if _read(cpu.rapl_dram_uJ):
        dram_J, dram_source = counter_delta(t, cpu.rapl_dram_uJ, 0.0, end) / MICROJOULES_PER_JOULE, "counter"
    return WindowEnergy(gpu_J, gpu_source, cpu_J, cpu_source, dram_J, dram_source)
