"""The DAGs against a real Airflow: DagBag, `airflow dags test`, a failing mapped run, and the trigger path."""

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import AIRFLOW, REPO, airflow, airflow_env, free_ports, json_lines
from ect.architectures import ARCHITECTURES
from histories import history, write_processed

pytestmark = pytest.mark.airflow

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
    assert local.timetable.summary == "0 2 * * *" and local.max_active_runs == 1 and not local.catchup
    assert not local.timetable.serialize()["run_immediately"] and local.start_date is None  # unpausing waits
    from ect.pipeline import TRIGGER_PARAMETERS

    assert set(local.params) == set(TRIGGER_PARAMETERS)  # preflight rejects any other conf key
    for name in TRIGGER_PARAMETERS:  # the form is valid as it opens: nothing required, empty = the configuration
        param = local.params.get_param(name)
        assert param.value is None and "null" in param.schema["type"], (name, param.schema)
    assert "host_check_watch" not in local.task_ids  # no QUEUE: host_check runs where preflight ran
    assert local.params.get_param("architectures").schema["examples"] == list(ARCHITECTURES)  # the form's choices
    assert "(ARCHITECTURES of the configuration" in local.params.get_param("architectures").description
    assert local.get_task("train").map_index_template == "{{ ect_run_label }}"
    assert "ect" in local.tags and "energy measurement window" in local.doc_md
    edges = {(t.task_id, d) for t in local.tasks for d in t.downstream_task_ids}
    assert {("preflight", "host_check"), ("host_check", "warm_up"), ("host_check", "planned_runs"),
            ("warm_up", "train"), ("planned_runs", "train"),
            ("train", "validate"), ("validate", "aggregate"), ("aggregate", "regression_check"),
            ("regression_check", "report"), ("report", "all_runs_measured"), ("report", "no_energy_regression"),
            ("validate", "all_runs_measured"), ("aggregate", "all_runs_measured"),
            ("preflight", "budget_approval"), ("budget_approval", "host_check")} <= edges
    # Skipped when no approval is needed: host_check runs all the same.
    assert local.get_task("host_check").trigger_rule == "none_failed_min_one_success"
    train = local.get_task("train")
    assert train.pool == "ect_local" and train.retries == 1
    assert local.get_task("validate").trigger_rule == "all_done_min_one_success"
    assert [a.name for a in local.get_task("aggregate").outlets] == ["ect_processed"]

    report = bag.dags["ect_report"]
    assert [asset.name for asset in report.schedule] == ["ect_processed"]  # runs when any environment aggregates
    assert report.is_paused_upon_creation is False

    cloud = bag.dags["ect_cloud"]
    from airflow.providers.docker.operators.docker import DockerOperator

    assert issubclass(cloud.get_task("train").operator_class, DockerOperator)
    assert cloud.get_task("train").partial_kwargs["pool"] == "ect_cloud"
    assert cloud.get_task("train").partial_kwargs["map_index_template"] == "{{ ect_run_label }}"
    assert cloud.get_task("train").partial_kwargs["environment_name"] == "cloud"  # with each run: its log's folder


def test_the_trigger_form_takes_architectures_and_backends_as_a_list_or_a_comma_separated_string(monkeypatch):
    import copy

    from ect.pipeline import config_for

    params = dagbag(monkeypatch).dags["ect_local"].params
    for given in (["vgg16", "tiny_cnn"], "vgg16,tiny_cnn", " vgg16 , tiny_cnn ", "vgg16", None):
        conf = copy.deepcopy(params)
        conf.update({"architectures": given})
        resolved = conf.validate()
        expected = ("vgg16", "tiny_cnn") if given not in ("vgg16", None) else (("vgg16",) if given else None)
        if expected:
            assert config_for(resolved, REPO).experiment.architectures == expected
    for wrong in ("nope", "vgg16;tiny_cnn", ["nope"], []):
        conf = copy.deepcopy(params)
        with pytest.raises(Exception, match="architectures"):
            conf.update({"architectures": wrong})
            conf.validate()
    for given, expected in ((["tensorflow", "jax"], ("tensorflow", "jax")), ("jax, torch", ("jax", "torch")),
                            (None, ("tensorflow",))):
        conf = copy.deepcopy(params)
        conf.update({"backends": given})
        assert config_for(conf.validate(), REPO).backends("local") == expected
    for wrong in ("mxnet", "jax;torch", ["caffe"], []):
        conf = copy.deepcopy(params)
        with pytest.raises(Exception, match="backends"):
            conf.update({"backends": wrong})
            conf.validate()


