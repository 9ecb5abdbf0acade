"""Completed profiled runs as MLflow runs: uploaded once the raw run folder is complete, never before.

Each completed run folder becomes one MLflow run in the experiment named by --experiment-name, tagged
ect_run_key = "<environment>/<architecture>/<run_id>". The tag is set last, after params, metrics and
artifacts, so a run that carries it is a complete upload; before uploading, the experiment is searched
for it, so a crash between the upload and the marking never uploads a run twice.

MLflow 3 idioms: the experiment is tagged as a classic ML experiment (mlflow.experimentKind); settings are params
only, measured quantities metrics (with units in their names); the per-second power and utilisation of the
measurement window are metric series (step = seconds since the window's start, timestamp = the samples' wall
clock); the model is a LoggedModel linked to the run (source_run_id and the run's outputs), registered from there.

The outcome goes to the run folder's tracking.json (written atomically), never into the manifest:
    {"synced": true, "experiment_name", "experiment_id", "mlflow_run_id", "synced_at", "model"}
    {"synced": false, "experiment_name", "error": "<type>: <message>", "attempted_at"}
`ect mlflow-sync` uploads the runs whose tracking.json says synced false, exactly once each.

Credentials (load_secrets: secrets.yaml or MLFLOW_TRACKING_*) reach the MLflow client through
environment variables set only while talking to the server, and are never printed or written.
"""

from __future__ import annotations

import csv
import io
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
from ect.backends import DEFAULT_BACKEND, get_backend
from ect.config import Config
from ect.config.secrets import MlflowSecrets, load_secrets
from ect.energy import emissions_gCO2e, to_kWh
from ect.errors import ConfigError, TrackingError
from ect.masking import mask
from ect.models.saving import MODEL_FILE
from ect.quality import one_class_reason, predicts_one_class
from ect.raw.atomic import is_link, read_json, read_text, write_json
from ect.raw.columns import now_utc
from ect.raw.layout import (CPU_FILE, GPU_FILE, HISTORY_FILE, MANIFEST_FILE, METRICS_FILE, RUN_FILES, TRACKING_FILE,
                            MetricsDir, find_links, find_runs)
from ect.raw.manifest import Manifest, read_manifest

RUN_KEY_TAG = "ect_run_key"
ONE_CLASS_TAG = "ect_model_predicts_one_class"  # "true" on a run whose model predicts one class (never registered)
# MLflow 3's experiment kind (the UI's ExperimentKind): classic/custom model development, not GenAI.
EXPERIMENT_KIND_TAG, CLASSIC_ML = "mlflow.experimentKind", "custom_model_development"
ARTIFACT_FILES = (MANIFEST_FILE, HISTORY_FILE, METRICS_FILE, CPU_FILE, GPU_FILE)
# The training hyperparameters of the manifest's config snapshot (experiment section), logged as params.
HYPERPARAMETERS = (
    "INITIAL_EPOCHS", "FT_EPOCHS", "IMAGE_SIZE", "BATCH_SIZE", "VALIDATION_SPLIT", "SEED", "WEIGHTS",
    "OPTIMIZER", "LEARNING_RATE", "MOMENTUM", "FT_OPTIMIZER", "FT_LEARNING_RATE", "FT_MOMENTUM",
    "EARLY_STOPPING_PATIENCE", "EARLY_STOPPING_MIN_DELTA", "REDUCE_LR_FACTOR", "REDUCE_LR_PATIENCE",
    "SAMPLING_INTERVAL_MS",
)
# history.csv columns that are not per-epoch metrics, and the renamed ones (the final values of
# metrics.json and the manifest's energy use the plain names; the learning rate per epoch, which
# REDUCE_LR_* lowers, is not the LEARNING_RATE param).
_HISTORY_SKIP = {"epoch", "phase", "gpu_energy_source", "cpu_energy_source"}
_HISTORY_RENAME = {"duration_s": "epoch_duration_s", "learning_rate": "epoch_learning_rate",
                   "gpu_energy_J": "epoch_gpu_energy_J", "cpu_energy_J": "epoch_cpu_energy_J",
                   "total_energy_J": "epoch_total_energy_J"}
# Client settings while talking to the server: an unreachable server fails within seconds.
_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}

log = logging.getLogger(__name__)


def run_key(manifest: Manifest) -> str:
    """The ect_run_key tag: the run's name, prefixed with train/ for `ect train` runs (kept in MODELS_DIR)."""
    return f"train/{manifest.key.name}" if manifest.kind == "train" else manifest.key.name


