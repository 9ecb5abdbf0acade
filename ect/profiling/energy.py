"""Energy of a time window from sampled power or from an energy counter. Pure functions, exact arithmetic."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _window_points(times_s: Sequence[float], values: Sequence[float], start: float, end: float):
    """The samples inside [start, end] plus values linearly interpolated at start and end (NaNs dropped)."""
    t = np.asarray(times_s, dtype=float)
    v = np.asarray(values, dtype=float)
    keep = ~np.isnan(v)
    t, v = t[keep], v[keep]
    if len(t) < 2 or end <= start:
        return np.empty(0), np.empty(0)
    start, end = max(start, t[0]), min(end, t[-1])  # no extrapolation beyond the samples
    inside = (t > start) & (t < end)
    points_t = np.concatenate(([start], t[inside], [end]))
    points_v = np.concatenate(([np.interp(start, t, v)], v[inside], [np.interp(end, t, v)]))
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
    t = np.asarray(times_s, dtype=float)
    read = t[~np.isnan(np.asarray(values, dtype=float))]
    return bool(len(read)) and read[0] <= start and read[-1] >= end


def counter_delta(times_s: Sequence[float], counter: Sequence[float], start: float, end: float) -> float:
    """Increase of a cumulative (already unwrapped) counter over [start, end], in the counter's unit."""
    t, c = _window_points(times_s, counter, start, end)
    return float(c[-1] - c[0]) if len(t) else float("nan")