def test_with_a_queue_a_watch_on_the_default_queue_guards_host_check(project, monkeypatch):
    (project / "config" / "environments.yaml").write_text(
        "gpu:\n  RUNNER: process\n  QUEUE: ect_gpu\n  HOST_CHECK_TIMEOUT_S: 600\n")
    gpu = dagbag(monkeypatch, project).dags["ect_gpu"]
    edges = {(t.task_id, d) for t in gpu.tasks for d in t.downstream_task_ids}
    assert {("preflight", "host_check_watch"), ("host_check_watch", "warm_up"), ("host_check_watch", "train"),
            ("preflight", "host_check"), ("host_check", "warm_up")} <= edges
    watch = gpu.get_task("host_check_watch")
    assert watch.queue == "default" and watch.mode == "reschedule" and watch.timeout > 600
    assert gpu.get_task("host_check").queue == "ect_gpu"


def test_scheduled_runs_track_to_the_environments_experiment_and_the_parameter_overrides_it(project, monkeypatch):
    from ect import pipeline

    monkeypatch.setenv("ECT_HOME", str(project))
    monkeypatch.setenv("ECT_MLFLOW_ENABLED", "true")
    assert pipeline.preflight("local", {"profile": "demo"}, "scheduled__1")["experiment_name"] == "ect-local"
    named = pipeline.preflight("local", {"profile": "demo", "experiment_name": "mine"}, "manual__1")
    assert named["experiment_name"] == "mine"
    (project / "config" / "environments.yaml").write_text("local:\n  RUNNER: process\n  EXPERIMENT_NAME: nightly\n")
    assert pipeline.preflight("local", {"profile": "demo"}, "scheduled__2")["experiment_name"] == "nightly"
    monkeypatch.setenv("ECT_MLFLOW_ENABLED", "false")
    assert pipeline.preflight("local", {"profile": "demo"}, "scheduled__3")["experiment_name"] is None

    from ect.config import load_config
    from ect.runs.record import experiment_of  # what `ect profile`, `ect profile-run` and `ect train` use

    on = load_config(project, env={"ECT_MLFLOW_ENABLED": "true"})
    assert experiment_of(on, "local", None) == "nightly" and experiment_of(on, "local", "given") == "given"
    assert experiment_of(load_config(project, env={}), "local", None) is None  # MLflow off: nothing to track


def test_a_broken_environments_file_is_a_clear_import_error(project, monkeypatch):
    (project / "config" / "environments.yaml").write_text("local:\n  RUNNER: kubernetes\n")
    bag = dagbag(monkeypatch, project)
    (message,) = bag.import_errors.values()
    assert "environments.yaml" in message and "RUNNER='kubernetes'" in message and "process, docker" in message


def test_the_alert_callback_is_called_when_a_run_was_not_measured_or_energy_regressed(project, monkeypatch):
    (project / "ect_test_alerts.py").write_text("calls = []\n\ndef page(context):\n    calls.append(context)\n")
    monkeypatch.syspath_prepend(str(project))
    (project / "config" / "environments.yaml").write_text(
        "local:\n  RUNNER: process\n  ALERT_CALLBACK: ect_test_alerts.page\n")
    bag = dagbag(monkeypatch, project)
    assert bag.import_errors == {}
    import ect_test_alerts

    local = bag.dags["ect_local"]
    for task_id in ("all_runs_measured", "no_energy_regression"):
        callbacks = local.get_task(task_id).on_failure_callback
        for callback in callbacks if isinstance(callbacks, list) else [callbacks]:
            callback({"task_id": task_id})
    assert ect_test_alerts.calls == [{"task_id": "all_runs_measured"}, {"task_id": "no_energy_regression"}]
    assert not local.get_task("report").on_failure_callback  # the checks alert, not every task


