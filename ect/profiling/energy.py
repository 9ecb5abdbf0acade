"""Energy of a time window from sampled power or from an energy counter. Pure functions, exact arithmetic."""

from __future__ import annotations

from typing import Sequence

import numpy as np


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
