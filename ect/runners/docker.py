"""The docker runner: each profiled run in the ect worker image, through Airflow's DockerOperator.

Inside the container the project lives at /ect: the host's config/ is mounted read-only, the dataset
read-only, the metrics and models folders read-write. Secrets travel in `private_environment`, never
on the command line, in logs, XCom or rendered templates. The container runs as the Airflow worker's
user unless DOCKER_USER says otherwise, so the files it writes are usable on the host.
"""

from __future__ import annotations

import os
import re
import socket
from datetime import timedelta
from pathlib import Path

from airflow.providers.docker.operators.docker import DockerOperator

from ect.errors import ConfigError, RunnerError
from ect.masking import mask, masked_url, url_secrets
from ect.runners.budget import call_alert
from ect.runners.credentials import run_environment
from ect.runners.placement import MAP_INDEX_TEMPLATE, RUN_LABEL, task_options
from ect.runners.process import ChildOutput, early_stop_skip, third_party_log
from ect.runs.commands import LOG_PREFIX_VARIABLE, ect_command, profile_run_args, warmup_args
from ect.runs.forecast import DurationWatch, run_key
from ect.runs.plan import PlannedRun

CONTAINER_ROOT = "/ect"
CONTAINER_DATASET = f"{CONTAINER_ROOT}/data/dataset"
CONTAINER_METRICS = f"{CONTAINER_ROOT}/data/metrics"
CONTAINER_MODELS = f"{CONTAINER_ROOT}/models"
CONTAINER_STORE = f"{CONTAINER_ROOT}/store"


def host_path(path: Path, path_map) -> str:
    """A path as the Docker host sees it (the Airflow worker may itself run in a container)."""
    text = str(path)
    for worker, host in sorted(path_map, key=lambda pair: -len(pair[0])):
        if text == worker or text.startswith(worker.rstrip("/") + "/"):
            return host + text[len(worker.rstrip("/")):]
    return text


def shm_bytes(size: str) -> int:
    match = re.fullmatch(r"(\d+)([kmg]?)b?", size.strip().lower())
    if not match:
        raise ConfigError(f"DOCKER_SHM_SIZE={size!r}: expected a size such as 512m or 2g")
    return int(match.group(1)) * {"": 1, "k": 2**10, "m": 2**20, "g": 2**30}[match.group(2)]


def device_requests(gpus):
    from docker.types import DeviceRequest

    if gpus == "none":
        return None
    if gpus == "all":
        return [DeviceRequest(count=-1, capabilities=[["gpu"]])]
    return [DeviceRequest(device_ids=[str(i) for i in gpus], capabilities=[["gpu"]])]


def mounts(cfg, env):
    """Binds, read-only except the outputs: config, DATASET_DIR, every DATASET_ROOTS folder, metrics, models, and
    a run store that is a folder (a URL store is reached over the network)."""
    from docker.types import Mount

    def bind(source: Path, target: str, read_only: bool) -> Mount:
        return Mount(target=target, source=host_path(source, env.docker_path_map), type="bind", read_only=read_only)

    binds = [bind(cfg.root / "config", f"{CONTAINER_ROOT}/config", True)]
    if cfg.path("DATASET_DIR").is_dir():
        binds.append(bind(cfg.path("DATASET_DIR").resolve(), CONTAINER_DATASET, True))
    binds += [bind(root, f"{CONTAINER_ROOT}/datasets/{k}", True) for k, root in enumerate(cfg.dataset_roots())
              if root.is_dir()]
    binds.append(bind(cfg.path("METRICS_DIR"), CONTAINER_METRICS, False))
    binds.append(bind(cfg.path("MODELS_DIR"), CONTAINER_MODELS, False))
    if _store_folder(cfg):
        binds.append(bind(_store_folder(cfg), CONTAINER_STORE, False))
    return binds


def _store_folder(cfg) -> Path | None:
    store = cfg.run_store()
    if store is None or ("://" in store and not store.startswith("file://")):
        return None
    return Path(store.removeprefix("file://"))