def test_dags_test_runs_the_demo_and_leaves_validated_aggregated_output(airflow_home):
    root, env = airflow_home
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps({"profile": "demo"}), env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    task_output = result.stdout + result.stderr
    for startup in ("absl::InitializeLog", "oneDNN custom operations", "failed call to cuInit", "WARNING:tensorflow"):
        assert startup not in task_output  # kept beside the runs instead:
    kept = {p.parent.name: p.read_text() for p in (root / "metrics" / "logs" / "local").glob("*/*.log")}
    assert set(kept) == {"tiny_cnn", "vgg16"} and all("absl::InitializeLog" in text for text in kept.values())
    assert "tiny_cnn · tensorflow · rep 0 on local" in task_output
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

    # The demo again, at once: one repetition against one on a busy 2-core machine differs by chance, and the
    # regression check says it cannot judge that instead of failing the run.
    again = airflow("dags", "test", "ect_local", "--conf", json.dumps({"profile": "demo"}), env=env, check=False)
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    regression = json.loads((root / "out" / "local" / "regression.json").read_text())
    assert regression["baseline_campaigns"] and regression["regressions"] == []
    for verdict in regression["architectures"].values():
        assert verdict["status"] == "inconclusive" and verdict["decided_by"].startswith("needs 4 more latest")
    assert len(pd.read_parquet(root / "metrics" / "processed" / "runs.parquet")) == 4

    # Issue 28: the second demo projected its energy with the first's history (METRICS_DIR/processed/runs.parquet);
    # the report and `ect predict local --backtest --json` score the predictors on the two campaigns.
    bases = sorted(next(csv.DictReader(p.open()))["projection_basis"].split(";")[0].split(":")[0]
                   for p in (root / "metrics" / "raw" / "local").glob("*/*/history.csv"))
    assert bases == ["history (processed/runs.parquet, tiny_cnn on tensorflow)",
                     "history (processed/runs.parquet, vgg16 on tensorflow)", "plan only (no history)",
                     "plan only (no history)"]
    report = (root / "out" / "local" / "report.md").read_text()
    assert "### Energy projected while training" in report and "| TDP x time | 4 |" in report
    predicted = subprocess.run([sys.executable, "-m", "ect", "predict", "local", "--backtest", "--json"], env=env,
                               capture_output=True, text=True, timeout=600)
    assert predicted.returncode == 0, predicted.stdout[-3000:] + predicted.stderr[-3000:]
    backtest = json.loads(predicted.stdout)
    assert (backtest["environment"], backtest["campaigns"], backtest["runs"]) == ("local", 2, 4)
    assert list(backtest["predictors"]) == ["ect", "carbontracker", "step", "pre", "tdp_time"]
    for name, scored in backtest["predictors"].items():
        assert scored["runs"] + scored["missing"] == 4 and (scored["mape_pct"] is None) == (scored["runs"] == 0), name
        assert scored["runs"] == 0 or (math.isfinite(scored["mape_pct"]) and scored["mape_pct"] >= 0
                                       and math.isfinite(scored["rmse_J"]) and scored["rmse_J"] >= 0), name
        assert set(scored["coverage"]) == {"0.8", "0.95"}, name
    assert backtest["predictors"]["ect"]["runs"] == backtest["predictors"]["tdp_time"]["runs"] == 4


