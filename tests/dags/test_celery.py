"""Each environment on its own GPU host, for real: Airflow's CeleryExecutor with PostgreSQL and Redis, a scheduler,
a DAG processor and an API server, and two Celery workers, one per GPU host (queues ect_local and ect_cloud, both
also serving the default queue), each with its own ECT home, METRICS_DIR and scratch folder. The run store (s3://
on a local S3-compatible server, credentials only in the Airflow connection ect_store) is the only thing they share.
Each GPU host's worker is started as README says: `ect worker ENVIRONMENT`, with only the central host's variables.

Needs Debian's postgresql and redis-server (marker celery): .ci/run installs both; a plain `make test` leaves it out.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import (AIRFLOW, REPO, S3_CREDENTIALS, airflow, free_ports, json_lines, new_bucket, stop,
                      store_connection, wait_for_http)
from ect.store import RunStore

pytestmark = [pytest.mark.celery, pytest.mark.airflow]

SECRET = S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
CONF = {"profile": "demo", "architectures": ["tiny_cnn"]}
ENVIRONMENTS = """\
local:
  RUNNER: process
  QUEUE: ect_local
  SCHEDULE: null
  RETRY_DELAY_S: 5
cloud:
  RUNNER: process
  QUEUE: ect_cloud
  SCHEDULE: null
  RETRY_DELAY_S: 5
nowhere:
  RUNNER: process
  QUEUE: ect_nowhere
  SCHEDULE: null
lost:
  RUNNER: process
  QUEUE: ect_lost
  SCHEDULE: null
"""
# What `ect worker` sets itself: a GPU host's worker gets none of these from the operator.
WORKER_SETS = ("AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER", "AIRFLOW__CORE__LOAD_EXAMPLES",
               "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT", "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")


def postgres_bin(name: str) -> str:
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"))
    assert found, "PostgreSQL is not installed (Debian's postgresql; .ci/run installs it)"
    return str(found[-1])


def as_postgres(*command: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True, text=True)


def ect_home(root: Path, store_url: str) -> Path:
    """A project root of its own: the repository's config with these environments and the run store."""
    shutil.copytree(REPO / "config", root / "config")
    (root / "config" / "environments.yaml").write_text(ENVIRONMENTS)
    base = (root / "config" / "base.yaml").read_text()
    (root / "config" / "base.yaml").write_text(base + f"\nRUN_STORE: {store_url}\n")
    return root


