"""The docker runner for real: a DAG run whose profiled run executes in the ect worker image.

Needs a Docker engine and the image (marker docker): `.ci/run` starts both (`.ci/docker-engine`) and runs it;
a plain `make test` leaves it out.
"""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import airflow, airflow_env

SECRET = "s3cret-Tracking-Password-7f3a"
IMAGE = os.environ.get("ECT_CI_DOCKER_IMAGE", "ect-worker:test")

pytestmark = [pytest.mark.docker, pytest.mark.airflow]


def test_containerised_profiled_run_with_gpus_off_and_a_private_secret(project, synthetic_dataset, tmp_path):
    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    info = subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, text=True)
    assert info.returncode == 0, f"no worker image {IMAGE} on {docker_host}: {info.stderr}"
    (project / "config" / "environments.yaml").write_text(
        "cloud:\n  RUNNER: docker\n  GPUS: none\n  SCHEDULE: null\n  RETRIES: 0\n"
        f"  DOCKER_URL: {docker_host}\n  DOCKER_IMAGE: {IMAGE}\n  DOCKER_NETWORK_MODE: none\n")
    metrics = tmp_path / "metrics"
    env = {**airflow_env(tmp_path / "home", metrics, synthetic_dataset, ect_home=project),
           "MLFLOW_TRACKING_PASSWORD": SECRET}
    airflow("db", "migrate", env=env)
    airflow("dags", "reserialize", env=env)
    conf = {"profile": "demo", "architectures": ["tiny_cnn"]}
    result = airflow("dags", "test", "ect_cloud", "--conf", json.dumps(conf), env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]

    (folder,) = (metrics / "raw" / "cloud" / "tiny_cnn").iterdir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["host"]["gpus"] == []
    assert manifest["config"]["root"] == "/ect"  # it ran inside the container
    for path in folder.iterdir():  # written as the Airflow worker's user: usable on the host
        assert path.stat().st_uid == os.getuid() and os.access(path, os.R_OK | os.W_OK), path
    assert len(pd.read_parquet(metrics / "processed" / "runs.parquet")) == 1

    assert SECRET not in output
    for path in [*Path(env["AIRFLOW_HOME"], "logs").rglob("*"), *metrics.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        xcom = [str(row) for row in db.execute("SELECT value FROM xcom")]
        rendered = [str(row) for row in db.execute("SELECT rendered_fields FROM rendered_task_instance_fields")]
    assert xcom and rendered and not any(SECRET in text for text in xcom + rendered)