def test_a_dag_run_whose_plan_has_two_backends_ends_green_and_its_report_shows_the_backend(airflow_home, tmp_path):
    root, env = airflow_home
    metrics, out = tmp_path / "metrics", tmp_path / "out"
    env = {**env, "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(out)}  # this DAG run's runs alone
    conf = {"profile": "demo", "architectures": "tiny_cnn", "backends": ["tensorflow", "jax"]}
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps(conf), env=env, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    output = result.stdout + result.stderr
    assert "tiny_cnn · tensorflow · rep 0 on local" in output and "tiny_cnn · jax · rep 0 on local" in output
    runs = pd.read_parquet(metrics / "processed" / "runs.parquet")
    assert sorted(runs["backend"]) == ["jax", "tensorflow"] and runs["total_energy_J"].gt(0).all()
    assert runs.set_index("backend")["backend_version"].to_dict() == {"jax": "0.10.2", "tensorflow": "2.21.0"}
    manifests = [json.loads(p.read_text()) for p in (metrics / "raw" / "local").glob("*/*/manifest.json")]
    assert sorted(m["backend"]["name"] for m in manifests) == ["jax", "tensorflow"]
    jax_run = next(m for m in manifests if m["backend"]["name"] == "jax")
    assert jax_run["run_id"].endswith("-jax-rep00") and jax_run["status"] == "completed"
    summary = json.loads((metrics / "validation" / "summary.json").read_text())
    assert summary["passed"] == 2 and summary["quarantined"] == 0
    report = (out / "local" / "report.md").read_text()
    section = report.split("## Energy per architecture and backend")[1].split("\n## ")[0]
    assert "| local | tiny_cnn | jax | 1 |" in section and "| local | tiny_cnn | tensorflow | 1 |" in section, section
    regression = json.loads((out / "local" / "regression.json").read_text())
    assert set(regression["architectures"]) == {"tiny_cnn·jax", "tiny_cnn·tensorflow"}


def test_a_failed_training_task_leaves_the_other_runs_aggregated_and_the_failure_in_the_summary(
        airflow_home, tmp_path):
    root, env = airflow_home
    metrics = tmp_path / "metrics"
    (metrics / "raw" / "local").mkdir(parents=True)
    (metrics / "raw" / "local" / "vgg16").write_text("not a folder: every vgg16 run of this DAG run fails")
    env = {**env, "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps({"profile": "demo"}), env=env, check=False)
    assert result.returncode != 0  # the DAG run fails (all_runs_measured), after validating and aggregating
    assert "XCom not found" not in result.stdout + result.stderr  # no pull of a failed task's result

    runs = pd.read_parquet(metrics / "processed" / "runs.parquet")
    assert list(runs["architecture"]) == ["tiny_cnn"]
    summary = json.loads((metrics / "validation" / "summary.json").read_text())
    assert summary["passed"] == 1
    (missing,) = summary["planned_runs_without_folder"]
    assert missing.startswith("local/vgg16/")
    assert (tmp_path / "out" / "local" / "report.html").exists()


def test_a_run_that_fails_in_preflight_fails_all_runs_measured_without_reading_missing_results(airflow_home):
    root, env = airflow_home
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps({"profle": "demo"}), env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "unknown trigger parameter(s) 'profle'" in output, output[-4000:]
    assert "the runs of this DAG run were not validated" in output  # all_runs_measured ran, and said why
    assert "XCom not found" not in output  # it read no result of the tasks that never ran


def test_a_dag_run_over_its_energy_budget_stops_in_preflight_before_any_training(airflow_home, tmp_path):
    root, env = airflow_home
    metrics = tmp_path / "metrics"
    write_processed(metrics, history(campaigns=12))  # the demo's architectures, bounded 95 % intervals
    env = {**env, "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}
    conf = {"profile": "demo", "energy_budget_kwh": 0.004}
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps(conf), env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-4000:]
    assert "BudgetExceeded" in output and "predicted upper bound 0.006" in output, output[-4000:]
    assert "exceeds the energy budget 0.004 kWh (trigger parameter 'energy_budget_kwh')" in output
    assert "95 % upper end of 2 run(s); from 48 measured run(s) of environment local" in output
    assert "predicted energy and duration of the planned runs" in output and "vgg16" in output  # the table
    assert "tiny_cnn · tensorflow · rep 0 on local" not in output  # no training task ran
    assert not list((metrics / "raw").glob("local/*/*"))  # and no run folder was written


# This machine's HTTP proxy variables must not apply to the local API server.
LOCAL_HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url: str, timeout: float = 60) -> tuple[int, str]:
    try:
        with LOCAL_HTTP.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:]