class Deployment:
    """The processes of the deployment, their environments, and what they left behind."""

    def __init__(self, root: Path, common: dict):
        self.root, self.common, self.processes, self.logs = root, common, {}, root / "logs"
        self.logs.mkdir(exist_ok=True)

    def env_of(self, name: str, **extra) -> dict:
        home = self.root / name
        return {**self.common, "ECT_HOME": str(home), "ECT_METRICS_DIR": str(home / "metrics"),
                "ECT_OUTPUT_DIR": str(home / "out"), "ECT_MODELS_DIR": str(home / "models"), **extra}

    def start(self, label: str, home: str, *command: str, program=(AIRFLOW,), env: dict | None = None,
              **extra) -> subprocess.Popen:
        log = open(self.logs / f"{label}.log", "a")
        process = subprocess.Popen([*program, *command], env=env or self.env_of(home, **extra), stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        self.processes[label] = process
        return process

    def worker_env(self, label: str) -> dict:
        """A GPU host's variables as README lists them: the central services' and its ECT home, nothing else."""
        return {k: v for k, v in self.env_of(label).items() if k not in WORKER_SETS}

    def worker(self, label: str, log_port: int) -> subprocess.Popen:
        """The GPU host's worker as README starts it: `ect worker ENVIRONMENT` (its queue and the default queue)."""
        return self.start(label, label, "worker", label, "--hostname", f"{label}@%h", "--log-port", str(log_port),
                          "--default-queue", program=(sys.executable, "-m", "ect"), env=self.worker_env(label))

    def log_tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-2500:]}" for p in sorted(self.logs.glob("*.log")))

    def wait_for_workers(self, labels, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while not all(" ready." in (self.logs / f"{label}.log").read_text(errors="replace") for label in labels):
            assert time.monotonic() < deadline, f"Celery workers not ready:\n{self.log_tail()}"
            for label in labels:
                assert self.processes[label].poll() is None, f"worker {label} exited:\n{self.log_tail()}"
            time.sleep(2)

    def run_state(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline, state = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            listed = airflow("dags", "list-runs", dag_id, "-o", "json", env=self.env_of("control"), check=False,
                             timeout=120)
            state = {r["run_id"]: r["state"] for r in json_lines(listed.stdout)}.get(run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(5)
        return state

    def trigger(self, dag_id: str, run_id: str, conf: dict = CONF) -> None:
        airflow("dags", "trigger", dag_id, "--conf", json.dumps(conf), "--run-id", run_id,
                env=self.env_of("control"), timeout=120)

    def sql(self, query: str) -> list[tuple]:
        import psycopg2

        with psycopg2.connect(self.common["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].replace("+psycopg2", "")) as db:
            with db.cursor() as cursor:
                cursor.execute(query)
                return cursor.fetchall()


@pytest.fixture(scope="module")
def deployment(synthetic_dataset, s3_endpoint):
    root = Path(tempfile.mkdtemp(prefix="ect-celery-"))  # under /tmp: PostgreSQL's user must reach its folder
    pg_port, redis_port, api_port, log_a, log_b, log_s = free_ports(6)
    dep = Deployment(root, {})
    pgdata = root / "pg"
    try:
        pgdata.mkdir()
        shutil.chown(root, "postgres")
        shutil.chown(pgdata, "postgres")
        as_postgres(postgres_bin("initdb"), "-D", str(pgdata), "-A", "trust", "-U", "airflow")
        as_postgres(postgres_bin("pg_ctl"), "-D", str(pgdata), "-l", str(pgdata / "server.log"), "-w", "-o",
                    f"-p {pg_port} -k {pgdata} -c listen_addresses=127.0.0.1", "start")
        subprocess.run([postgres_bin("createdb"), "-h", "127.0.0.1", "-p", str(pg_port), "-U", "airflow", "airflow"],
                       check=True, capture_output=True)
        dep.processes["redis"] = subprocess.Popen(
            ["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, start_new_session=True)

        bucket = new_bucket(s3_endpoint)
        store_url = f"s3://{bucket}/runs"
        for name in ("control", "local", "cloud", "lost"):
            ect_home(root / name, store_url)
        base_url = f"http://127.0.0.1:{api_port}"
        common = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "ECT_")) or k.startswith("ECT_CI_")},
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            "AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
            "AIRFLOW__CELERY__BROKER_URL": f"redis://127.0.0.1:{redis_port}/0",
            "AIRFLOW__CELERY__RESULT_BACKEND": f"db+postgresql+psycopg2://airflow@127.0.0.1:{pg_port}/airflow",
            "AIRFLOW__API__PORT": str(api_port), "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__BASE_URL": base_url,
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": "ect-test-jwt-secret-of-this-deployment",
            "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "30",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(root / "task-logs"),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_s),
            # A worker killed with SIGKILL stops heartbeating: its task is failed (and retried) after this long.
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "ECT_DATASET_DIR": str(synthetic_dataset),
            # No regression override: two demo DAG runs in a row must both end green (one repetition: inconclusive).
            # The store's credentials exist only in this connection, never in ect's configuration.
            "AIRFLOW_CONN_ECT_STORE": store_connection(s3_endpoint),
        }
        dep.common, dep.pg_port = common, pg_port
        control = dep.env_of("control")
        airflow("db", "migrate", env=control)
        pools = subprocess.run([sys.executable, "-m", "ect", "pools"], env=control, capture_output=True, text=True,
                               check=True)
        (root / "pools.json").write_text(pools.stdout)
        assert "ect_run_store" in pools.stdout
        airflow("pools", "import", str(root / "pools.json"), env=control)
        airflow("dags", "reserialize", env=control)
        api = dep.start("api-server", "control", "api-server")
        dep.start("scheduler", "control", "scheduler")
        dep.start("dag-processor", "control", "dag-processor")
        wait_for_http(f"{base_url}/api/v2/monitor/health", api, dep.logs / "api-server.log", timeout=240)
        wait_for_http(f"{base_url}/execution/health", api, dep.logs / "api-server.log", timeout=60)  # warm
        # The GPU hosts' workers once the central services answer: `ect worker` checks the execution API first.
        dep.worker("local", log_a)
        dep.worker("cloud", log_b)
        dep.wait_for_workers(["local", "cloud"])
        dep.store = RunStore(store_url, {"key": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret": SECRET,
                                         "endpoint_url": s3_endpoint})
        dep.log_b_port = log_b
        for dag_id in ("ect_local", "ect_cloud", "ect_nowhere", "ect_lost", "ect_report"):
            airflow("dags", "unpause", dag_id, env=control, timeout=120)
        yield dep
    finally:
        for process in reversed(list(dep.processes.values())):
            stop(process)
        if (pgdata / "postmaster.pid").exists():
            as_postgres(postgres_bin("pg_ctl"), "-D", str(pgdata), "-m", "fast", "stop")
        shutil.rmtree(root, ignore_errors=True)


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL to a process and every descendant (the task supervisor starts its own session)."""
    import psutil

    parent = psutil.Process(process.pid)
    for member in [*parent.children(recursive=True), parent]:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    process.wait(timeout=30)


def scratch_runs(dep: Deployment, host: str) -> list[str]:
    scratch = dep.root / host / "metrics" / "scratch"
    return sorted(p.relative_to(scratch).as_posix() for p in scratch.glob("*/*/*") if p.is_dir())


def test_each_environment_trains_on_its_own_host_and_both_land_in_one_dataset_and_report(deployment):
    dep = deployment
    dep.trigger("ect_local", "night-1")
    dep.trigger("ect_cloud", "night-1")
    states = {dag: dep.run_state(dag, "night-1", timeout=600) for dag in ("ect_local", "ect_cloud")}
    assert states == {"ect_local": "success", "ect_cloud": "success"}, dep.log_tail()

    # Every training ran on its environment's worker, measuring into that host's scratch folder only.
    assert scratch_runs(dep, "local") == ["local/tiny_cnn/night-1-rep00"]
    assert scratch_runs(dep, "cloud") == ["cloud/tiny_cnn/night-1-rep00"]
    placed = dep.sql("SELECT dag_id, task_id, queue, hostname FROM task_instance WHERE run_id = 'night-1' "
                     "AND task_id IN ('host_check', 'warm_up', 'train')")
    assert {(dag, queue) for dag, _, queue, _ in placed} == {("ect_local", "ect_local"), ("ect_cloud", "ect_cloud")}

    # One processed dataset with both environments, and the cross-environment report lists both.
    processed = dep.root / "check" / "runs.parquet"
    processed.parent.mkdir(exist_ok=True)
    dep.store.fs.get_file(dep.store.path("processed/runs.parquet"), str(processed))
    runs = pd.read_parquet(processed)
    assert sorted(zip(runs["environment"], runs["run_id"])) == [("cloud", "night-1-rep00"), ("local", "night-1-rep00")]
    deadline, report = time.monotonic() + 300, ""
    while "on 2 environment(s)" not in report and time.monotonic() < deadline:  # ect_report follows the Asset
        time.sleep(5)
        report = dep.store.read_text("reports/report/report.html") if "report" in dep.store.reports() else ""
    assert "on 2 environment(s)" in report, dep.log_tail()
    assert {"local", "cloud"} <= set(dep.store.reports())


def test_a_queue_without_a_worker_fails_preflight_naming_it(deployment):
    dep = deployment
    dep.trigger("ect_nowhere", "night-1")
    assert dep.run_state("ect_nowhere", "night-1", timeout=300) == "failed"
    logs = "".join(p.read_text(errors="replace")
                   for p in (dep.root / "task-logs").glob("dag_id=ect_nowhere/run_id=night-1/task_id=preflight/**/*.log"))
    assert "no Celery worker consumes queue ect_nowhere" in logs
    assert dep.sql("SELECT count(*) FROM task_instance WHERE dag_id = 'ect_nowhere' AND task_id = 'train' "
                   "AND state IS NOT NULL AND state <> 'upstream_failed'") == [(0,)]


def test_the_workers_were_started_by_ect_worker_after_its_checks(deployment):
    log = (deployment.logs / "cloud.log").read_text(errors="replace")
    assert "ok: DAGs folder " + str(REPO / "dags") + ": has ect_dags.py" in log  # no DAGS_FOLDER given: the checkout's
    assert "ok: DAG ect_cloud: loads" in log and "--queues ect_cloud,default" in log


def test_a_worker_that_cannot_load_the_dags_is_refused_by_ect_worker_and_caught_by_the_watch(deployment):
    dep = deployment
    empty = dep.root / "lost" / "airflow-home-dags"
    empty.mkdir()
    refused = subprocess.run([sys.executable, "-m", "ect", "worker", "lost", "--check"], capture_output=True,
                             text=True, timeout=300,
                             env={**dep.worker_env("lost"), "AIRFLOW__CORE__DAGS_FOLDER": str(empty)})
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"AIRFLOW__CORE__DAGS_FOLDER={empty} has no ect_dags.py" in refused.stderr

    # Started by hand with the central variables only, as before `ect worker`: its DAGs folder has no DAG file.
    dep.start("lost", "lost", "celery", "worker", "--queues", "ect_lost", "--concurrency", "1",
              "--celery-hostname", "lost@%h", env={**dep.worker_env("lost"), "AIRFLOW__CORE__DAGS_FOLDER": str(empty),
                                                    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                                                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_ports(1)[0])})
    try:
        dep.wait_for_workers(["lost"])
        dep.trigger("ect_lost", "night-1")
        deadline, states = time.monotonic() + 420, {}
        while states.get("host_check_watch") != "failed":
            assert time.monotonic() < deadline, f"states {states}:\n{dep.log_tail()}"
            time.sleep(5)
            states = dict(dep.sql("SELECT task_id, state FROM task_instance WHERE dag_id = 'ect_lost' "
                                  "AND run_id = 'night-1'"))
        assert states.get("train") in (None, "upstream_failed"), states  # no training after the watch failed
        logs = "".join(p.read_text(errors="replace") for p in (dep.root / "task-logs").glob(
            "dag_id=ect_lost/run_id=night-1/task_id=host_check_watch/**/*.log"))
        assert "the worker of queue ect_lost (QUEUE of environment lost) could not load DAG ect_lost" in logs
        assert "`ect worker lost`" in logs
    finally:
        stop(dep.processes.pop("lost"))


def test_a_gpu_host_killed_mid_run_retries_on_its_queue_and_the_run_lands_once(deployment):
    dep = deployment
    dep.trigger("ect_cloud", "night-2")
    samples = dep.root / "cloud" / "metrics" / "scratch" / "cloud" / "tiny_cnn" / "night-2-rep00" / "cpu.csv"
    deadline = time.monotonic() + 420
    while not (samples.exists() and samples.stat().st_size > 200):
        assert time.monotonic() < deadline, f"the cloud run never started measuring:\n{dep.log_tail()}"
        time.sleep(0.2)
    kill_tree(dep.processes["cloud"])  # the GPU host's worker and its training die mid-measurement
    dep.worker("cloud", dep.log_b_port)  # the host comes back
    assert dep.run_state("ect_cloud", "night-2", timeout=600) == "success", dep.log_tail()

    run = samples.parent
    assert (run / "previous-attempts" / "1" / "cpu.csv").exists()  # the killed attempt's samples are kept
    tries = dep.sql("SELECT max(try_number) FROM task_instance WHERE dag_id = 'ect_cloud' AND run_id = 'night-2' "
                    "AND task_id = 'train'")
    assert tries[0][0] >= 2
    processed = dep.root / "check" / "runs-2.parquet"
    dep.store.fs.get_file(dep.store.path("processed/runs.parquet"), str(processed))
    runs = pd.read_parquet(processed)
    assert list(runs["run_id"]).count("night-2-rep00") == 1


def test_the_store_credentials_are_in_no_log_xcom_rendered_field_or_db_row(deployment):
    dep = deployment
    for path in [*dep.logs.rglob("*"), *(dep.root / "task-logs").rglob("*"), *(dep.root / "local").rglob("*"),
                 *(dep.root / "cloud").rglob("*"), *(dep.root / "control").rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    dump = subprocess.run([postgres_bin("pg_dump"), "-h", "127.0.0.1", "-p", str(dep.pg_port), "-U", "airflow",
                           "airflow"], capture_output=True, text=True, check=True).stdout
    assert "xcom" in dump and "rendered_task_instance_fields" in dump and SECRET not in dump
