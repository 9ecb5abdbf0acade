"""Each energy's uncertainty (ect.energy, README "Energy measurement": Uncertainty) against hand-computed cases: a GPU
counter, integrated GPU power, RAPL counters, the CPU estimate and their totals; and on real H200 runs."""

import math

import numpy as np
import pytest

from conftest import REPO
from ect.energy import CpuSeries, GpuSeries, window_energy

START_MS = 1_795_000_000_000
REL = 1e-9
RAPL_UNIT_J = 2.0 ** -14  # the energy status unit the rule takes for a RAPL reading


def series(step_s: float, end_s: float = 10.0):
    """Sample times in Unix ms from START_MS to START_MS + end_s, and the same in seconds since the start."""
    t = np.round(np.arange(0, end_s + step_s / 2, step_s), 6)
    return START_MS + np.round(t * 1000).astype("int64"), t


def ramp_W(t):
    return 100.0 + 20.0 * t  # 100 W at 0 s to 300 W at 10 s


def ramp_J(t):
    return 100.0 * t + 10.0 * t * t  # its integral from 0


def energy(gpus=None, cpu=None, end_s: float = 10.0):
    return window_energy(START_MS, START_MS + round(end_s * 1000), gpus or {}, cpu)


def test_a_gpu_counter_is_uncertain_by_its_resolution_and_one_update_at_each_edge():
    times_ms, t = series(0.1)
    counter_mJ = ramp_J(t) * 1000
    counter_mJ[np.arange(len(t)) % 10 != 0] = np.nan  # read once a second and at both edges
    result = energy({0: GpuSeries(times_ms, ramp_W(t), counter_mJ)})
    assert result.gpu_source == {0: "counter"} and result.gpu_J[0] == pytest.approx(2000.0, rel=REL)
    # 2 x 1 mJ + 0.1 s x (the highest power within 1 s of each edge: 120 W at 1 s, 300 W at 10 s); the trapezoid of
    # a linear ramp agrees with the counter: no disagreement.
    assert result.gpu_uncertainty_J[0] == pytest.approx(0.002 + 0.1 * (120.0 + 300.0), rel=REL)
    assert result.gpu_total_uncertainty_J == result.total_uncertainty_J == result.gpu_uncertainty_J[0]


def test_a_counter_that_disagrees_with_the_power_adds_the_disagreement():
    times_ms, t = series(0.1)
    power = np.full(len(t), 300.0)
    agreeing = energy({0: GpuSeries(times_ms, power, 300.0 * t * 1000)})
    assert agreeing.gpu_uncertainty_J[0] == pytest.approx(0.002 + 0.1 * (300.0 + 300.0), rel=REL)  # 60.002 J
    off = energy({0: GpuSeries(times_ms, power, 1.01 * 300.0 * t * 1000)})  # 3030 J against 3000 J of power
    assert off.gpu_J[0] == pytest.approx(3030.0, rel=REL)
    assert off.gpu_uncertainty_J[0] == pytest.approx(60.002 + 30.0, rel=REL)


def test_integrated_power_is_uncertain_by_its_sampling_and_the_one_second_average_at_the_edges():
    times_ms, t = series(1.0)
    result = energy({0: GpuSeries(times_ms, ramp_W(t), np.full(len(t), np.nan))})
    assert result.gpu_source == {0: "integrated"} and result.gpu_J[0] == pytest.approx(2000.0, rel=REL)
    sampling = 10 * 1.0 * 20.0 / 2  # each 1 s step: half of the step x the 20 W the power moved
    edges = 1.0 * (120.0 + 300.0)  # 1 s x the highest power within 1 s of each edge
    assert result.gpu_uncertainty_J[0] == pytest.approx(sampling + edges, rel=REL)  # 520 J


