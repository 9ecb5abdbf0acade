"""Repetitions that stop when the answer is known (issue 26, part 7): with EARLY_STOP_SPREAD, once the completed runs of
an architecture on a backend in one campaign (at least EARLY_STOP_MIN_RUNS) spread by at most the target, (max - min)
/ median of their energy, its remaining repetitions are skipped: in `ect profile` (logged, counted as skipped, not
failed), by the DAG's training task (which ends without training) and, in the validation summary, as skipped rather
than missing."""

import json
import shutil

import pytest

from conftest import REPO, log_lines
from ect.config import load_config
from ect.raw.layout import RunKey
from ect.runs.plan import PlannedRun, answer_known, early_stop_reason, energy_spread, plan_runs
from ect.runs.profiled import run_folder


def _config(root):
    """The repository's configuration in `root`, its METRICS_DIR there."""
    shutil.copytree(REPO / "config", root / "config")
    return load_config(root, overrides={"METRICS_DIR": str(root / "metrics")}, env={})


def write_completed(folder, energy_J, status="completed"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_text(json.dumps({
        "run_id": folder.name, "environment": folder.parent.parent.name, "architecture": folder.parent.name,
        "status": status, "energy": {"training": {"total_energy_J": energy_J}}}))


@pytest.mark.parametrize("energies, expected", [
    ([100.0, 102.0, 101.0], 0.02 / 1.01), ([100.0], None), ([], None), ([0.0, 0.0], None), ([90.0, 110.0], 0.2),
])
def test_the_spread_is_the_range_over_the_median(energies, expected):
    assert energy_spread(energies) == (None if expected is None else pytest.approx(expected, rel=1e-12))


def test_the_answer_is_known_after_the_minimum_within_the_target():
    assert answer_known([100.0, 101.0], 0.02, 3) is None  # too few runs
    assert answer_known([100.0, 101.0, 110.0], 0.02, 3) is None  # spread 10 %
    assert answer_known([100.0, 101.0, 101.5], 0, 3) is None  # off
    reason = answer_known([100.0, 101.0, 101.5], 0.02, 3)
    assert "3 completed runs spread by 1.49 %" in reason and "EARLY_STOP_SPREAD 2 %" in reason
    assert "100-101.5 J" in reason


def test_a_run_is_skipped_on_its_siblings_completed_runs_only(tmp_path):
    plan = plan_runs(["vgg16", "resnet50"], 5, "c1", backends=("tensorflow", "jax"))
    folder_of = lambda r: RunKey("local", r.architecture, r.run_id).folder(tmp_path)  # noqa: E731
    vgg_tf = [r for r in plan if (r.architecture, r.backend) == ("vgg16", "tensorflow")]
    for run, energy in zip(vgg_tf, (1000.0, 1005.0)):
        write_completed(folder_of(run), energy)
    write_completed(folder_of(vgg_tf[2]), 1002.0, status="failed")  # a failed run does not count
    for run in [r for r in plan if r.architecture == "resnet50" or r.backend == "jax"][:6]:
        write_completed(folder_of(run), 5000.0)  # other architectures and backends do not count either
    assert early_stop_reason(vgg_tf[3], plan, folder_of, 0.02, 3) is None
    write_completed(folder_of(vgg_tf[2]), 1002.0)
    assert "3 completed runs" in early_stop_reason(vgg_tf[3], plan, folder_of, 0.02, 3)
    assert early_stop_reason(vgg_tf[3], plan, folder_of, 0.0, 3) is None  # off by default
    write_completed(folder_of(vgg_tf[3]), 1001.0)  # a retry of a completed run measures (reuses) it
    assert early_stop_reason(vgg_tf[3], plan, folder_of, 0.02, 3) is None


@pytest.fixture
def campaign(project, monkeypatch):
    """`ect profile` of tiny_cnn and vgg16 x 5 repetitions with EARLY_STOP_SPREAD 2 %, each run a fake process that
    writes a completed manifest: tiny_cnn's energies within 1 %, vgg16's 20 % apart."""
    import ect.runs.campaign as campaign_module

    (project / "data" / "demo-dataset").mkdir(parents=True)
    cfg = load_config(project, "demo", overrides={"REPETITIONS": 5, "EARLY_STOP_SPREAD": 0.02, "BACKENDS": "tensorflow",
                                                  "MLFLOW_ENABLED": False}, env={})
    energies = {"tiny_cnn": [1000.0, 1010.0, 1005.0, 1003.0, 1001.0], "vgg16": [1000.0, 1200.0, 1100.0, 1050.0, 900.0]}
    launched = []

    class Done:
        returncode = 0

    def fake_run(command, *args, **kwargs):
        arguments = command[3:]
        assert arguments[0] == "profile-run"
        architecture, repetition = arguments[2], int(arguments[arguments.index("--repetition") + 1])
        run_id = arguments[arguments.index("--run-id") + 1]
        launched.append((architecture, repetition))
        write_completed(run_folder(cfg, RunKey("local", architecture, run_id)), energies[architecture][repetition])
        return Done()

    monkeypatch.setattr(campaign_module.subprocess, "run", fake_run)
    return cfg, launched


def test_ect_profile_skips_the_repetitions_whose_answer_is_known(campaign):
    from ect.runs.campaign import profile_campaign

    cfg, launched = campaign
    with log_lines() as lines:
        failed = profile_campaign(cfg, "local", [])
    assert failed == 0  # skipped runs are not failed
    assert [rep for arch, rep in launched if arch == "tiny_cnn"] == [0, 1, 2]
    assert [rep for arch, rep in launched if arch == "vgg16"] == [0, 1, 2, 3, 4]
    skips = [line for line in lines if "skipped: the answer is known" in line]
    assert len(skips) == 2 and all("tiny_cnn · tensorflow" in line for line in skips)
    assert "3 completed runs spread by 0.995 % ((max - min) / median of 1000-1010 J)" in skips[0]
    assert "profiled 8/10 runs" in lines[-1] and "skipped (EARLY_STOP_SPREAD): 2" in lines[-1]


def test_ect_profile_runs_every_repetition_when_early_stop_is_off(campaign):
    from ect.runs.campaign import profile_campaign

    cfg, launched = campaign
    off = load_config(cfg.root, "demo", overrides={"REPETITIONS": 5, "BACKENDS": "tensorflow"}, env={})
    assert off.experiment.early_stop_spread == 0
    with log_lines():
        assert profile_campaign(off, "local", []) == 0
    assert len(launched) == 10


def test_the_dag_task_of_a_run_whose_answer_is_known_skips_its_training(tmp_path):
    from ect.runners.process import early_stop_skip

    cfg = _config(tmp_path)
    plan = [run.to_dict() for run in plan_runs(["vgg16"], 4, "manual__2026", backends=("jax",))]
    for run, energy in zip(plan[:3], (500.0, 501.0, 502.0)):
        write_completed(run_folder(cfg, RunKey("local", "vgg16", run["run_id"])), energy)
    last = PlannedRun.from_dict(plan[3])
    assert early_stop_skip(cfg, "local", last, plan, None) is None  # a plan of before early stop: it trains
    assert early_stop_skip(cfg, "local", last, plan, {"spread": 0, "min_runs": 3}) is None  # off
    with log_lines() as lines:
        reason = early_stop_skip(cfg, "local", last, plan, {"spread": 0.01, "min_runs": 3})
    assert reason.startswith("the answer is known: 3 completed runs")
    assert lines == [f"vgg16 · jax · rep 3: skipped, {reason}"]


def test_validation_lists_a_skipped_run_as_skipped_not_missing(tmp_path):
    from ect import pipeline

    cfg = load_config(_config(tmp_path).root, overrides={"METRICS_DIR": str(tmp_path / "metrics"),
                                                         "EARLY_STOP_SPREAD": 0.01}, env={})
    plan = [run.to_dict() for run in plan_runs(["vgg16"], 5, "manual__2026", backends=("tensorflow",))]
    raw = tmp_path / "metrics" / "raw"
    for run, energy in zip(plan[:3], (500.0, 501.0, 502.0)):
        write_completed(RunKey("local", "vgg16", run["run_id"]).folder(raw), energy)
    (tmp_path / "metrics" / "validation").mkdir()  # as validation leaves it

    class Passed:
        def __init__(self, run):
            self.run, self.status, self.failures = run, "passed", []

    results = [Passed(RunKey("local", "vgg16", run["run_id"]).name) for run in plan[:3]]
    summary = pipeline.planned_runs_summary(cfg, "local", plan, results)
    names = [RunKey("local", "vgg16", run["run_id"]).name for run in plan[3:]]
    assert summary["missing"] == [] and sorted(summary["skipped"]) == names
    assert "3 completed runs" in summary["skipped"][names[0]]
    pipeline.check_all_measured(summary)  # skipped runs do not fail the DAG run
    written = json.loads((tmp_path / "metrics" / "validation" / "summary.json").read_text())
    assert sorted(written["planned_runs_skipped"]) == names and written["planned_runs_without_folder"] == []

    off = load_config(cfg.root, overrides={"METRICS_DIR": str(tmp_path / "metrics")}, env={})
    assert pipeline.planned_runs_summary(off, "local", plan, results)["missing"] == names


def test_a_docker_training_task_gets_the_runs_of_its_architecture_and_backend():
    from ect.runners.docker import early_stop_of

    runs = [run.to_dict() for run in plan_runs(["vgg16", "resnet50"], 2, "c1", backends=("tensorflow", "jax"))]
    early_stop = early_stop_of({"early_stop": {"spread": 0.02, "min_runs": 3}, "runs": runs}, runs[0])
    assert early_stop["spread"] == 0.02 and early_stop["min_runs"] == 3
    assert {(r["architecture"], r["backend"]) for r in early_stop["runs"]} == {("vgg16", "tensorflow")}
    assert len(early_stop["runs"]) == 2
    assert early_stop_of({"early_stop": {"spread": 0, "min_runs": 3}, "runs": runs}, runs[0]) is None
    assert early_stop_of({"runs": runs}, runs[0]) is None  # a plan of before early stop