def _scrub(text: str, secrets: MlflowSecrets) -> str:
    """An error message fit for files and terminals: no password or URL credentials (ect.masking.mask)."""
    text = mask(text, secrets.secret_values())
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
        "environment": manifest.environment, "architecture": manifest.architecture, "backend": _backend_name(manifest),
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
    """metrics.json's measured numbers; val_* become final_val_* (the plain names hold the per-epoch history).
    Its settings (image_size, batch_size, seed) are params (HYPERPARAMETERS), never metrics."""
    data = read_json(folder / METRICS_FILE) or {}
    return {(f"final_{key}" if key.startswith("val_") else key): float(value) for key, value in data.items()
            if not isinstance(value, bool) and _number(value) is not None and key.upper() not in HYPERPARAMETERS}


def _power_series(folder: Path, manifest: Manifest) -> list:
    """Per-second metric series of the measurement window: each GPU's power and utilisation, the CPU's power
    (power_cpu_W from the RAPL counter, else power_cpu_estimated_W) and utilisation. Each point is the mean of
    that second's samples (SAMPLING_INTERVAL_MS apart); step = seconds since the window's start, timestamp =
    the second's first sample (Unix ms)."""
    from mlflow.entities import Metric

    from ect.aggregate.samples import read_cpu, read_gpu

    window = manifest.window
    if window is None or window.start_unix_s is None or window.end_unix_s is None:
        return []
    frames = []
    gpu, cpu = read_gpu(folder), read_cpu(folder)
    if gpu is not None and gpu.num_rows:
        samples = gpu.select(["time_ms", "gpu_index", "power_W", "utilization_gpu_pct"]).to_pandas()
        for index, part in samples.groupby("gpu_index"):
            frames.append(part.drop(columns="gpu_index").rename(columns={
                "power_W": f"power_gpu{int(index)}_W", "utilization_gpu_pct": f"utilization_gpu{int(index)}_pct"}))
    if cpu is not None and cpu.num_rows:
        cpu = cpu.to_pandas()
        counter_W = cpu["rapl_package_energy_uJ"].diff() / cpu["time_ms"].diff() / 1000  # uJ/ms = mW
        frame = cpu[["time_ms"]].assign(utilization_cpu_process_pct=cpu["process_cpu_pct"],
                                        utilization_cpu_system_pct=cpu["system_cpu_pct"])
        if cpu["rapl_package_energy_uJ"].notna().any():
            frame["power_cpu_W"] = counter_W.where(counter_W >= 0)  # a counter wrap is no reading
        elif cpu["cpu_power_estimated_W"].notna().any():
            frame["power_cpu_estimated_W"] = cpu["cpu_power_estimated_W"]
        frames.append(frame)
    start_ms, end_ms = window.start_ms, window.end_ms
    metrics = []
    for frame in frames:
        frame = frame[(frame["time_ms"] >= start_ms) & (frame["time_ms"] <= end_ms)]
        seconds = frame.groupby((frame["time_ms"] - start_ms) // 1000)
        first_ms, means = seconds["time_ms"].min(), seconds.mean()
        for name in means.columns.drop("time_ms"):
            metrics += [Metric(name, float(value), int(first_ms[step]), int(step))
                        for step, value in means[name].dropna().items()]
    return metrics


def _note(manifest: Manifest, overview: dict[str, float]) -> str:
    """The run's description (mlflow.note.content): its energy, emissions and F1, to 4 significant digits."""
    parts = [f"{manifest.architecture} on {manifest.environment}, run {manifest.run_id}"]
    if "total_energy_J" in overview:
        parts.append(f"{overview['total_energy_J']:.4g} J = {overview['energy_kWh']:.4g} kWh, "
                     f"{overview['emissions_gCO2e']:.4g} gCO2e, in {overview.get('duration_s', math.nan):.4g} s")
    else:
        parts.append("energy not measured (ect train)")
    if "final_val_f1" in overview:
        parts.append(f"validation F1 {overview['final_val_f1']:.4g}")
    return "; ".join(parts) + "."


def _history(folder: Path, timestamp_ms: int):
    from mlflow.entities import Metric

    path = folder / HISTORY_FILE
    if not path.exists():
        return []
    metrics = []
    for row in csv.DictReader(io.StringIO(read_text(path), newline="")):  # never through a link
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
        "backend": _backend_name(manifest),
        **({"dag_run_id": manifest.dag_run_id} if manifest.dag_run_id else {}),
        **energy_tags,
    }


def _find_synced(client, experiment_id: str, key: str):
    runs = client.search_runs([experiment_id], filter_string=f"tags.{RUN_KEY_TAG} = '{key}'", max_results=1)
    return runs[0] if runs else None


def run_link(url: str, experiment_id: str, mlflow_run_id: str) -> str:
    """The run's page in MLflow's UI, in its classic ML view (workflowType; the UI would otherwise pick its GenAI view
    from the experiment's kind, or from what it last showed)."""
    return f"{url.rstrip('/')}/#/experiments/{experiment_id}/runs/{mlflow_run_id}?workflowType=machine_learning"


