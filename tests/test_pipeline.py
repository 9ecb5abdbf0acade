"""The DAG steps as plain functions: what preflight checks on any worker and what host_check checks on the GPU host."""

import pytest

from ect import pipeline
from ect.errors import ConfigError, RunsNotMeasured


def test_preflight_plans_without_the_dataset_that_only_the_gpu_host_has(project, monkeypatch, tmp_path):
    monkeypatch.setenv("ECT_HOME", str(project))
    monkeypatch.setenv("ECT_DATASET_DIR", str(tmp_path / "only-on-the-gpu-host"))
    checked = []
    plan = pipeline.preflight("local", {"profile": "demo"}, "manual__1", placement_check=lambda env: checked.append(env.name) or "ok")
    assert checked == ["local"] and [run["run_id"] for run in plan["runs"]] == ["manual__1-rep00", "manual__1-rep00"]
    assert plan["dataset_dir"] == str(tmp_path / "only-on-the-gpu-host")
    with pytest.raises(ConfigError, match="only-on-the-gpu-host does not exist"):
        pipeline.host_check("local", {"profile": "demo"}, runner_check=lambda env, cfg: "ok")


def test_a_trigger_conf_with_an_unknown_key_fails_preflight_naming_it(project, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    with pytest.raises(ConfigError) as raised:
        pipeline.preflight("local", {"profile": ""}, "manual__1", conf={"profle": "demo", "repetitions": 1})
    message = str(raised.value)
    assert "unknown trigger parameter(s) 'profle'" in message and "repetitions" not in message.split("accepted")[0]
    assert ("accepted: architectures, backends, repetitions, initial_epochs, ft_epochs, energy_budget_kwh, profile, "
            "dataset, experiment_name") in message


def test_a_bad_trigger_value_is_called_a_trigger_parameter(project, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    with pytest.raises(ConfigError, match=r"^trigger parameter 'initial_epochs': INITIAL_EPOCHS=0: expected"):
        pipeline.config_for({"initial_epochs": 0})


def test_all_runs_measured_names_every_planned_run_that_left_no_valid_aggregated_result():
    summary = {"passed": ["local/vgg16/a", "local/vgg16/b"], "quarantined": {"local/vgg16/c": ["gpu.csv bad"]},
               "missing": ["local/vgg16/d"], "summary": "/m/validation/summary.json"}
    aggregation = {"processed": "/m/processed/runs.parquet", "quarantined": {"local/vgg16/b": "aggregation error: X",
                                                                              "local/other/z": "not ours"}}
    with pytest.raises(RunsNotMeasured) as raised:
        pipeline.check_all_measured(summary, aggregation)
    assert str(raised.value).splitlines() == [
        "3 planned run(s) were not measured or not valid (see /m/validation/summary.json):",
        "local/vgg16/c: gpu.csv bad", "local/vgg16/d: no run folder (the task failed before measuring)",
        "local/vgg16/b: passed validation but failed to aggregate, quarantined: aggregation error: X"]
    good = {"passed": ["local/vgg16/a"], "quarantined": {}, "missing": [], "summary": "s"}
    pipeline.check_all_measured(good, aggregation)  # another run's aggregation error is not this DAG run's
    pipeline.check_all_measured(good, None)  # the aggregate task failed: that task fails the DAG run itself
    with pytest.raises(RunsNotMeasured, match="were not validated"):
        pipeline.check_all_measured(None, aggregation)
