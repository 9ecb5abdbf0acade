import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Offline, quiet tools with caches inside the project, also when pytest is run without make.
os.environ.setdefault("KERAS_HOME", str(REPO / ".home" / "keras"))
os.environ.setdefault("MPLCONFIGDIR", str(REPO / ".home" / "matplotlib"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
# In-process Airflow (DagBag) must not write to ~/airflow.
os.environ.setdefault("AIRFLOW_HOME", str(REPO / ".home" / "airflow-tests"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
# The developer's ECT_* settings must not leak into the tests (the ECT_CI_* switches of .ci/run stay).
for name in [n for n in os.environ if n.startswith("ECT_") and not n.startswith("ECT_CI_")]:
    del os.environ[name]


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of the repository's config/ in a temporary project root (ECT_HOME)."""
    root = tmp_path / "project"
    shutil.copytree(REPO / "config", root / "config")
    return root


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory) -> Path:
    """400 images of 32x32 pixels: enough for the tiny CNN to beat chance."""
    from ect.data import make_synthetic_dataset

    root = tmp_path_factory.mktemp("data") / "shapes"
    make_synthetic_dataset(root, images=400, size=32, seed=7)
    return root


def run_ect(*args: str, cwd: Path, env: dict | None = None, timeout: int = 600):
    """Runs `python -m ect ARGS` in a fresh process, as a user would."""
    import subprocess

    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("ECT_MODELS_DIR", str(Path(cwd) / "models"))  # trained models stay out of the repository
    return subprocess.run([sys.executable, "-m", "ect", *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)


class _Lines(logging.Handler):
    def __init__(self, lines: list):
        from ect.cli import TerminalFormatter

        super().__init__(logging.INFO)
        self.lines = lines
        self.setFormatter(TerminalFormatter())

    def emit(self, record):
        self.lines.append(self.format(record))


@contextmanager
def log_lines():
    """The lines ect logs inside the block, as `ect` prints them ("warning: " before warnings)."""
    lines: list[str] = []
    logger, handler = logging.getLogger("ect"), _Lines(lines)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# Real services: Airflow commands and free ports.

AIRFLOW = str(Path(sys.executable).parent / "airflow")


@contextmanager
def lock_held_elsewhere(lock: Path, holder: str):
    """`lock` held (ect.raw.atomic.exclusive, as `holder`) by another live process while the block runs."""
    process = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom ect.raw.atomic import exclusive\n"
        f"with exclusive({str(lock)!r}, {holder!r}):\n"
        "    print('held', flush=True); time.sleep(300)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait()


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


def json_lines(output: str) -> list:
    """The JSON list an `airflow ... -o json` command printed (its log lines may come first)."""
    return next((json.loads(line) for line in output.splitlines() if line.startswith("[")), [])


def free_ports(count: int) -> list[int]:
    """Distinct ports that nothing listens on, on any interface (the log servers bind all of them)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


# A real S3-compatible server for the s3:// run store: moto's standalone server.
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "ect-test-key", "AWS_SECRET_ACCESS_KEY": "ect-test-Secret-9d41",
                  "AWS_DEFAULT_REGION": "us-east-1", "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    """Polls url (no proxy) until it answers; fails with the log's tail when the process exits or time runs out."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=5):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{url} did not answer: {log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)


def stop(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 30) -> None:
    """Stops a process started with start_new_session=True, with its children."""
    try:
        os.killpg(process.pid, sig)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """moto's standalone S3 server on a free port, for the tests of one module (stopped after them)."""
    port = free_ports(1)[0]
    log_path = tmp_path_factory.mktemp("moto") / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p",
                                   str(port)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    wait_for_http(f"{endpoint}/moto-api/", server, log_path, timeout=60)
    yield endpoint
    stop(server)


def new_bucket(endpoint: str) -> str:
    """A fresh bucket on the S3 server; returns its name."""
    import s3fs

    bucket = f"ect-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(key=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], secret=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                      endpoint_url=endpoint, skip_instance_cache=True).mkdir(bucket)
    return bucket


def store_connection(endpoint: str) -> str:
    """The Airflow connection ect_store of the S3 server, as AIRFLOW_CONN_ECT_STORE takes it."""
    return json.dumps({"conn_type": "aws", "login": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                       "password": S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                       "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}})


@pytest.fixture
def s3_url(s3_endpoint, monkeypatch):
    """s3://<a fresh bucket>/runs; the standard AWS variables point s3fs at the local server."""
    for name, value in {**S3_CREDENTIALS, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(name, value)
    return f"s3://{new_bucket(s3_endpoint)}/runs"


@pytest.fixture(scope="module")
def mlflow_url(tmp_path_factory):
    """A real `mlflow server` (SQLite backend, proxied artifacts) on a free port, for the tests of one module."""
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_ports(1)[0]
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow)] if mlflow.exists() else [sys.executable, "-m", "mlflow"]
    log_path = root / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [*command, "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination",
             str(root / "artifacts"), "--workers", "1", "--host", "127.0.0.1", "--port", str(port)],
            cwd=root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", server, log_path, timeout=240)  # a fresh venv compiles and migrates first
        yield url
    finally:
        stop(server, timeout=20)
