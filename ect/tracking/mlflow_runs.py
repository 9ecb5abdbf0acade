"""Completed profiled runs as MLflow runs: uploaded once the raw run folder is complete, never before.

Each completed run folder becomes one MLflow run in the experiment named by --experiment-name, tagged
ect_run_key = "<environment>/<architecture>/<run_id>". The tag is set last, after params, metrics and
artifacts, so a run that carries it is a complete upload; before uploading, the experiment is searched
for it, so a crash between the upload and the marking never uploads a run twice.

The outcome goes to the run folder's tracking.json (written atomically), never into the manifest:
    {"synced": true, "experiment_name", "experiment_id", "mlflow_run_id", "synced_at", "model"}
    {"synced": false, "experiment_name", "error": "<type>: <message>", "attempted_at"}
`ect mlflow-sync` uploads the runs whose tracking.json says synced false, exactly once each.

Credentials (load_secrets: secrets.yaml or MLFLOW_TRACKING_*) reach the MLflow client through
environment variables set only while talking to the server, and are never printed or written.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ect import __version__
from ect.config import Config
from ect.config.secrets import MlflowSecrets, load_secrets, mask_url
from ect.energy import emissions_gCO2e, to_kWh
from ect.errors import ConfigError, TrackingError
from ect.models.saving import MODEL_FILE
from ect.raw.atomic import read_json, write_json
from ect.raw.columns import now_utc
from ect.raw.layout import CPU_FILE, GPU_FILE, HISTORY_FILE, MANIFEST_FILE, METRICS_FILE, TRACKING_FILE, MetricsDir
from ect.raw.manifest import Manifest, read_manifest

RUN_KEY_TAG = "ect_run_key"
ARTIFACT_FILES = (MANIFEST_FILE, HISTORY_FILE, METRICS_FILE, CPU_FILE, GPU_FILE)
# The training hyperparameters of the manifest's config snapshot (experiment section), logged as params.
HYPERPARAMETERS = (
    "INITIAL_EPOCHS", "FT_EPOCHS", "IMAGE_SIZE", "BATCH_SIZE", "VALIDATION_SPLIT", "SEED", "WEIGHTS",
    "OPTIMIZER", "LEARNING_RATE", "MOMENTUM", "FT_OPTIMIZER", "FT_LEARNING_RATE", "FT_MOMENTUM",
    "EARLY_STOPPING_PATIENCE", "EARLY_STOPPING_MIN_DELTA", "REDUCE_LR_FACTOR", "REDUCE_LR_PATIENCE",
    "SAMPLING_INTERVAL_MS",
)
# history.csv columns that are not per-epoch metrics, and the renamed ones (the final values of
# metrics.json and the manifest's energy use the plain names).
_HISTORY_SKIP = {"epoch", "phase", "gpu_energy_source", "cpu_energy_source"}
_HISTORY_RENAME = {"duration_s": "epoch_duration_s", "gpu_energy_J": "epoch_gpu_energy_J",
                   "cpu_energy_J": "epoch_cpu_energy_J", "total_energy_J": "epoch_total_energy_J"}
# Client settings while talking to the server: an unreachable server fails within seconds.
_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

log = logging.getLogger(__name__)


def run_key(manifest: Manifest) -> str:
    """The ect_run_key tag: the run's name, prefixed with train/ for `ect train` runs (kept in MODELS_DIR)."""
    return f"train/{manifest.key.name}" if manifest.kind == "train" else manifest.key.name


def _scrub(text: str, secrets: MlflowSecrets) -> str:
    """An error message fit for files and terminals: no password, user name or URL credentials."""
    for secret in (secrets.password, secrets.username):
        if secret:
            text = text.replace(secret, "***")
    text = mask_url(text)
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:297] + "..."


