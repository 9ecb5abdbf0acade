"""Real runs of the shipped path on an NVIDIA H200 (tests/fixtures/h200, README there) pass every check, the
cross-checks of counter, power, interval and samples included, and aggregate with the energy they logged; the run
killed mid-training is quarantined as failed."""

import shutil

import pandas as pd
import pytest

from conftest import REPO
from ect.aggregate.aggregate import aggregate
from ect.config import load_config
from ect.raw.manifest import read_manifest
from ect.validation import PASSED, QUARANTINED, Limits, validate_raw

FIXTURES = REPO / "tests" / "fixtures" / "h200" / "gpu_check"
COMPLETED = {("mobilenet_v2", "torch"), ("mobilenet_v2", "jax"), ("resnet50", "torch")}


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    raw = tmp_path_factory.mktemp("h200") / "raw"
    shutil.copytree(FIXTURES, raw / "gpu_check")
    results = validate_raw(raw, Limits(), raw.parent / "validation")
    return raw, {(r.folder.parent.name, read_manifest(r.folder).backend["name"]): r for r in results}


def test_completed_h200_runs_pass_every_check(validated):
    _, results = validated
    assert set(results) == COMPLETED | {("resnet50", "jax")}
    for key in COMPLETED:
        assert results[key].status == PASSED, [f.details for f in results[key].failures]
        assert results[key].failures == []


def test_the_run_killed_mid_training_is_quarantined_as_failed(validated):
    _, results = validated
    result = results[("resnet50", "jax")]
    assert result.status == QUARANTINED
    assert {f.column for f in result.failures} == {"status", "window_start_unix_s", "window_end_unix_s"}


def test_h200_runs_record_what_they_were_measured_on(validated):
    raw, _ = validated
    for folder in sorted(raw.glob("gpu_check/*/*")):
        manifest = read_manifest(folder)
        nvml = manifest.sensors.details["nvml"]
        assert nvml["driver_version"] == "580.159.04" and nvml["nvml_version"] == "13.580.159.04"
        (device,) = nvml["devices"]
        assert device["name"] == "NVIDIA H200" and device["uuid"].startswith("GPU-")
        assert device["power_limit_W"] == 700.0 and device["has_energy_counter"] is True
        assert manifest.host.gpus == ["NVIDIA H200"] and manifest.host.gpu_driver == "580.159.04"


def test_h200_runs_aggregate_to_the_energy_they_logged(validated, project, tmp_path):
    raw, _ = validated
    result = aggregate(raw, tmp_path / "out", load_config(project).environments, Limits())
    runs = pd.read_parquet(result.processed)
    assert sorted(zip(runs["architecture"], runs["backend"])) == sorted(COMPLETED)
    for row in runs.itertuples():
        logged = read_manifest(raw / "gpu_check" / row.architecture / row.run_id).energy["training"]
        assert row.gpu_energy_source == "counter"
        assert row.total_energy_J == pytest.approx(logged["total_energy_J"], rel=1e-6)
        assert row.gpu_name == "NVIDIA H200"


THERMAL = REPO / "tests" / "fixtures" / "h200_thermal" / "gpu_check"


def test_h200_runs_with_idle_baselines_pass_and_aggregate_idle_and_dynamic_energy(tmp_path, project):
    """Three repetitions on the H200 with IDLE_BASELINE 3 s and the thermal cool-down: each run's idle baseline
    (~116 W with the framework's CUDA context), the first as the campaign's reference, no hot start (36, 37, 38 C
    against 36 C + 2 C); validation warns of the short steady state only; the processed runs carry idle power,
    dynamic energy and an uncertainty well under the counter's 1 %-level agreement."""
    raw = tmp_path / "raw"
    shutil.copytree(THERMAL, raw / "gpu_check")
    results = validate_raw(raw, Limits(), tmp_path / "validation")
    assert [r.status for r in results] == [PASSED] * 3
    assert {w.check for r in results for w in r.warnings} == {"steady_state_long_enough"}
    manifests = [read_manifest(r.folder) for r in results]
    baselines = [m.idle_baseline for m in manifests]
    assert [b["start_temperature_C"] for b in baselines] == [36.0, 37.0, 38.0]
    assert [b["hot_start"] for b in baselines] == [False, False, False]
    assert baselines[0]["reference"] is None
    assert {b["reference"]["run"] for b in baselines[1:]} == {f"mobilenet_v2/{manifests[0].run_id}"}

    result = aggregate(raw, tmp_path / "out", load_config(project).environments, Limits())
    runs = pd.read_parquet(result.processed).sort_values("run_id")
    assert runs["gpu_idle_power_W"].between(115, 118).all()
    assert runs["dynamic_energy_J"].to_numpy() == pytest.approx(
        (runs["total_energy_J"] - runs["idle_power_W"] * runs["duration_s"]).to_numpy())
    assert (runs["gpu_energy_uncertainty_J"] < 0.02 * runs["gpu_energy_J"]).all()
    assert (runs["hot_start"] == False).all()  # noqa: E712 (a bool column)