def container_dataset(cfg, dataset_dir: str) -> str:
    """Where the run's dataset appears inside the container."""
    folder = Path(dataset_dir).resolve()
    if folder == cfg.path("DATASET_DIR").resolve():
        return CONTAINER_DATASET
    for k, root in enumerate(cfg.dataset_roots()):
        if folder == root or root in folder.parents:
            return f"{CONTAINER_ROOT}/datasets/{k}/{folder.relative_to(root)}".rstrip("/.")
    raise RunnerError(f"dataset {folder} is neither DATASET_DIR nor inside DATASET_ROOTS: it is not mounted")


def container_args(cfg, plan: dict) -> list[str]:
    """The run's configuration options with the worker's paths replaced by the container's (the run store too: the
    container publishes its runs itself, so a remote engine needs no shared folder)."""
    kept = [a for a in plan["config_args"]
            if not a.startswith(("--set=DATASET_DIR=", "--set=METRICS_DIR=", "--set=MODELS_DIR=", "--set=RUN_STORE="))]
    store = CONTAINER_STORE if _store_folder(cfg) else cfg.run_store()
    return kept + [f"--data={container_dataset(cfg, plan['dataset_dir'])}", f"--set=METRICS_DIR={CONTAINER_METRICS}",
                   f"--set=MODELS_DIR={CONTAINER_MODELS}"] + ([f"--set=RUN_STORE={store}"] if store else [])


def early_stop_of(plan: dict, run: dict) -> dict | None:
    """What a training operator needs for EARLY_STOP_SPREAD: the plan's early_stop and the planned runs of its
    architecture and backend; None when it is off."""
    early_stop = plan.get("early_stop") or {}
    if not early_stop.get("spread"):
        return None
    mine = (run["architecture"], run["backend"])
    return {**early_stop, "runs": [other for other in plan["runs"] if (other["architecture"], other["backend"]) == mine]}


def tasks(env, cfg, plan):
    """(warm-up, mapped training) DockerOperators of an environment's DAG, wired to the preflight plan."""
    from airflow.sdk import task

    @task
    def warm_up_command(plan: dict) -> list[list[str]]:
        if plan["warmup_minutes"] <= 0:
            return []
        return [ect_command(warmup_args(env.name, container_args(cfg, plan), plan["backends"][0]), python="python")]

    @task
    def run_commands(plan: dict) -> list[dict]:
        """Each planned run's container command, with the run itself (it labels the task and names its log)."""
        args = container_args(cfg, plan)
        return [{"command": ect_command(profile_run_args(env.name, PlannedRun.from_dict(run), args,
                                                         plan["experiment_name"], plan["dag_run_id"], cool_down=True),
                                        python="python"),
                 "planned_run": run, "early_stop": early_stop_of(plan, run),
                 "duration_alert_s": (plan.get("duration_alerts_s") or {}).get(run_key(run["architecture"],
                                                                                      run["backend"]))}
                for run in plan["runs"]]

    common = dict(
        image=env.docker_image, docker_url=env.docker_url, mounts=mounts(cfg, env), mount_tmp_dir=False,
        device_requests=device_requests(env.gpus), shm_size=shm_bytes(env.docker_shm_size),
        user=env.docker_user or f"{os.getuid()}:{os.getgid()}", network_mode=env.docker_network_mode,
        auto_remove=env.docker_auto_remove, pool=env.pool_name, tty=False, **task_options(env),
        environment={"ECT_HOME": CONTAINER_ROOT, "HOME": "/tmp", "KERAS_HOME": "/tmp/keras",
                     "MPLCONFIGDIR": "/tmp/matplotlib", "TF_CPP_MIN_LOG_LEVEL": "2", LOG_PREFIX_VARIABLE: "1"},
    )
    warm = EctDockerOperator.partial(task_id="warm_up", **common).expand(command=warm_up_command(plan))
    # none_failed: a warm-up mapped over no command (WARMUP_TIME 0) is skipped, and must not skip training.
    trained = EctDockerOperator.partial(task_id="train", retries=env.retries, retry_delay=timedelta(seconds=env.retry_delay_s),
                                        trigger_rule="none_failed", map_index_template=MAP_INDEX_TEMPLATE,
                                        environment_name=env.name, **common).expand_kwargs(run_commands(plan))
    return warm, trained