@contextmanager
def _client_env(secrets: MlflowSecrets) -> Iterator[None]:
    """MLflow's credential and timeout variables, set only inside the block, then restored."""
    values = {"MLFLOW_TRACKING_USERNAME": secrets.username, "MLFLOW_TRACKING_PASSWORD": secrets.password,
              **_CLIENT_ENV}
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = str(value)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _number(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _params(manifest: Manifest) -> dict[str, str]:
    config = manifest.config or {}
    experiment = config.get("experiment") or {}
    params = {key: experiment[key] for key in HYPERPARAMETERS if key in experiment}
    fingerprint = (manifest.dataset or {}).get("fingerprint") or {}
    sensors = manifest.sensors
    params.update({
        "environment": manifest.environment, "architecture": manifest.architecture,
        "repetition": manifest.repetition, "run_id": manifest.run_id, "attempt": manifest.attempt,
        "profile": config.get("profile"),
        "dataset_sha256": fingerprint.get("sha256"), "dataset_total_files": fingerprint.get("total_files"),
        "dataset_skipped_files": fingerprint.get("skipped_files"),
        "dataset_class_counts": json.dumps(fingerprint.get("class_counts"), sort_keys=True)
        if fingerprint.get("class_counts") is not None else None,
        "sensors_used": ",".join(sensors.used or []) or None if sensors else None,
        "sampling_interval_s": sensors.sampling_interval_s if sensors else None,
    })
    return {key: str(value)[:6000] for key, value in params.items() if value is not None}


def _energy(manifest: Manifest, environments: dict) -> tuple[dict[str, float], dict[str, str]]:
    training = (manifest.energy or {}).get("training") or {}
    metrics: dict[str, float] = {}
    gpu = training.get("gpu_energy_J")
    if isinstance(gpu, dict) and gpu:
        metrics["gpu_energy_J"] = sum(float(v) for v in gpu.values())
    for key in ("cpu_energy_J", "dram_energy_J", "total_energy_J", "duration_s"):
        if _number(training.get(key)) is not None:
            metrics[key] = float(training[key])
    if "total_energy_J" in metrics:
        metrics["energy_kWh"] = to_kWh(metrics["total_energy_J"])
        metrics["emissions_gCO2e"] = emissions_gCO2e(metrics["energy_kWh"], environments.get(manifest.environment))
    gpu_source = training.get("gpu_energy_source")
    if isinstance(gpu_source, dict):
        gpu_source = "+".join(sorted(set(map(str, gpu_source.values())))) or "unavailable"
    tags = {"gpu_energy_source": str(gpu_source or "unavailable"),
            "cpu_energy_source": str(training.get("cpu_energy_source") or "unavailable")}
    return metrics, tags


def _final_metrics(folder: Path) -> dict[str, float]:
    """metrics.json's numbers; val_* become final_val_* (the plain names hold the per-epoch history)."""
    data = read_json(folder / METRICS_FILE) or {}
    return {(f"final_{key}" if key.startswith("val_") else key): float(value) for key, value in data.items()
            if not isinstance(value, bool) and _number(value) is not None}


def _history(folder: Path, timestamp_ms: int):
    from mlflow.entities import Metric

    path = folder / HISTORY_FILE
    if not path.exists():
        return []
    metrics = []
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row["epoch"]))
            for column, value in row.items():
                number = _number(value)
                if column in _HISTORY_SKIP or number is None:
                    continue
                metrics.append(Metric(_HISTORY_RENAME.get(column, column), number, timestamp_ms, step))
    return metrics


def _tags(manifest: Manifest, energy_tags: dict[str, str], experiment_name: str) -> dict[str, str]:
    return {
        "environment": manifest.environment, "architecture": manifest.architecture,
        "run_id": manifest.run_id, "experiment_name": experiment_name, "ect_kind": manifest.kind,
        "host": str(manifest.host.hostname or "unknown"),
        "gpus": ", ".join(map(str, manifest.host.gpus or [])) or "none",
        "ect_version": manifest.software.get("ect") or __version__,
        **({"dag_run_id": manifest.dag_run_id} if manifest.dag_run_id else {}),
        **energy_tags,
    }


def _find_synced(client, experiment_id: str, key: str):
    runs = client.search_runs([experiment_id], filter_string=f"tags.{RUN_KEY_TAG} = '{key}'", max_results=1)
    return runs[0] if runs else None


