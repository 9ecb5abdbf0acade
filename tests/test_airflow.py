"""The DAGs against a real Airflow: DagBag, `airflow dags test`, a failing mapped run, and the trigger path."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

AIRFLOW = str(Path(sys.executable).parent / "airflow")


def airflow_env(home: Path, metrics: Path, dataset: Path, ect_home: Path = REPO) -> dict:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "ECT_HOME": str(ect_home), "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(metrics.parent / "out"),
        "ECT_DATASET_DIR": str(dataset), "ECT_MODELS_DIR": str(metrics.parent / "models"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # standalone runs `airflow`
    }


def airflow(*args, env, timeout=600, check=True):
    result = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"airflow {' '.join(args)} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory, synthetic_dataset):
    """A migrated SQLite metadata DB with the environments' pools and the DAGs serialized."""
    root = tmp_path_factory.mktemp("airflow")
    env = airflow_env(root / "home", root / "metrics", synthetic_dataset)
    airflow("db", "migrate", env=env)
    pools = subprocess.run([sys.executable, "-m", "ect", "pools"], env=env, capture_output=True, text=True, check=True)
    (root / "pools.json").write_text(pools.stdout)
    airflow("pools", "import", str(root / "pools.json"), env=env)
    airflow("dags", "reserialize", env=env)
    return root, env


def dagbag(monkeypatch, ect_home: Path = REPO):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("ECT_HOME", str(ect_home))
    return DagBag(dag_folder=str(REPO / "dags"))


def test_every_environment_has_a_dag_with_the_expected_graph(monkeypatch):
    bag = dagbag(monkeypatch)
    assert bag.import_errors == {}
    assert {"ect_local", "ect_cloud"} <= set(bag.dag_ids)
    local = bag.dags["ect_local"]
    assert local.schedule == "0 2 * * *" and local.max_active_runs == 1 and not local.catchup
    assert {"architectures", "repetitions", "profile", "dataset", "initial_epochs", "ft_epochs"} <= set(local.params)
    assert "ect" in local.tags and "energy measurement window" in local.doc_md
    edges = {(t.task_id, d) for t in local.tasks for d in t.downstream_task_ids}
    assert {("preflight", "warm_up"), ("preflight", "planned_runs"), ("warm_up", "train"), ("planned_runs", "train"),
            ("train", "validate"), ("validate", "aggregate"), ("aggregate", "regression_check"),
            ("regression_check", "report"), ("report", "all_runs_measured"), ("report", "no_energy_regression")} <= edges
    train = local.get_task("train")
    assert train.pool == "ect_local" and train.retries == 1
    assert local.get_task("validate").trigger_rule == "all_done_min_one_success"
    assert [a.name for a in local.get_task("aggregate").outlets] == ["ect_processed"]

    report = bag.dags["ect_report"]
    assert [asset.name for asset in report.schedule] == ["ect_processed"]  # runs when any environment aggregates

    cloud = bag.dags["ect_cloud"]
    from airflow.providers.docker.operators.docker import DockerOperator

    assert issubclass(cloud.get_task("train").operator_class, DockerOperator)
    assert cloud.get_task("train").partial_kwargs["pool"] == "ect_cloud"


def test_a_broken_environments_file_is_a_clear_import_error(project, monkeypatch):
    (project / "config" / "environments.yaml").write_text("local:\n  RUNNER: kubernetes\n")
    bag = dagbag(monkeypatch, project)
    (message,) = bag.import_errors.values()
    assert "environments.yaml" in message and "RUNNER='kubernetes'" in message and "process, docker" in message


def test_dags_test_runs_the_demo_and_leaves_validated_aggregated_output(airflow_home):
    root, env = airflow_home
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps({"profile": "demo"}), env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    runs = pd.read_parquet(root / "metrics" / "processed" / "runs.parquet")
    assert sorted(runs["architecture"]) == ["tiny_cnn", "vgg16"]
    assert (runs["cpu_energy_source"] == "estimated").all() and runs["total_energy_J"].gt(0).all()
    summary = json.loads((root / "metrics" / "validation" / "summary.json").read_text())
    assert summary["passed"] == 2 and summary["quarantined"] == 0 and summary["planned_runs_without_folder"] == []
    report = (root / "out" / "local" / "report.md").read_text()
    assert "| local | tiny_cnn | 1 |" in report and "| local | vgg16 | 1 |" in report
    assert (root / "out" / "local" / "report.html").exists()
    regression = json.loads((root / "out" / "local" / "regression.json").read_text())
    assert regression["regressions"] == [] and set(regression["architectures"]) == {"tiny_cnn", "vgg16"}


def test_a_failed_training_task_leaves_the_other_runs_aggregated_and_the_failure_in_the_summary(
        airflow_home, tmp_path):
    root, env = airflow_home
    metrics = tmp_path / "metrics"
    (metrics / "raw" / "local").mkdir(parents=True)
    (metrics / "raw" / "local" / "vgg16").write_text("not a folder: every vgg16 run of this DAG run fails")
    env = {**env, "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps({"profile": "demo"}), env=env, check=False)
    assert result.returncode != 0  # the DAG run fails (all_runs_measured), after validating and aggregating

    runs = pd.read_parquet(metrics / "processed" / "runs.parquet")
    assert list(runs["architecture"]) == ["tiny_cnn"]
    summary = json.loads((metrics / "validation" / "summary.json").read_text())
    assert summary["passed"] == 1
    (missing,) = summary["planned_runs_without_folder"]
    assert missing.startswith("local/vgg16/")
    assert (tmp_path / "out" / "local" / "report.html").exists()


def json_lines(output: str) -> list:
    """The JSON list an `airflow ... -o json` command printed (its log lines may come first)."""
    return next((json.loads(line) for line in output.splitlines() if line.startswith("[")), [])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_trigger_path_with_a_real_scheduler_and_api_server(airflow_home, project, tmp_path):
    root, env = airflow_home
    # Manual runs only: unpausing a nightly DAG would also start the latest scheduled (full-size) run.
    (project / "config" / "environments.yaml").write_text("local:\n  RUNNER: process\n  SCHEDULE: null\n")
    port = free_port()
    env = {**env, "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__HOST": "127.0.0.1",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "ECT_HOME": str(project), "ECT_METRICS_DIR": str(tmp_path / "metrics"),
           "ECT_OUTPUT_DIR": str(tmp_path / "out")}
    airflow("dags", "reserialize", env=env)
    log = open(tmp_path / "standalone.log", "w")
    server = subprocess.Popen([AIRFLOW, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        airflow("dags", "unpause", "ect_local", env=env, timeout=120)
        conf = {"profile": "demo", "architectures": ["tiny_cnn"]}
        airflow("dags", "trigger", "ect_local", "--conf", json.dumps(conf), "--run-id", "triggered-1", env=env,
                timeout=120)
        deadline, state = time.monotonic() + 420, None
        while time.monotonic() < deadline:
            listed = airflow("dags", "list-runs", "ect_local", "-o", "json", env=env, check=False, timeout=120)
            runs = {r["run_id"]: r["state"] for r in json_lines(listed.stdout)} if listed.returncode == 0 else {}
            state = runs.get("triggered-1")
            if state in ("success", "failed"):
                break
            time.sleep(5)
        assert state == "success", f"state {state}; log tail:\n{(tmp_path / 'standalone.log').read_text()[-4000:]}"
        runs = pd.read_parquet(tmp_path / "metrics" / "processed" / "runs.parquet")
        assert list(runs["run_id"]) == ["triggered-1-rep00"]
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