def _experiment_id(client, name: str) -> str:
    """The experiment's id, creating it as a classic ML experiment; an existing one whose kind is unset or only
    inferred by the UI (e.g. genai_development_inferred) is made one."""
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: CLASSIC_ML})
        except Exception:  # created meanwhile by another process
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    kind = experiment.tags.get(EXPERIMENT_KIND_TAG) or ""
    if not kind or "inferred" in kind:
        client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, CLASSIC_ML)
    return experiment.experiment_id


def _log_model(client, experiment_id: str, run_id: str, manifest: Manifest, folder: Path, overview: list,
               models_dir: Path) -> str:
    """Logs the run's model as a LoggedModel of the run (MLflow Keras format, the run's params and overview
    metrics) and registers it from there when its val_f1 is the architecture's best. A model that predicts one class
    (ect.quality) is tagged ONE_CLASS_TAG and never registered: its F1 says nothing of quality."""
    from mlflow.entities import LoggedModelOutput, Metric
    from mlflow.models import Model

    from ect.models.saving import SUMMARY_FILE, find_model

    one_class = one_class_reason(_validation_metrics({m.key: m.value for m in overview}))
    if one_class:
        client.set_tag(run_id, ONE_CLASS_TAG, "true")
    model_file = find_model(models_dir, manifest, folder)
    if model_file is None:
        recorded = manifest.model or {}
        why = recorded.get("error") or recorded.get("reason") or f"no {MODEL_FILE} for this run in {models_dir}"
        return f"not logged: {why}"
    logged = client.create_logged_model(experiment_id, name="model", source_run_id=run_id, params=_params(manifest),
                                        tags={"architecture": manifest.architecture,
                                              "environment": manifest.environment, "backend": _backend_name(manifest),
                                              **({ONE_CLASS_TAG: "true"} if one_class else {})}, model_type="keras")
    model_id = logged.model_id
    try:
        client.log_outputs(run_id, [LoggedModelOutput(model_id, step=0)])
        with tempfile.TemporaryDirectory(prefix="ect-mlflow-model-") as tmp:
            _save_mlflow_model(model_file, Path(tmp) / "model", manifest, Model(
                artifact_path=logged.artifact_location, run_id=run_id, model_uuid=model_id, model_id=model_id))
            client.log_model_artifacts(model_id, str(Path(tmp) / "model"))
        client.log_batch(run_id, metrics=[Metric(m.key, m.value, m.timestamp, m.step, model_id=model_id)
                                          for m in overview])  # the run's own points stay as they are
        client.finalize_logged_model(model_id, "READY")
    except BaseException:
        try:  # best effort: the run is marked failed too
            client.finalize_logged_model(model_id, "FAILED")
        except Exception:
            pass
        raise
    if (model_file.parent / SUMMARY_FILE).exists():
        client.log_artifact(run_id, str(model_file.parent / SUMMARY_FILE))
    client.set_tag(run_id, "ect_model_logged", "true")
    architecture = manifest.architecture
    others = client.search_runs(
        [experiment_id], max_results=1000,
        filter_string=f"tags.architecture = '{architecture}' and tags.ect_model_logged = 'true'")
    if one_class:
        return f"logged, not registered: the model predicts one class ({one_class})"
    best = max((r.data.metrics.get("final_val_f1", -math.inf) for r in others if r.info.run_id != run_id
                and not _predicts_one_class(r)), default=-math.inf)
    val_f1 = next((m.value for m in overview if m.key == "final_val_f1"), None)
    if val_f1 is None or val_f1 <= best:
        return f"logged, not registered: val_f1 {val_f1} is not above the best {architecture} run's {best}"
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(architecture)
    except MlflowException as error:
        if getattr(error, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(architecture, f"models:/{model_id}", run_id=run_id, model_id=model_id)
    return f"registered as {architecture} version {version.version} (val_f1 {val_f1:.4f})"


def _validation_metrics(final: dict[str, float]) -> dict[str, float]:
    """final_val_* metrics of an MLflow run by the names of metrics.json (val_*)."""
    return {key.removeprefix("final_"): value for key, value in final.items() if key.startswith("final_val_")}


def _predicts_one_class(mlflow_run) -> bool:
    """An earlier MLflow run's model predicts one class: tagged so, or (a run logged before the tag) its metrics."""
    return (mlflow_run.data.tags.get(ONE_CLASS_TAG) == "true"
            or predicts_one_class(_validation_metrics(mlflow_run.data.metrics)))


def _save_mlflow_model(model_file: Path, target: Path, manifest: Manifest, mlflow_model) -> None:
    """model.keras as an MLflow model folder (MLmodel + data/model.keras), loadable by mlflow.keras.load_model."""
    import keras
    import mlflow.keras

    import ect.models.layers  # noqa: F401  (registers ImagePreprocessing for loading)

    model = keras.saving.load_model(model_file, compile=False)
    mlflow.keras.save_model(model, str(target), mlflow_model=mlflow_model,
                            pip_requirements=model_requirements(manifest.backend or {}))


def _backend_name(manifest: Manifest) -> str:
    return (manifest.backend or {}).get("name") or DEFAULT_BACKEND  # a run from before backends: TensorFlow


def model_requirements(backend: dict) -> list[str]:
    """pip requirements of a run's model: Keras and the framework it was trained on, at the run's versions (the
    manifest's `backend`: name, version, keras_version), else at this host's."""
    from importlib import metadata

    def pinned(distribution: str, version: str | None) -> str:
        if version is None:
            try:
                version = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                return distribution
        # No local label (torch's 2.13.0+cu130): "==2.13.0" accepts every build of that version.
        return f"{distribution}=={version.split('+')[0]}"

    framework = get_backend(backend.get("name") or DEFAULT_BACKEND)  # a run from before backends: TensorFlow
    return [pinned("keras", backend.get("keras_version")), pinned(framework.distribution, backend.get("version"))]


def _log_plots(client, run_id: str, manifest: Manifest, folder: Path) -> None:
    """Training curves and, for profiled runs, the power timeline, as PNGs under plots/."""
    import pandas as pd

    from ect.analysis import plots

    with tempfile.TemporaryDirectory(prefix="ect-mlflow-plots-") as tmp:
        if (folder / HISTORY_FILE).exists():
            history = pd.read_csv(io.StringIO(read_text(folder / HISTORY_FILE)))
            plots.training_curves(history, manifest.key, Path(tmp) / "training_curves.png")
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
    overview = {**_final_metrics(folder), **energy}
    tags = {**_tags(manifest, energy_tags, experiment_name), "mlflow.note.content": _note(manifest, overview)}
    mlflow_run = client.create_run(experiment_id, run_name=f"{manifest.architecture}-{manifest.run_id}", tags=tags)
    run_id = mlflow_run.info.run_id
    try:
        params = [Param(k, v) for k, v in _params(manifest).items()]
        finals = [Metric(k, v, now_ms, 0) for k, v in overview.items()]
        try:
            series = _power_series(folder, manifest)
        except Exception as error:  # unreadable samples never keep a run out of MLflow
            series = []
            client.set_tag(run_id, "ect_power_series_error", f"{type(error).__name__}: {error}"[:500])
        metrics = _history(folder, now_ms) + finals + series
        for start in range(0, len(params), 100):
            client.log_batch(run_id, params=params[start:start + 100])
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start:start + 1000])
        for name in ARTIFACT_FILES:
            if (folder / name).exists() and not is_link(folder / name):
                client.log_artifact(run_id, str(folder / name), "raw")
        try:
            _log_plots(client, run_id, manifest, folder)
        except Exception as error:  # a figure never keeps a run out of MLflow
            client.set_tag(run_id, "ect_plots_error", f"{type(error).__name__}: {error}"[:500])
        model = _log_model(client, experiment_id, run_id, manifest, folder, finals, models_dir)
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
        log.info(f"MLflow: {key} {note} as run {mlflow_run_id} of experiment {experiment_name!r}; model {model}; "
                 f"{run_link(mask(url, secrets.secret_values()), experiment_id, mlflow_run_id)}")
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

    Returns (run folder, status) for each run it tried; a second call finds nothing to do. Symbolic links are never
    followed: a linked run (or environment, architecture) folder, and a tracked run with a linked file, are not
    synced (named), and nothing is read or written through them.
    """
    load_secrets(cfg.root).require_url()  # a configuration error, before touching any run
    raw = Path(raw_dir) if raw_dir else MetricsDir(cfg.path("METRICS_DIR")).raw
    results: list[tuple[Path, str]] = []
    for root in (raw, cfg.path("MODELS_DIR")):
        for link in find_links(root):
            results.append((link, "not synced: a symbolic link, not followed (nothing read or written through it)"))
            log.warning(f"{link}: {results[-1][1]}")
        results += _sync_folders(cfg, find_runs(root))
    return results


def _sync_folders(cfg: Config, folders: list[Path]) -> list[tuple[Path, str]]:
    results = []
    for folder in folders:
        if not os.path.lexists(folder / TRACKING_FILE):
            continue
        linked = [name for name in (*RUN_FILES, TRACKING_FILE) if is_link(folder / name)]
        if linked:
            results.append((folder, f"not synced: {', '.join(linked)}: a symbolic link, not read"))
            log.warning(f"{folder}: {results[-1][1]}")
            continue
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
