"""Energy of a measurement window, units and carbon: the arithmetic the profiler and the aggregation share.

The rule, in one place (window_energy): a GPU's energy is its NVML counter's increase where the counter was read
at the window's edges ("counter"), else the trapezoid rule over its power samples ("integrated"); CPU energy is
the RAPL package counter's increase ("counter"), else the integrated utilisation x TDP estimate ("estimated");
DRAM energy is the RAPL DRAM counter's increase. What was not measured is "unavailable", never zero joules.
Pure functions, exact arithmetic: times are whole milliseconds, turned into seconds since the window's start.

Each energy carries its uncertainty in joules, from how it was measured (the rule: window_energy's helpers below,
README "Energy measurement", Uncertainty).
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

# Uncertainty: how far a reported energy can be from the true one, as a bound in joules (not a standard deviation:
# nothing says how each part is distributed). The parts of one energy, and the energies of a total, add: a sum of
# bounds is a bound, whereas a root-sum-square treats the parts as independent random errors, which they are not
# (both edge terms of a window move with the same power, and the counter-power disagreement holds the edges' lag).
NVML_COUNTER_RESOLUTION_J = 1e-3  # NVML's energy counter counts whole mJ: each edge's reading is within 1 mJ
NVML_UPDATE_S = 0.1  # the counter and power_W update every 100 ms (H200, README "On a real GPU")
NVML_POWER_AVERAGE_S = 1.0  # power_W is a one-second average on recent GPUs: it lags each edge by up to 1 s
RAPL_RESOLUTION_J = 2.0 ** -14  # RAPL's energy status unit: 61 uJ on Intel servers (15.3 uJ elsewhere), read in uJ
RAPL_UPDATE_S = 1e-3  # RAPL's counters update about every millisecond
CPU_ESTIMATE_SHARE = 0.5  # TDP x utilisation is a rough estimate (no idle draw, no turbo): +/- 50 % of itself


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
    gpu_uncertainty_J: dict[int, float] = field(default_factory=dict)  # per GPU, as gpu_J
    cpu_uncertainty_J: float | None = None  # None where cpu_J is
    dram_uncertainty_J: float | None = None

    @property
    def gpu_total_J(self) -> float | None:
        return math.fsum(self.gpu_J.values()) if self.gpu_J else None

    @property
    def gpu_total_uncertainty_J(self) -> float | None:
        """The GPUs' uncertainties added (bounds add), NaN where gpu_total_J is."""
        return math.fsum(self.gpu_uncertainty_J.values()) if self.gpu_J else None

    @property
    def gpu_sources(self) -> str:
        """The GPUs' sources as one label: counter, integrated, counter+integrated or unavailable."""
        return "+".join(sorted(set(self.gpu_source.values()))) or "unavailable"

    @property
    def total_J(self) -> float:
        """GPU + CPU + DRAM energy of the window (the parts that were measured or estimated)."""
        parts = [*self.gpu_J.values(), self.cpu_J, self.dram_J]
        return math.fsum(p for p in parts if p is not None and not math.isnan(p))

    @property
    def total_uncertainty_J(self) -> float:
        """The uncertainties of the parts total_J adds, added: each is a bound, and so is their sum."""
        parts = [*((e, self.gpu_uncertainty_J[i]) for i, e in self.gpu_J.items()),
                 (self.cpu_J, self.cpu_uncertainty_J), (self.dram_J, self.dram_uncertainty_J)]
        return math.fsum(u for e, u in parts if e is not None and not math.isnan(e))


def _read(values: np.ndarray | None) -> bool:
    return values is not None and not np.isnan(values).all()


def edge_power_W(t: np.ndarray, power_W: np.ndarray, edges: tuple[float, float],
                 reach: float = NVML_POWER_AVERAGE_S) -> list[float]:
    """The power near each edge: the highest power_W reading within `reach` of it (times, edges and reach in one
    unit; by default NVML_POWER_AVERAGE_S, as the one-second average lags a change of load by up to that long), else
    the power interpolated at the edge; NaN without readings. Also validation's counter-power tolerance."""
    t, p = _readings(t, power_W)
    if not len(t):
        return [math.nan, math.nan]
    near = [np.abs(t - edge) <= reach for edge in edges]
    return [float(np.max(p[close])) if close.any() else float(np.interp(edge, t, p))
            for close, edge in zip(near, edges)]