def test_rapl_counters_are_uncertain_by_their_unit_and_one_millisecond_update_at_each_edge():
    times_ms, t = series(0.1)
    result = energy(cpu=CpuSeries(times_ms, rapl_package_uJ=50.0 * t * 1e6, rapl_dram_uJ=10.0 * t * 1e6))
    assert (result.cpu_source, result.dram_source) == ("counter", "counter")
    assert (result.cpu_J, result.dram_J) == (pytest.approx(500.0, rel=REL), pytest.approx(100.0, rel=REL))
    assert result.cpu_uncertainty_J == pytest.approx(2 * RAPL_UNIT_J + 0.001 * 2 * 50.0, rel=REL)  # 0.1001 J
    assert result.dram_uncertainty_J == pytest.approx(2 * RAPL_UNIT_J + 0.001 * 2 * 10.0, rel=REL)
    assert result.total_uncertainty_J == pytest.approx(4 * RAPL_UNIT_J + 0.12, rel=REL)


def test_a_cpu_estimate_is_uncertain_by_half_of_itself_and_totals_add_every_part():
    times_ms, t = series(0.1)
    counter_mJ = ramp_J(t) * 1000
    gpus = {0: GpuSeries(times_ms, ramp_W(t), counter_mJ), 1: GpuSeries(times_ms, ramp_W(t), counter_mJ)}
    result = energy(gpus, CpuSeries(times_ms, estimated_W=np.full(len(t), 20.0)))
    assert result.cpu_source == "estimated" and result.cpu_J == pytest.approx(200.0, rel=REL)
    assert result.cpu_uncertainty_J == pytest.approx(100.0, rel=REL)
    assert result.gpu_total_uncertainty_J == pytest.approx(2 * 42.002, rel=REL)
    assert result.total_uncertainty_J == pytest.approx(2 * 42.002 + 100.0, rel=REL)


def test_what_was_not_measured_adds_no_uncertainty_and_has_none():
    nothing = energy()
    assert (nothing.gpu_total_uncertainty_J, nothing.cpu_uncertainty_J) == (None, None)
    assert nothing.total_uncertainty_J == 0.0
    times_ms, t = series(0.1)
    gpu_only = energy({0: GpuSeries(times_ms, np.full(len(t), 300.0), 300.0 * t * 1000)},
                      CpuSeries(times_ms))  # a CPU sensor with no energy column read
    assert (gpu_only.cpu_source, gpu_only.cpu_J, gpu_only.cpu_uncertainty_J) == ("unavailable", None, None)
    assert gpu_only.total_uncertainty_J == pytest.approx(60.002, rel=REL)


def test_a_counter_without_power_readings_takes_its_mean_power_at_the_edges():
    times_ms, t = series(0.1)
    result = energy({0: GpuSeries(times_ms, np.full(len(t), np.nan), 300.0 * t * 1000)})
    assert result.gpu_uncertainty_J[0] == pytest.approx(0.002 + 0.1 * 2 * 300.0, rel=REL)


def test_real_h200_runs_carry_their_uncertainty_in_the_processed_row():
    from ect.aggregate.runs import run_row
    from ect.aggregate.samples import read_cpu, read_gpu
    from ect.raw.manifest import read_manifest

    folder = REPO / "tests" / "fixtures" / "h200" / "gpu_check" / "mobilenet_v2" / "20261204T175232Z-torch-rep00"
    row = run_row(folder, read_manifest(folder), read_gpu(folder), read_cpu(folder), {})
    assert (row["gpu_energy_source"], row["cpu_energy_source"]) == ("counter", "estimated")
    # The counter over a 40 s training: edges and disagreement within 1 % of the GPU energy (README: whole trainings
    # agree within 1 %); the CPU estimate's band is half of it; the total adds them.
    assert 0 < row["gpu_energy_uncertainty_J"] < 0.01 * row["gpu_energy_J"]
    assert row["cpu_energy_uncertainty_J"] == pytest.approx(0.5 * row["cpu_energy_J"], rel=REL)
    assert row["dram_energy_uncertainty_J"] is None
    assert row["total_energy_uncertainty_J"] == pytest.approx(
        row["gpu_energy_uncertainty_J"] + row["cpu_energy_uncertainty_J"], rel=REL)
    assert all(math.isfinite(row[c]) for c in ("gpu_energy_uncertainty_J", "total_energy_uncertainty_J"))
