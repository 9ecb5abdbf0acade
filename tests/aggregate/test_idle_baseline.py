"""Processed runs carry the idle baseline recomputed from the samples of the idle window: idle power, the energy
above idle (dynamic), the start temperature and whether the run started hot; runs without one have None."""

import math

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, log_lines
from raw_runs import write_run_with_idle_baseline, write_valid_run
from ect.aggregate.aggregate import aggregate
from ect.aggregate.runs import IDLE_COLUMNS, run_row
from ect.aggregate.samples import read_cpu, read_gpu
from ect.config import load_config
from ect.raw.manifest import read_manifest
from ect.validation import Limits

ENVIRONMENTS = load_config(REPO, env={}).environments


def test_idle_power_and_dynamic_energy_by_hand(tmp_path):
    folder = write_run_with_idle_baseline(tmp_path / "raw" / "local" / "vgg16" / "night-rep01", hot_start=True)
    row = run_row(folder, read_manifest(folder), read_gpu(folder), read_cpu(folder), ENVIRONMENTS)

    # GPU: 100 W over the idle window (0-0.9 s), 300 W x 3.8 s = 1140 J in the measurement window (1.0-4.8 s).
    assert row["gpu_energy_J"] == pytest.approx(1140.0, rel=1e-12)
    assert row["idle_duration_s"] == 0.9 and row["gpu_idle_power_W"] == pytest.approx(100.0, rel=1e-12)
    assert row["gpu_dynamic_energy_J"] == pytest.approx(1140.0 - 100.0 * 3.8, rel=1e-12)
    # CPU: the estimate 30 + 0.25 x (i mod 4) W at the samples 0.0, 0.1, ..., 0.9 s, by the trapezoid rule.
    estimate = [30 + 0.25 * (i % 4) for i in range(10)]
    cpu_idle_W = np.trapezoid(estimate, dx=0.1) / 0.9
    assert row["cpu_idle_power_W"] == pytest.approx(cpu_idle_W, rel=1e-12)
    assert row["idle_power_W"] == pytest.approx(100.0 + cpu_idle_W, rel=1e-12)
    assert row["dynamic_energy_J"] == pytest.approx(row["total_energy_J"] - (100.0 + cpu_idle_W) * 3.8, rel=1e-12)
    assert row["start_temperature_C"] == 40.0 and row["hot_start"] is True


def test_processed_runs_keep_the_idle_columns_and_none_without_a_baseline(tmp_path):
    raw = tmp_path / "metrics" / "raw"
    write_run_with_idle_baseline(raw / "local" / "vgg16" / "night-rep01", hot_start=True)
    write_run_with_idle_baseline(raw / "local" / "vgg16" / "night-rep02", hot_start=False)
    write_valid_run(raw / "local" / "vgg16" / "older-rep00")  # measured before idle baselines
    with log_lines():
        result = aggregate(raw, tmp_path / "metrics", ENVIRONMENTS, Limits())
    assert result.failed == {} and result.runs == 3
    runs = pd.read_parquet(result.processed).set_index("run_id")
    assert set(IDLE_COLUMNS) <= set(runs.columns)
    assert runs["hot_start"].to_dict() == {"night-rep01": True, "night-rep02": False, "older-rep00": None}
    assert all(math.isnan(runs.loc["older-rep00", column]) for column in IDLE_COLUMNS if column != "hot_start")
    assert runs.loc["night-rep02", "gpu_idle_power_W"] == pytest.approx(100.0)
    csv = pd.read_csv(result.processed.with_suffix(".csv")).set_index("run_id")
    assert csv.loc["night-rep01", "dynamic_energy_J"] == pytest.approx(runs.loc["night-rep01", "dynamic_energy_J"])
