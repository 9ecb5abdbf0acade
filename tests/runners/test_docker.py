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


def run_cloud_dag(env: dict) -> str:
    """A migrated metadata DB, then `airflow dags test ect_cloud` of one tiny_cnn run; its output."""
    airflow("db", "migrate", env=env)
    airflow("dags", "reserialize", env=env)
    conf = {"profile": "demo", "architectures": ["tiny_cnn"]}
    result = airflow("dags", "test", "ect_cloud", "--conf", json.dumps(conf), env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    return output


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
    output = run_cloud_dag(env)

    (folder,) = [p for p in (metrics / "raw" / "cloud" / "tiny_cnn").iterdir() if p.is_dir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["host"]["gpus"] == []
    assert manifest["config"]["root"] == "/ect"  # it ran inside the container
    for path in folder.iterdir():  # written as the Airflow worker's user: usable on the host
        assert path.stat().st_uid == os.getuid() and os.access(path, os.R_OK | os.W_OK), path
    assert len(pd.read_parquet(metrics / "processed" / "runs.parquet")) == 1

    assert "tiny_cnn · tensorflow · rep 0 in " in output and "absl::InitializeLog" not in output  # labelled, no start-up noise
    (kept,) = (metrics / "logs" / "cloud" / "tiny_cnn").glob("*.log")
    assert "absl::InitializeLog" in kept.read_text()

    assert SECRET not in output
    for path in [*Path(env["AIRFLOW_HOME"], "logs").rglob("*"), *metrics.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        xcom = [str(row) for row in db.execute("SELECT value FROM xcom")]
        rendered = [str(row) for row in db.execute("SELECT rendered_fields FROM rendered_task_instance_fields")]
    assert xcom and rendered and not any(SECRET in text for text in xcom + rendered)


def test_a_container_publishes_its_run_to_an_s3_store_itself(project, synthetic_dataset, tmp_path, s3_endpoint):
    """As on a remote Docker engine with no shared folder: the container measures into its host's scratch and
    publishes to the run store; the Airflow side finds the run in the store alone. The store's credentials come
    from the ect_store connection and reach the container in its private environment only."""
    from conftest import S3_CREDENTIALS, new_bucket, store_connection
    from ect.store import RunStore

    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    bucket = new_bucket(s3_endpoint)
    (project / "config" / "environments.yaml").write_text(
        "cloud:\n  RUNNER: docker\n  GPUS: none\n  SCHEDULE: null\n  RETRIES: 0\n"
        f"  DOCKER_URL: {docker_host}\n  DOCKER_IMAGE: {IMAGE}\n  DOCKER_NETWORK_MODE: host\n")
    (project / "config" / "base.yaml").write_text((project / "config" / "base.yaml").read_text()
                                                  + f"\nRUN_STORE: s3://{bucket}/runs\n")
    metrics = tmp_path / "metrics"
    secret = S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
    env = {**{k: v for k, v in airflow_env(tmp_path / "home", metrics, synthetic_dataset, ect_home=project).items()
              if not k.startswith("AWS_")},
           "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
           "AIRFLOW_CONN_ECT_STORE": store_connection(s3_endpoint)}
    output = run_cloud_dag(env)

    (scratch,) = [p for p in (metrics / "scratch" / "cloud" / "tiny_cnn").iterdir() if p.is_dir()]
    assert json.loads((scratch / "publish.json").read_text())["published"] is True
    store = RunStore(f"s3://{bucket}/runs", {"key": S3_CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret": secret,
                                             "endpoint_url": s3_endpoint})
    manifest = json.loads(store.read_text(f"raw/cloud/tiny_cnn/{scratch.name}/manifest.json"))
    assert manifest["status"] == "completed" and manifest["config"]["root"] == "/ect"  # measured in the container
    assert len(pd.read_parquet(metrics / "processed" / "runs.parquet")) == 1  # found through the store
    assert secret not in output
    for path in [*Path(env["AIRFLOW_HOME"], "logs").rglob("*"), *metrics.rglob("*")]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        stored = [str(row) for table in ("xcom", "rendered_task_instance_fields", "serialized_dag")
                  for row in db.execute(f"SELECT * FROM {table}")]
    assert stored and not any(secret in text for text in stored)