def _experiment_id(client, name: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # created meanwhile by another process
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def _log_model(client, experiment_id: str, mlflow_run, manifest: Manifest, folder: Path, val_f1: float | None,
               models_dir: Path) -> str:
    """Logs the run's model (MLflow Keras format) and registers it when its val_f1 is the architecture's best."""
    from ect.models.saving import SUMMARY_FILE, find_model

    model_file = find_model(models_dir, manifest, folder)
    if model_file is None:
        recorded = manifest.model or {}
        why = recorded.get("error") or recorded.get("reason") or f"no {MODEL_FILE} for this run in {models_dir}"
        return f"not logged: {why}"
    run_id = mlflow_run.info.run_id
    with tempfile.TemporaryDirectory(prefix="ect-mlflow-model-") as tmp:
        _save_mlflow_model(model_file, Path(tmp) / "model")
        client.log_artifacts(run_id, str(Path(tmp) / "model"), "model")
    if (model_file.parent / SUMMARY_FILE).exists():
        client.log_artifact(run_id, str(model_file.parent / SUMMARY_FILE))
    client.set_tag(run_id, "ect_model_logged", "true")
    architecture = manifest.architecture
    others = client.search_runs(
        [experiment_id], max_results=1000,
        filter_string=f"tags.architecture = '{architecture}' and tags.ect_model_logged = 'true'")
    best = max((r.data.metrics.get("final_val_f1", -math.inf) for r in others if r.info.run_id != run_id),
               default=-math.inf)
    if val_f1 is None or val_f1 <= best:
        return f"logged, not registered: val_f1 {val_f1} is not above the best {architecture} run's {best}"
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(architecture)
    except MlflowException as error:
        if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(architecture, f"{mlflow_run.info.artifact_uri}/model", run_id=run_id)
    return f"registered as {architecture} version {version.version} (val_f1 {val_f1:.4f})"


def _save_mlflow_model(model_file: Path, target: Path) -> None:
    """model.keras as an MLflow model folder (MLmodel + data/model.keras), loadable by mlflow.keras.load_model."""
    from importlib import metadata

    import keras
    import mlflow.keras

    import ect.models.layers  # noqa: F401  (registers ImagePreprocessing for loading)

    model = keras.saving.load_model(model_file, compile=False)
    requirements = [f"{name}=={metadata.version(name)}" for name in ("keras", "tensorflow")]
    mlflow.keras.save_model(model, str(target), pip_requirements=requirements)


def _log_plots(client, run_id: str, manifest: Manifest, folder: Path) -> None:
    """Training curves and, for profiled runs, the power timeline, as PNGs under plots/."""
    import pandas as pd

    from ect.analysis import plots

    with tempfile.TemporaryDirectory(prefix="ect-mlflow-plots-") as tmp:
        if (folder / HISTORY_FILE).exists():
            plots.training_curves(pd.read_csv(folder / HISTORY_FILE), manifest.key, Path(tmp) / "training_curves.png")
        window = manifest.window
        if window is not None and window.start_unix_s is not None:
            from ect.aggregate.samples import joined_samples, read_cpu, read_gpu, run_samples

            samples = run_samples(joined_samples(read_gpu(folder), read_cpu(folder), tolerance_ms=1000),
                                  manifest.key).to_pandas()
            run = pd.Series({"environment": manifest.environment, "architecture": manifest.architecture,
                             "run_id": manifest.run_id, "start": window.start_ms,
                             "duration_s": window.end_unix_s - window.start_unix_s})
            plots.power_timeline(samples, run, Path(tmp) / "power_timeline.png")
        client.log_artifacts(run_id, tmp, "plots")


def _upload(client, experiment_id: str, manifest: Manifest, folder: Path, experiment_name: str,
            models_dir: Path, environments: dict) -> tuple[str, str]:
    """One complete upload; returns (MLflow run id, what happened to the model)."""
    from mlflow.entities import Metric, Param

    now_ms = int(time.time() * 1000)
    energy, energy_tags = _energy(manifest, environments)
    finals = _final_metrics(folder)
    mlflow_run = client.create_run(experiment_id, run_name=f"{manifest.architecture}-{manifest.run_id}",
                                   tags=_tags(manifest, energy_tags, experiment_name))
    run_id = mlflow_run.info.run_id
    try:
        params = [Param(k, v) for k, v in _params(manifest).items()]
        metrics = _history(folder, now_ms) + [Metric(k, v, now_ms, 0) for k, v in {**finals, **energy}.items()]
        for start in range(0, len(params), 100):
            client.log_batch(run_id, params=params[start:start + 100])
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        for name in ARTIFACT_FILES:
            if (folder / name).exists():
                client.log_artifact(run_id, str(folder / name), "raw")
        try:
            _log_plots(client, run_id, manifest, folder)
        except Exception as error:  # a figure never keeps a run out of MLflow
            client.set_tag(run_id, "ect_plots_error", f"{type(error).__name__}: {error}"[:500])
        model = _log_model(client, experiment_id, mlflow_run, manifest, folder, finals.get("final_val_f1"),
                           models_dir)
        client.set_tag(run_id, RUN_KEY_TAG, run_key(manifest))  # last: the run is complete
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        try:  # best effort: the partial run (without ect_run_key) is marked failed
            client.set_terminated(run_id, "FAILED")
        except Exception:
            pass
        raise
    return run_id, model


def track_completed_run(cfg: Config, folder: Path, experiment_name: str | None = None) -> dict:
    """Uploads one completed run folder to MLflow (exactly once) and writes its tracking.json.

    Returns what tracking.json says. A failure to talk to the server never raises: it is recorded as
    synced false (for `ect mlflow-sync`). A folder whose manifest is not completed raises TrackingError.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None or not manifest.completed:
        raise TrackingError(f"{folder}: the run is not completed; only completed runs are tracked")
    experiment_name = experiment_name or manifest.experiment_name
    key = run_key(manifest)
    secrets = MlflowSecrets()
    try:
        if not experiment_name:
            raise ConfigError("no MLflow experiment name: give it with --experiment-name")
        secrets = load_secrets(cfg.root)
        url = secrets.require_url()
        with _client_env(secrets):
            from mlflow.tracking import MlflowClient

            client = MlflowClient(tracking_uri=url)
            experiment_id = _experiment_id(client, experiment_name)
            existing = _find_synced(client, experiment_id, key)
            if existing is not None:
                mlflow_run_id, model, note = existing.info.run_id, "unchanged (already uploaded)", "already in MLflow"
            else:
                mlflow_run_id, model = _upload(client, experiment_id, manifest, folder, experiment_name,
                                               cfg.path("MODELS_DIR"), cfg.environments)
                note = "uploaded"
        record = {"synced": True, "experiment_name": experiment_name, "experiment_id": experiment_id,
                  "mlflow_run_id": mlflow_run_id, "run_key": key, "synced_at": now_utc(), "model": model}
        log.info(f"MLflow: {key} {note} as run {mlflow_run_id} of experiment {experiment_name!r}; model {model}")
    except Exception as error:
        message = _scrub(f"{type(error).__name__}: {error}", secrets)
        record = {"synced": False, "experiment_name": experiment_name, "run_key": key, "error": message,
                  "attempted_at": now_utc()}
        log.warning(f"MLflow: {key} not synced ({message}); the run stays completed: `ect mlflow-sync` uploads it later")
    write_json(folder / TRACKING_FILE, record)
    return record


def read_tracking(folder: Path) -> dict | None:
    return read_json(Path(folder) / TRACKING_FILE)


def sync_runs(cfg: Config, raw_dir: Path | None = None) -> list[tuple[Path, str]]:
    """Uploads every completed run (profiled runs under RAW_DIR, `ect train` runs under MODELS_DIR) whose
    tracking.json says synced false, exactly once each.

    Returns (run folder, status) for each run it tried; a second call finds nothing to do.
    """
    load_secrets(cfg.root).require_url()  # a configuration error, before touching any run
    raw = Path(raw_dir) if raw_dir else MetricsDir(cfg.path("METRICS_DIR")).raw
    results: list[tuple[Path, str]] = []
    pattern = f"*/*/*/{TRACKING_FILE}"
    for path in sorted(raw.glob(pattern)) + sorted(cfg.path("MODELS_DIR").glob(pattern)):
        folder = path.parent
        tracking = read_tracking(folder)
        if tracking is None or tracking.get("synced") is not False:
            continue
        manifest = read_manifest(folder)
        if manifest is None or not manifest.completed:
            continue
        record = track_completed_run(cfg, folder, tracking.get("experiment_name") or manifest.experiment_name)
        status = (f"synced: MLflow run {record['mlflow_run_id']} in experiment {record['experiment_name']!r}"
                  if record["synced"] else f"not synced: {record['error']}")
        results.append((folder, status))
    return results