def wait_until_healthy(base_url: str, server: subprocess.Popen, log_path: Path, timeout: float) -> None:
    """Waits until /api/v2/monitor/health says the DB, scheduler, DAG processor and triggerer are healthy."""
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"airflow standalone exited ({server.returncode}); log tail:\n{log_tail(log_path)}")
        try:
            status, body = http_get(f"{base_url}/api/v2/monitor/health", timeout=30)
            last = f"{status} {body}"
            health = json.loads(body) if status == 200 else {}
            if all((health.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")):
                return
        except (OSError, ValueError) as e:  # not listening yet, or an incomplete answer
            last = repr(e)
        time.sleep(2)
    raise AssertionError(f"Airflow not healthy after {timeout:.0f} s (last: {last}); log tail:\n{log_tail(log_path)}")


def warm_up(base_url: str) -> None:
    """Pays the API server's cold start (the execution API's first request takes seconds) before any task does."""
    for _ in range(10):
        started = time.monotonic()
        for path in ("/execution/health", "/execution/health/ping", "/api/v2/monitor/health", "/api/v2/version"):
            http_get(base_url + path)
        if time.monotonic() - started < 1:
            return


def api_token(base_url: str, airflow_home: Path) -> str:
    """An API token of the admin user (`airflow standalone` writes the simple auth manager's generated password)."""
    password = json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())["admin"]
    login = urllib.request.Request(f"{base_url}/auth/token", data=json.dumps({"username": "admin", "password": password})
                                   .encode(), headers={"Content-Type": "application/json"})
    return json.loads(LOCAL_HTTP.open(login, timeout=60).read())["access_token"]


def check_the_report_page_is_behind_airflows_login(base_url: str, token: str) -> None:
    """/ect-reports/: 401 without credentials, a browser sent to the login page, the list with an API token."""
    reports = f"{base_url}/ect-reports/"
    assert http_get(reports)[0] == 401 and http_get(f"{reports}local")[0] == 401
    browser = LOCAL_HTTP.open(urllib.request.Request(reports, headers={"Accept": "text/html"}), timeout=60)
    assert "/login" in browser.geturl() and "next=" in browser.geturl()
    listing = LOCAL_HTTP.open(urllib.request.Request(reports, headers={"Authorization": f"Bearer {token}"}), timeout=60)
    page = listing.read().decode()
    assert listing.status == 200 and 'href="local"' in page and "1 run(s)" in page, page[-2000:]


def api_send(method: str, url: str, token: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with LOCAL_HTTP.open(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def api_post(url: str, token: str, body: dict) -> tuple[int, dict]:
    return api_send("POST", url, token, body)


def api_patch(url: str, token: str, body: dict) -> tuple[int, dict]:
    return api_send("PATCH", url, token, body)


def wait_for_run(run_id: str, env: dict, log_path: Path, timeout: float = 420) -> tuple[str | None, dict]:
    """(the DAG run's state once it is success or failed, else the last seen; every run's state) of ect_local."""
    deadline, state, runs = time.monotonic() + timeout, None, {}
    while time.monotonic() < deadline:
        listed = airflow("dags", "list-runs", "ect_local", "-o", "json", env=env, check=False, timeout=120)
        runs = {r["run_id"]: r["state"] for r in json_lines(listed.stdout)} if listed.returncode == 0 else {}
        state = runs.get(run_id)
        if state in ("success", "failed"):
            break
        time.sleep(5)
    return state, runs


def api_get(url: str, token: str) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    return json.loads(LOCAL_HTTP.open(request, timeout=60).read())


# The project's own configuration for the triggered run: a minute on a CPU, so that a run with the form's defaults
# (every field empty: the configuration's values) can run in the test.
SMALL_EXPERIMENT = """\
MLFLOW_ENABLED: true
ARCHITECTURES: [tiny_cnn]
INITIAL_EPOCHS: 1
FT_EPOCHS: 1
REPETITIONS: 1
WARMUP_TIME: 0
COOLDOWN: 0
IDLE_BASELINE: 0.5
IMAGE_SIZE: 32
BATCH_SIZE: 16
WEIGHTS: none
BUDGET_APPROVAL: true
"""


def task_state(url: str, token: str) -> str | None:
    """A task instance's state (None while the scheduler has not made it yet)."""
    try:
        return api_get(url, token)["state"]
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


def check_a_run_over_its_budget_waits_for_approval_and_then_trains(runs_url: str, token: str, env: dict,
                                                                   log_path: Path, tmp_path: Path) -> None:
    """With BUDGET_APPROVAL, a DAG run over its energy budget (here the prior of the one run measured so far: too
    little history) waits in budget_approval, nothing trained, until a person approves it through the REST API's
    hitlDetails (what the UI's Required Actions page sends); then it trains and ends green."""
    status, accepted = api_post(runs_url, token, {"dag_run_id": "over-budget-1", "logical_date": None,
                                                  "conf": {"energy_budget_kwh": 1e-9}})
    assert status == 200, (status, accepted)
    task_url = f"{runs_url}/over-budget-1/taskInstances/budget_approval"
    deadline, state = time.monotonic() + 300, None
    while time.monotonic() < deadline:
        state = task_state(task_url, token)
        if state in ("awaiting_input", "success", "failed", "upstream_failed", "skipped"):
            break
        time.sleep(3)
    assert state == "awaiting_input", f"budget_approval {state}; log tail:\n{log_tail(log_path)}"
    # Answer once the scheduler has seen the task park (its executor event): Airflow 3.3.2 fails a task whose answer
    # came before that event (it then finds the resumed task queued), which a person never is fast enough to hit.
    parked = ("Received executor event with state success for task instance TaskInstanceKey(dag_id='ect_local', "
              "task_id='budget_approval', run_id='over-budget-1'")
    deadline = time.monotonic() + 300
    while parked not in log_path.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(2)
    assert parked in log_path.read_text(errors="replace"), log_tail(log_path)
    assert task_state(f"{runs_url}/over-budget-1/taskInstances/host_check", token) in (None, "none", "scheduled")
    assert not list((tmp_path / "metrics" / "raw").glob("local/*/over-budget-1-*"))  # nothing trained while waiting
    detail = api_get(f"{task_url}/-1/hitlDetails", token)
    assert "over the energy budget 1e-09 kWh" in detail["subject"], detail
    assert detail["options"] == ["Approve", "Reject"] and "prior point of 1 run(s)" in detail["body"], detail
    status, answered = api_patch(f"{task_url}/-1/hitlDetails", token, {"chosen_options": ["Approve"]})
    assert status == 200 and answered["chosen_options"] == ["Approve"], (status, answered)
    state, _ = wait_for_run("over-budget-1", env, log_path)
    if state != "success":
        states = {i["task_id"]: i["state"] for i in api_get(f"{runs_url}/over-budget-1/taskInstances", token)[
            "task_instances"]}
        logs = "".join(p.read_text(errors="replace")[-3000:] for p in (Path(env["AIRFLOW_HOME"]) / "logs").glob(
            "dag_id=ect_local/run_id=over-budget-1/task_id=budget_approval/**/*.log"))
        raise AssertionError(f"state {state}, tasks {states}; budget_approval's log:\n{logs}")
    assert task_state(task_url, token) == "success"
    runs = pd.read_parquet(tmp_path / "metrics" / "processed" / "runs.parquet")
    assert sorted(runs["run_id"]) == ["over-budget-1-rep00", "triggered-1-rep00"]


@pytest.mark.mlflow
def test_trigger_path_with_a_real_scheduler_and_api_server(airflow_home, project, tmp_path, mlflow_url):
    root, env = airflow_home
    # A schedule: unpausing must start nothing until its next time (yearly here, so never during the test).
    (project / "config" / "environments.yaml").write_text("local:\n  RUNNER: process\n  SCHEDULE: 0 0 1 1 *\n")
    (project / "config" / "experiment.yaml").write_text(SMALL_EXPERIMENT)
    # Free ports for every server `airflow standalone` opens: the API server and the two log servers.
    api_port, worker_log_port, trigger_log_port = free_ports(3)
    base_url = f"http://127.0.0.1:{api_port}"
    env = {**env, "AIRFLOW__API__PORT": str(api_port), "AIRFLOW__API__HOST": "127.0.0.1",
           "AIRFLOW__API__BASE_URL": base_url, "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(worker_log_port),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(trigger_log_port),
           # The default 5 s is too short for a busy 2-core machine: a timed-out `PATCH .../run` fails the task.
           "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
           "ECT_HOME": str(project), "ECT_METRICS_DIR": str(tmp_path / "metrics"),
           "ECT_OUTPUT_DIR": str(tmp_path / "out"), "MLFLOW_TRACKING_URI": mlflow_url,
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    airflow("dags", "reserialize", env=env)
    log_path = tmp_path / "standalone.log"
    log = open(log_path, "w")
    server = subprocess.Popen([AIRFLOW, "standalone"], env=env, stdout=log, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        wait_until_healthy(base_url, server, log_path, timeout=240)  # 15-35 s on an idle 2-core machine
        warm_up(base_url)
        airflow("dags", "unpause", "ect_local", env=env, timeout=120)
        token = api_token(base_url, Path(env["AIRFLOW_HOME"]))

        # The trigger form as the UI gets it: every field optional, empty by default.
        details = api_get(f"{base_url}/api/v2/dags/ect_local/details", token)
        form = details["params"]
        assert set(form) == {"architectures", "backends", "repetitions", "profile", "dataset", "initial_epochs",
                             "ft_epochs", "experiment_name", "energy_budget_kwh"}
        for name, param in form.items():
            assert param["value"] is None and "null" in param["schema"]["type"], (name, param)
        assert form["profile"]["schema"]["enum"] == [None, "demo", "fashion"]
        assert "ect-local (EXPERIMENT_NAME of environment local)" in form["experiment_name"]["description"]

        runs_url = f"{base_url}/api/v2/dags/ect_local/dagRuns"
        status, refused = api_post(runs_url, token, {"dag_run_id": "refused-1", "logical_date": None,
                                                     "conf": {"architectures": "vgg16;nope"}})
        assert status == 400 and "architectures" in json.dumps(refused), (status, refused)
        # What the form's Trigger button sends when nothing is filled in: the configuration's values, as a
        # scheduled run has them (MLflow on, no experiment given: EXPERIMENT_NAME's default, ect-local).
        status, accepted = api_post(runs_url, token, {"dag_run_id": "triggered-1", "logical_date": None, "conf": {}})
        assert status == 200 and accepted["conf"] == {}, (status, accepted)
        state, runs = wait_for_run("triggered-1", env, log_path)
        assert state == "success", f"state {state}; log tail:\n{log_tail(log_path)}"
        # The run took over a minute; unpausing started no scheduled run in that time (the other runs in this
        # metadata DB are the `airflow dags test` runs of the tests before), and the refused trigger made none.
        assert not [run for run in runs if run.startswith("scheduled__")] and "refused-1" not in runs, runs
        runs = pd.read_parquet(tmp_path / "metrics" / "processed" / "runs.parquet")
        assert list(runs["run_id"]) == ["triggered-1-rep00"] and list(runs["architecture"]) == ["tiny_cnn"]

        from mlflow.tracking import MlflowClient

        client = MlflowClient(mlflow_url)
        experiment = client.get_experiment_by_name("ect-local")
        assert experiment is not None and experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        (tracked,) = client.search_runs([experiment.experiment_id])
        assert tracked.data.tags["ect_run_key"] == "local/tiny_cnn/triggered-1-rep00"
        assert tracked.data.tags["dag_run_id"] == "triggered-1"
        train_log = "".join(p.read_text(errors="replace") for p in (Path(env["AIRFLOW_HOME"]) / "logs").glob(
            "dag_id=ect_local/run_id=triggered-1/task_id=train/**/*.log"))
        link = f"/#/experiments/{experiment.experiment_id}/runs/{tracked.info.run_id}?workflowType=machine_learning"
        assert mlflow_url + link in train_log  # the run's page, in the UI's classic ML view

        check_the_report_page_is_behind_airflows_login(base_url, token)
        instances = api_get(f"{runs_url}/triggered-1/taskInstances", token)
        labels = [i["rendered_map_index"] for i in instances["task_instances"] if i["task_id"] == "train"]
        assert labels == ["tiny_cnn · tensorflow · rep 0"], instances
        dags = {d["dag_id"]: d for d in api_get(f"{base_url}/api/v2/dags", token)["dags"]}
        assert dags["ect_report"]["is_paused"] is False  # active on creation, never unpaused
        # No budget: the approval step (BUDGET_APPROVAL is on) was skipped.
        assert {i["task_id"]: i["state"] for i in instances["task_instances"]}["budget_approval"] == "skipped"
        check_a_run_over_its_budget_waits_for_approval_and_then_trains(runs_url, token, env, log_path, tmp_path)
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
