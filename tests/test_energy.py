"""Energy arithmetic (ect.energy) against analytically known power traces."""

import math

import numpy as np
import pytest

from ect.energy import counter_delta, integrate_power_J

REL = 1e-9


def linear_power(t):
    return 100.0 + 20.0 * t  # W


def linear_energy(a, b):
    return 100.0 * (b - a) + 10.0 * (b * b - a * a)  # J, the integral of linear_power


def test_trapezoid_is_exact_for_power_linear_between_samples():
    times = np.sort(np.random.default_rng(1).uniform(0, 10, 57))
    times = np.concatenate(([0.0], times, [10.0]))
    power = linear_power(times)
    assert integrate_power_J(times, power, 0.0, 10.0) == pytest.approx(linear_energy(0, 10), rel=REL)
    # A window that starts and ends between samples: the ends are interpolated, not dropped.
    assert integrate_power_J(times, power, 1.3, 7.7) == pytest.approx(linear_energy(1.3, 7.7), rel=REL)


def test_trapezoid_is_exact_for_a_piecewise_linear_trace_with_kinks_at_samples():
    times = [0.0, 1.0, 2.5, 4.0, 4.1, 9.0]
    power = [50.0, 250.0, 250.0, 80.0, 300.0, 120.0]
    expected = sum((t1 - t0) * (p0 + p1) / 2 for t0, t1, p0, p1 in zip(times, times[1:], power, power[1:]))
    assert integrate_power_J(times, power, 0.0, 9.0) == pytest.approx(expected, rel=REL)


def test_missing_power_readings_are_skipped_not_counted_as_zero():
    times = [0.0, 1.0, 2.0, 3.0]
    assert integrate_power_J(times, [100.0, math.nan, 100.0, 100.0], 0.0, 3.0) == pytest.approx(300.0, rel=REL)


def test_counter_delta_over_a_window_at_sample_times_is_exact():
    times = np.linspace(0, 10, 101)
    counter = linear_energy(0, times) * 1e3  # mJ, the NVML counter of the linear trace
    assert counter_delta(times, counter, 1.0, 7.5) / 1e3 == pytest.approx(linear_energy(1.0, 7.5), rel=REL)


def test_window_outside_the_samples_is_clipped_not_extrapolated():
    assert integrate_power_J([0.0, 1.0], [10.0, 10.0], -5.0, 5.0) == pytest.approx(10.0, rel=REL)
    assert math.isnan(integrate_power_J([0.0], [10.0], 0.0, 1.0))


def test_window_energy_takes_a_counter_that_covers_the_window_else_integrates_and_says_so():
    from ect.energy import CpuSeries, GpuSeries, window_energy

    times_ms = np.arange(0, 11_000, 1000) + 1_795_000_000_000
    t = (times_ms - times_ms[0]) / 1000
    counter_mJ = linear_energy(0, t) * 1e3
    counter_mJ[1:-1:2] = np.nan  # read now and then, but at both edges
    gpus = {0: GpuSeries(times_ms, linear_power(t), counter_mJ),
            1: GpuSeries(times_ms, linear_power(t), np.full(len(t), np.nan))}  # no counter: integrated
    cpu = CpuSeries(times_ms, None, None, 2 * linear_power(t))
    energy = window_energy(int(times_ms[0]), int(times_ms[-1]), gpus, cpu)
    assert energy.gpu_source == {0: "counter", 1: "integrated"} and energy.gpu_sources == "counter+integrated"
    assert energy.gpu_J[0] == pytest.approx(linear_energy(0, 10), rel=REL)
    assert energy.gpu_J[1] == pytest.approx(linear_energy(0, 10), rel=REL)
    assert (energy.cpu_source, energy.dram_source, energy.dram_J) == ("estimated", "unavailable", None)
    assert energy.total_J == pytest.approx(4 * linear_energy(0, 10), rel=REL)
    nothing = window_energy(0, 1000, {}, None)
    assert (nothing.gpu_total_J, nothing.gpu_sources, nothing.cpu_source, nothing.total_J) == \
        (None, "unavailable", "unavailable", 0.0)