def gpu_counter_uncertainty_J(t: np.ndarray, series: GpuSeries, end: float, energy_J: float) -> float:
    """A counter's GPU energy over [0, end]: each edge's reading is within the counter's resolution and may be one
    update old (NVML_UPDATE_S x the power near the edge), plus the counter-power disagreement, |counter - trapezoid
    of power_W|, where the power readings cover the window (the validation's cross-check bounds it; nothing says
    which of the two is off, so the whole of it counts). Without power readings the edges take the counter's mean
    power."""
    edge_W = edge_power_W(t, series.power_W, (0.0, end))
    if any(math.isnan(w) for w in edge_W):
        edge_W = [energy_J / end] * 2 if end > 0 else [0.0, 0.0]
    disagreement = 0.0
    if covers(t, series.power_W, 0.0, end):
        disagreement = abs(energy_J - integrate_power_J(t, series.power_W, 0.0, end))
    return 2 * NVML_COUNTER_RESOLUTION_J + NVML_UPDATE_S * math.fsum(map(abs, edge_W)) + disagreement


def gpu_integrated_uncertainty_J(t: np.ndarray, series: GpuSeries, end: float) -> float:
    """Integrated power's GPU energy over [0, end]: the trapezoid rule's sampling error, at most half of each step x
    the power's change over it (power that moves monotonically between two samples gives between the step x the
    lower and x the higher one; the trapezoid takes the middle), plus NVML's one-second average at the edges
    (NVML_POWER_AVERAGE_S x the power near each edge: the energy the lag moves across it)."""
    points_t, points_W = _window_points(t, series.power_W, 0.0, end)
    if len(points_t) < 2:
        return math.nan
    sampling = math.fsum(np.diff(points_t) * np.abs(np.diff(points_W)) / 2)
    edge_W = edge_power_W(t, series.power_W, (0.0, end))
    return sampling + NVML_POWER_AVERAGE_S * math.fsum(map(abs, edge_W))


def rapl_uncertainty_J(energy_J: float, end: float) -> float:
    """A RAPL counter's energy over [0, end]: each edge's reading within the energy status unit, and up to one update
    old (RAPL_UPDATE_S x the window's mean power: the term is a thousandth of a second's energy, its mean suffices)."""
    mean_W = abs(energy_J) / end if end > 0 else 0.0
    return 2 * RAPL_RESOLUTION_J + RAPL_UPDATE_S * 2 * mean_W


def estimate_uncertainty_J(energy_J: float) -> float:
    """The CPU estimate's own band: CPU_ESTIMATE_SHARE of it."""
    return CPU_ESTIMATE_SHARE * abs(energy_J)


def window_energy(start_ms: int, end_ms: int, gpus: Mapping[int, GpuSeries], cpu: CpuSeries | None) -> WindowEnergy:
    """The energy of the window [start_ms, end_ms] from its samples, with its uncertainty, by the rule of this
    module."""
    end = (end_ms - start_ms) / 1000
    gpu_J, gpu_source, gpu_uncertainty_J = {}, {}, {}
    for index, series in gpus.items():
        t = (np.asarray(series.times_ms, dtype="int64") - start_ms) / 1000
        if covers(t, series.counter_mJ, 0.0, end):
            gpu_J[index] = counter_delta(t, series.counter_mJ, 0.0, end) / MILLIJOULES_PER_JOULE
            gpu_source[index] = "counter"
            gpu_uncertainty_J[index] = gpu_counter_uncertainty_J(t, series, end, gpu_J[index])
        else:
            gpu_J[index] = integrate_power_J(t, series.power_W, 0.0, end)
            gpu_source[index] = "integrated"
            gpu_uncertainty_J[index] = gpu_integrated_uncertainty_J(t, series, end)
    if cpu is None:
        return WindowEnergy(gpu_J, gpu_source, gpu_uncertainty_J=gpu_uncertainty_J)
    t = (np.asarray(cpu.times_ms, dtype="int64") - start_ms) / 1000
    cpu_J, cpu_source, dram_J, dram_source = None, "unavailable", None, "unavailable"
    cpu_uncertainty_J = dram_uncertainty_J = None
    if _read(cpu.rapl_package_uJ):
        cpu_J, cpu_source = counter_delta(t, cpu.rapl_package_uJ, 0.0, end) / MICROJOULES_PER_JOULE, "counter"
        cpu_uncertainty_J = rapl_uncertainty_J(cpu_J, end)
    elif _read(cpu.estimated_W):
        cpu_J, cpu_source = integrate_power_J(t, cpu.estimated_W, 0.0, end), "estimated"
        cpu_uncertainty_J = estimate_uncertainty_J(cpu_J)
    if _read(cpu.rapl_dram_uJ):
        dram_J, dram_source = counter_delta(t, cpu.rapl_dram_uJ, 0.0, end) / MICROJOULES_PER_JOULE, "counter"
        dram_uncertainty_J = rapl_uncertainty_J(dram_J, end)
    return WindowEnergy(gpu_J, gpu_source, cpu_J, cpu_source, dram_J, dram_source, gpu_uncertainty_J,
                        cpu_uncertainty_J, dram_uncertainty_J)
