"""The deployment files agree with each other and with the pins: the Celery compose files (which cannot run here: no
registry is reachable for their images) and the images' requirements."""

import re

import yaml

from conftest import REPO

CENTRAL = yaml.safe_load((REPO / "docker" / "compose-celery.yaml").read_text())
GPU_HOST = yaml.safe_load((REPO / "docker" / "compose-gpu-host.yaml").read_text())


def pins(path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(3)
    return found


def test_the_central_deployment_runs_every_celery_component_and_a_worker_on_this_hosts_queue():
    services = CENTRAL["services"]
    assert {"postgres", "redis", "airflow-init", "api-server", "scheduler", "dag-processor", "triggerer",
            "worker"} <= set(services)
    env = services["scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")  # not psycopg 3
    assert "ect pools" in services["airflow-init"]["command"]  # the one-slot pool of the run store's writers
    worker = services["worker"]
    assert worker["command"].startswith("celery worker --queues default,${ECT_QUEUE")
    assert "/var/run/docker.sock:/var/run/docker.sock" in worker["volumes"]


def test_a_gpu_host_runs_only_a_worker_configured_like_the_central_services():
    (name,) = GPU_HOST["services"]
    worker = GPU_HOST["services"][name]
    assert worker["command"].startswith("celery worker --queues ${ECT_QUEUE")
    central = CENTRAL["services"]["scheduler"]["environment"]
    assert set(worker["environment"]) == set(central)  # the same settings, pointing at the central host
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CELERY__BROKER_URL",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL"):
        assert "${AIRFLOW_CENTRAL" in worker["environment"][key]
    assert "ECT_STORE" in " ".join(worker["environment"])  # the run store's credentials by connection


def test_the_images_pin_what_requirements_txt_pins():
    main = pins(REPO / "requirements.txt")
    for name in ("requirements-airflow.txt", "requirements-worker.txt"):
        image = pins(REPO / "docker" / name)
        assert image, name
        different = {package: (version, main[package]) for package, version in image.items()
                     if package in main and main[package] != version}
        assert different == {}, f"docker/{name} pins other versions than requirements.txt: {different}"
