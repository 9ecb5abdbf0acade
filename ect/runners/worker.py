"""`ect worker ENVIRONMENT`: the Celery worker of an environment's GPU host in one command.

It builds the worker's variables (this project's DAGs and plugins folders, no example DAGs, ECT_HOME, the central
execution API and a timeout fit for a busy machine, the log server's port) and its command line (`airflow celery
worker --queues QUEUE --concurrency 1 --celery-hostname ENVIRONMENT@%h`), and checks them before starting it. A worker
that cannot load the DAGs does not fail: it sends every task back for rescheduling, with the reason only in its own
task log. So the command refuses to start, naming what to set, when the DAGs folder lacks ect_dags.py, the
configuration under ECT_HOME does not load, the environment has no QUEUE, the execution API does not answer, the
log server's port is taken, or the DAG file does not give the environment's DAG here.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from ect.config import load_config
from ect.config.loader import project_root
from ect.errors import ConfigError, RunnerError

log = logging.getLogger(__name__)

DAG_FILE = "ect_dags.py"
CHECKOUT = Path(__file__).resolve().parents[2]  # the checkout ect is installed from (editable install)
EXECUTION_API_TIMEOUT_S = "30"  # Airflow's default 5 s fails tasks on a busy machine (README, One machine)
DEFAULT_LOG_PORT = 8793  # Airflow's [logging] worker_log_server_port
# The variables the command sets, in the order it prints them.
DAGS_FOLDER = "AIRFLOW__CORE__DAGS_FOLDER"
PLUGINS_FOLDER = "AIRFLOW__CORE__PLUGINS_FOLDER"
LOAD_EXAMPLES = "AIRFLOW__CORE__LOAD_EXAMPLES"
EXECUTION_API = "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"
EXECUTION_API_TIMEOUT = "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT"
LOG_PORT = "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"
DAG_CHECK = """\
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {str(k): str(v) for k, v in bag.import_errors.items()}}))
"""


@dataclass(frozen=True)
class WorkerPlan:
    """What `ect worker` runs: the command line, the variables it sets (on top of the process's own), and what it
    checked, one line each."""

    argv: list[str]
    variables: dict[str, str]
    checks: list[str]


def dags_folder(root: Path, env: Mapping[str, str]) -> Path:
    """AIRFLOW__CORE__DAGS_FOLDER, else the project's dags/ when it has ect_dags.py, else this checkout's."""
    if env.get(DAGS_FOLDER):
        return Path(env[DAGS_FOLDER]).expanduser().resolve()
    return root / "dags" if (root / "dags" / DAG_FILE).is_file() else CHECKOUT / "dags"


def check_dags_folder(folder: Path, given: bool) -> None:
    where = f"{DAGS_FOLDER}={folder}" if given else f"the DAGs folder {folder} (no {DAGS_FOLDER} set)"
    if not folder.is_dir():
        raise ConfigError(f"{where} does not exist: set {DAGS_FOLDER} to the dags/ folder of this host's ect checkout")
    if not (folder / DAG_FILE).is_file():
        raise ConfigError(f"{where} has no {DAG_FILE}: this worker could not load any ect DAG, and Airflow would only "
                          f"reschedule their tasks; set {DAGS_FOLDER} to the dags/ folder of this host's ect checkout")


def execution_api_url(env: Mapping[str, str]) -> tuple[str, bool]:
    """The central API server's execution API, and whether it was set: the variable, else Airflow's configuration
    (airflow.cfg), else Airflow's default ([api] base_url or http://localhost:8080, plus /execution/)."""
    if env.get(EXECUTION_API):
        return env[EXECUTION_API], True
    from airflow.configuration import conf

    url = conf.get("core", "execution_api_server_url", fallback="")
    if url:
        return url, True
    base = env.get("AIRFLOW__API__BASE_URL") or conf.get("api", "base_url", fallback="") or "http://localhost:8080"
    return base.rstrip("/") + "/execution/", False


def check_execution_api(url: str, given: bool = True, timeout_s: float = 10) -> str:
    """The execution API answers its health check (a wrong host name, a firewall or a proxy in the way shows here)."""
    health = url.rstrip("/") + "/health"
    where = f"{url} ({EXECUTION_API})" if given else f"{url} (Airflow's default: {EXECUTION_API} is not set)"
    try:
        # A fresh opener reads this process's proxy variables now; urlopen's cached one keeps those of its first call.
        with urllib.request.build_opener().open(health, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except (OSError, ValueError) as error:
        raise RunnerError(f"the execution API at {where} does not answer from this host "
                          f"({getattr(error, 'reason', error)}): tasks report to the central API server there; set "
                          f"{EXECUTION_API}=http://<central host>:8080/execution/") from None
    if status != 200:
        raise RunnerError(f"the execution API at {where} answers {health} with HTTP {status}, not 200: set "
                          f"{EXECUTION_API} to the central API server's URL ending in /execution/")
    return f"execution API {url}: answers"


def check_log_port(port: int) -> None:
    """Nothing listens on the log server's port (a second worker on this machine needs its own)."""
    with socket.socket() as probe:
        try:
            probe.bind(("", port))
        except OSError as error:
            raise ConfigError(f"the worker log server's port {port} ({LOG_PORT}) is taken on this host "
                              f"({error.strerror}): another worker? give this one its own with --log-port") from None


def check_dag_loads(folder: Path, dag_id: str, variables: Mapping[str, str], timeout_s: float = 600) -> str:
    """Parses the DAGs folder as the worker will (a fresh process with its variables): the DAG must be there."""
    result = subprocess.run([sys.executable, "-c", DAG_CHECK, str(folder)], capture_output=True, text=True,
                            timeout=timeout_s, env={**os.environ, **variables})
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        raise RunnerError(f"parsing the DAGs in {folder} failed (exit code {result.returncode}): "
                          f"{(result.stderr or result.stdout).strip()[-2000:]}")
    found = json.loads(lines[-1])
    if found["errors"]:
        file, error = next(iter(found["errors"].items()))
        raise RunnerError(f"{file} does not import on this host: {error.strip().splitlines()[-1]}")
    if dag_id not in found["dags"]:
        raise ConfigError(f"the DAGs in {folder} have no {dag_id} (they have {', '.join(found['dags']) or 'none'}): "
                          "is this host's config/environments.yaml the central host's?")
    return f"DAG {dag_id}: loads from {folder / DAG_FILE}"


def airflow_command() -> str:
    beside = Path(sys.executable).parent / "airflow"
    found = str(beside) if beside.exists() else shutil.which("airflow")
    if not found:
        raise RunnerError(f"no `airflow` command beside {sys.executable} or on PATH: install ect's requirements")
    return found


def worker_plan(environment: str, hostname: str | None = None, log_port: int | None = None, concurrency: int = 1,
                default_queue: bool = False, check_dags: bool = True,
                env: Mapping[str, str] = os.environ) -> WorkerPlan:
    """Checks what the worker of `environment` needs, in the order an operator would fix it, and returns its plan;
    ConfigError or RunnerError naming the setting at fault."""
    if concurrency < 1:
        raise ConfigError(f"--concurrency {concurrency}: expected at least 1")
    root = project_root(env)
    cfg = load_config(root, env=env)  # a broken config/*.yaml is named here, not in the GPU host's task log
    checks = [f"ECT_HOME {root}: configuration loads"]
    target = cfg.environment(environment)
    if not target.queue:
        raise ConfigError(f"environment {environment} has no QUEUE in {root / 'config' / 'environments.yaml'}: its "
                          "host-bound tasks go to Airflow's default queue, which any worker serves; set QUEUE (e.g. "
                          f"QUEUE: ect_{environment}) there, on every host, to give them to this host's worker")
    queues = [target.queue]
    if default_queue:
        from airflow.configuration import conf

        queues.append(conf.get("operators", "default_queue", fallback="default"))
    checks.append(f"environment {environment}: queue {target.queue}, pool {target.pool_name}, runner {target.runner}")

    folder = dags_folder(root, env)
    check_dags_folder(folder, given=bool(env.get(DAGS_FOLDER)))
    checks.append(f"DAGs folder {folder}: has {DAG_FILE}")
    plugins = Path(env[PLUGINS_FOLDER]) if env.get(PLUGINS_FOLDER) else folder.parent / "plugins"

    url, given = execution_api_url(env)
    checks.append(check_execution_api(url, given))
    if log_port is None:
        log_port = int(env.get(LOG_PORT) or DEFAULT_LOG_PORT)
    check_log_port(log_port)
    checks.append(f"worker log server port {log_port}: free")

    variables = {
        DAGS_FOLDER: str(folder), PLUGINS_FOLDER: str(plugins), LOAD_EXAMPLES: "False", "ECT_HOME": str(root),
        EXECUTION_API: url, EXECUTION_API_TIMEOUT: env.get(EXECUTION_API_TIMEOUT) or EXECUTION_API_TIMEOUT_S,
        LOG_PORT: str(log_port),
    }
    if check_dags:
        checks.append(check_dag_loads(folder, f"ect_{environment}", variables))
    argv = [airflow_command(), "celery", "worker", "--queues", ",".join(queues), "--concurrency", str(concurrency),
            "--celery-hostname", hostname or f"{environment}@%h"]
    return WorkerPlan(argv, variables, checks)


def exec_worker(plan: WorkerPlan) -> None:
    """Replaces this process with the Celery worker (its signals and exit status are the worker's own)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(plan.argv[0], plan.argv, {**os.environ, **plan.variables})
