"""The deployment files agree with each other and with the pins: the Celery compose files (which cannot run here: no
registry is reachable for their images) and the images' requirements."""

import os
import re
import shutil
import subprocess

import pytest
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


def test_the_worker_images_backend_requirements_pin_what_the_project_pins():
    main = {**pins(REPO / "requirements.txt"), **pins(REPO / "requirements-torch.txt")}
    for backend in ("tensorflow", "jax", "torch"):
        image = pins(REPO / "docker" / f"{backend}-requirement.txt")
        assert image[backend] == main[backend], backend
        assert {package: version for package, version in image.items() if main.get(package) != version} == {}, backend


def test_the_build_arg_backend_defaults_to_tensorflow_and_reaches_the_install_step():
    lines = [line.strip() for line in (REPO / "docker" / "Dockerfile").read_text().splitlines()]
    first_from = next(i for i, line in enumerate(lines) if line.startswith("FROM "))
    # Declared after FROM: an ARG before it would be empty in RUN.
    assert lines.index("ARG BACKEND=tensorflow") > first_from
    assert 'sh /opt/ect-build/install-backend.sh "$BACKEND"' in "\n".join(lines)


@pytest.mark.parametrize("backend, has_tensorflow, installed", [
    ("tensorflow", True, None),  # the official TensorFlow GPU base image: nothing to add (the default build)
    ("tensorflow", False, "tensorflow-requirement.txt"),
    ("jax", True, "jax-requirement.txt"),
    ("torch", True, "torch-requirement.txt"),
])
def test_the_build_arg_backend_selects_the_requirements_the_image_installs(tmp_path, backend, has_tensorflow,
                                                                           installed):
    build = tmp_path / "ect-build"
    build.mkdir()
    shutil.copy(REPO / "docker" / "install-backend.sh", build)
    for name in ("tensorflow", "jax", "torch"):
        shutil.copy(REPO / "docker" / f"{name}-requirement.txt", build)
    log = tmp_path / "pip.log"
    (build / "pip-install.sh").write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    (build / "pip-install.sh").chmod(0o755)
    python = tmp_path / "python"  # the venv's python: `import tensorflow` works when the base image has it
    python.write_text(f"#!/bin/sh\nexit {0 if has_tensorflow else 1}\n")
    python.chmod(0o755)
    done = subprocess.run(["sh", str(build / "install-backend.sh"), backend], capture_output=True, text=True,
                          env={**os.environ, "ECT_VENV_PYTHON": str(python)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert (log.read_text().split() if log.exists() else []) == (["-r", str(build / installed)] if installed else [])


def test_an_unknown_build_arg_backend_fails_the_build(tmp_path):
    done = subprocess.run(["sh", str(REPO / "docker" / "install-backend.sh"), "caffe"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "BACKEND=caffe: expected tensorflow, jax or torch" in done.stderr