class EctDockerOperator(DockerOperator):
    """A DockerOperator whose MLflow credentials are looked up when the task runs, not when the DAG file is
    parsed (whatever an operator holds at parse time is stored in the serialized DAG, in clear text), and whose
    output folders are made then too: parsing a DAG file writes nothing. The container's output reaches the task
    log as the process runner's does (ChildOutput): ect's lines at their level, third-party start-up output in
    METRICS_DIR/logs."""

    _output: ChildOutput | None = None

    def __init__(self, *, planned_run: dict | None = None, environment_name: str | None = None,
                 early_stop: dict | None = None, duration_alert_s: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.planned_run, self.environment_name = planned_run, environment_name  # a training task's run
        self.early_stop = early_stop  # the plan's early_stop and the runs of the same architecture and backend
        self.duration_alert_s = duration_alert_s  # when the run alerts (ALERT_CALLBACK) for running too long

    def execute(self, context):
        from ect.config import load_config

        cfg = load_config()
        for path in (cfg.path("METRICS_DIR"), cfg.path("MODELS_DIR")):  # bind mounts need their sources
            path.mkdir(parents=True, exist_ok=True)
        self._private_environment = {**self._private_environment, **run_environment(cfg)}
        run = PlannedRun.from_dict(self.planned_run) if self.planned_run else None
        if run is not None:
            context[RUN_LABEL] = run.label
            self.log.info(f"{run.label} in {self.image}")
            skipped = early_stop_skip(cfg, self.environment_name, run, (self.early_stop or {}).get("runs", []),
                                      self.early_stop)
            if skipped:
                return f"skipped: {skipped}"
        self._output = ChildOutput(third_party_log(cfg, self.environment_name, run) if run is not None else None)
        limit_s = self.duration_alert_s if run is not None else None
        try:
            with DurationWatch(limit_s, run.label if run else self.task_id,
                               lambda message: call_alert(cfg.environment(self.environment_name), context, message)):
                return super().execute(context)
        finally:
            self._output.close()
            self._output = None

    @property
    def log(self):
        """While the container runs, the provider logs each of its lines with log.info: they go through ChildOutput."""
        base = super().log
        return base if self._output is None else _ContainerLines(base, self._output)


class _ContainerLines:
    """A logger whose info() is a container's output line (the Docker provider's fetch_logs), the rest as is."""

    def __init__(self, log, output: ChildOutput):
        self._log, self._output = log, output

    def info(self, message, *args, **kwargs):
        self._output.line(str(message) % args if args else str(message))

    def __getattr__(self, name):
        return getattr(self._log, name)


def client(env):
    import docker

    return docker.APIClient(base_url=env.docker_url, timeout=30)


def _where_to_run(env) -> str:
    """What to set when this host is not the environment's GPU host."""
    if env.queue:
        return (f"Is this the GPU host? host_check runs on queue {env.queue} (QUEUE): serve it there with `ect worker "
                f"{env.name}`, or set DOCKER_URL in config/environments.yaml to that host's engine")
    return (f"Environment {env.name} has no QUEUE, so its runs start on whichever worker takes them: set QUEUE in "
            f"config/environments.yaml and serve it on the GPU host with `ect worker {env.name}`, or set DOCKER_URL to "
            "the GPU host's engine (e.g. tcp://gpu-host:2376)")


def check(env, cfg) -> str:
    """The Docker engine answers and has the worker image (the sensors are the container's: checked by each run)."""
    import docker

    engine_url = masked_url(env.docker_url)
    try:
        engine = client(env)
        version = engine.version().get("Version")
        engine.inspect_image(env.docker_image)
    except docker.errors.ImageNotFound:
        raise RunnerError(f"the Docker engine at {engine_url} has no image {env.docker_image!r} (DOCKER_IMAGE of "
                          f"environment {env.name}): build it there with `docker build -f docker/Dockerfile -t "
                          f"{env.docker_image} .` (README, The worker image)") from None
    except docker.errors.DockerException as error:
        raise RunnerError(f"no Docker engine answers at {engine_url} (DOCKER_URL of environment {env.name}) from "
                          f"this host ({socket.gethostname()}): {mask(error, url_secrets(env.docker_url))}. "
                          f"{_where_to_run(env)}") from None
    return f"Docker {version} at {engine_url}, image {env.docker_image}"
