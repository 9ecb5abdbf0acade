"""`ect worker`: the checks it makes before starting a GPU host's Celery worker, and what it would start."""

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import REPO, free_ports, run_ect
from ect.errors import ConfigError, RunnerError
from ect.runners.worker import check_dag_loads, worker_plan

QUEUED = "local:\n  RUNNER: process\n  QUEUE: ect_local\n"


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/execution/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def execution_api():
    """A stand-in for the central API server: /execution/health answers 200."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/execution/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def home(project):
    (project / "config" / "environments.yaml").write_text(QUEUED)
    return project


def env_of(home: Path, url: str, **extra) -> dict:
    return {"ECT_HOME": str(home), "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": url, "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1", **extra}


def plan_of(home, url, **options):
    return worker_plan("local", env=env_of(home, url, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_ports(1)[0])),
                       check_dags=False, **options)


def test_the_plan_serves_the_environments_queue_with_the_projects_dags_and_the_central_api(home, execution_api):
    plan = plan_of(home, execution_api)
    assert plan.argv[0] == str(Path(sys.executable).parent / "airflow")
    assert plan.argv[1:] == ["celery", "worker", "--queues", "ect_local", "--concurrency", "1",
                             "--celery-hostname", "local@%h"]
    variables = plan.variables
    assert variables["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO / "dags")  # the project has none: this checkout's
    assert variables["AIRFLOW__CORE__PLUGINS_FOLDER"] == str(REPO / "plugins")
    assert variables["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False" and variables["ECT_HOME"] == str(home)
    assert variables["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == execution_api
    assert variables["AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"] == "30"
    assert any("answers" in line for line in plan.checks)

    two = worker_plan("local", hostname="second@gpu-1", log_port=free_ports(1)[0], concurrency=2, default_queue=True,
                      env=env_of(home, execution_api, AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="60"), check_dags=False)
    assert two.argv[3:] == ["--queues", "ect_local,default", "--concurrency", "2", "--celery-hostname", "second@gpu-1"]
    assert two.variables["AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"] == "60"  # a setting of the operator's is kept


def test_an_environment_without_a_queue_is_refused_naming_the_setting(project, execution_api):
    with pytest.raises(ConfigError, match=r"environment local has no QUEUE in .*environments.yaml.*set QUEUE"):
        plan_of(project, execution_api)


def test_a_dags_folder_without_the_dag_file_is_refused_naming_the_variable(home, execution_api, tmp_path):
    (tmp_path / "dags").mkdir()
    for folder, expected in ((tmp_path / "dags", "has no ect_dags.py"), (tmp_path / "absent", "does not exist")):
        with pytest.raises(ConfigError, match=rf"AIRFLOW__CORE__DAGS_FOLDER={folder} {expected}.*set "
                                              "AIRFLOW__CORE__DAGS_FOLDER to the dags/ folder"):
            worker_plan("local", env=env_of(home, execution_api, AIRFLOW__CORE__DAGS_FOLDER=str(folder)),
                        check_dags=False)


def test_a_broken_configuration_is_refused_naming_the_file(home, execution_api):
    (home / "config" / "environments.yaml").write_text(QUEUED + "  RUNNER: kubernetes\n")
    with pytest.raises(ConfigError, match=r"environments.yaml.*RUNNER='kubernetes'"):
        plan_of(home, execution_api)
    (home / "config" / "environments.yaml").write_text(QUEUED)
    with pytest.raises(ConfigError, match=r"unknown environment 'elsewhere'"):
        worker_plan("elsewhere", env=env_of(home, execution_api), check_dags=False)


def test_an_execution_api_that_does_not_answer_is_refused_naming_the_variable(home, execution_api):
    nothing = f"http://127.0.0.1:{free_ports(1)[0]}/execution/"
    with pytest.raises(RunnerError, match=rf"execution API at {nothing} \(AIRFLOW__CORE__EXECUTION_API_SERVER_URL\) "
                                          "does not answer from this host"):
        plan_of(home, nothing)
    wrong_path = execution_api.replace("/execution/", "/api/")
    with pytest.raises(RunnerError, match=r"answers .*/api/health with HTTP 404, not 200"):
        plan_of(home, wrong_path)


def test_a_taken_log_port_is_refused(home, execution_api):
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=rf"log server's port {port} .* is taken.*--log-port"):
            worker_plan("local", log_port=port, env=env_of(home, execution_api), check_dags=False)


def test_the_dag_must_load_from_the_dags_folder_as_the_worker_will(home, tmp_path):
    variables = {"ECT_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    assert "DAG ect_local: loads" in check_dag_loads(REPO / "dags", "ect_local", variables)
    with pytest.raises(ConfigError, match=r"have no ect_elsewhere \(they have ect_local, ect_report\)"):
        check_dag_loads(REPO / "dags", "ect_elsewhere", variables)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "ect_dags.py").write_text("from airflow.sdk import DAG\nimport ect_no_such_module\n")
    with pytest.raises(RunnerError, match=r"ect_dags.py does not import on this host: .*ect_no_such_module"):
        check_dag_loads(broken, "ect_local", variables)


def test_ect_worker_check_prints_the_command_and_refuses_loudly(home, execution_api):
    env = env_of(home, execution_api, AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_ports(1)[0]))
    checked = run_ect("worker", "local", "--hostname", "gpu-a@%h", "--check", cwd=home, env=env)
    assert checked.returncode == 0, checked.stderr
    assert "ok: DAG ect_local: loads" in checked.stdout
    assert "celery worker --queues ect_local --concurrency 1 --celery-hostname gpu-a@%h" in checked.stdout
    refused = run_ect("worker", "local", "--check", cwd=home,
                      env={**env, "AIRFLOW__CORE__DAGS_FOLDER": str(home / "no-dags")})
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("ect worker: error: AIRFLOW__CORE__DAGS_FOLDER=")
