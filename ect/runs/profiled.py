"""`ect profile-run`: one profiled run. Trains one architecture inside an energy measurement window and writes
its raw run folder:

    METRICS_DIR/raw/<environment>/<architecture>/<run_id>/
        manifest.json   status running -> completed | failed, written atomically
        gpu.csv         one row per GPU per sample (absent when no GPU was measured)
        cpu.csv         one row per sample
        history.csv     one row per epoch, with the epoch's energy
        metrics.json    final quality metrics, GFLOPs, parameters, epochs, images seen

Idempotent per run id: a completed run is reported, not re-run; the files of a failed or interrupted
attempt are moved to previous-attempts/<n>/ and the run starts again as attempt n + 1.

With a run store (RUN_STORE), the folder is METRICS_DIR/scratch/<environment>/<architecture>/<run_id>/ and the
finished run (completed or failed) is published to the store; a run the store did not take fails the command (the
task's retry publishes it) and stays complete in scratch.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path

from ect.config import Config
from ect.errors import ConfigError, StoreError
from ect.raw.atomic import FolderInUse, exclusive, write_json
from ect.raw.columns import iso_utc
from ect.raw.layout import HISTORY_FILE, METRICS_FILE, MetricsDir, RunKey, campaign_of, check_run_id
from ect.raw.manifest import (Host, Manifest, Sensors, Window, read_manifest, recorded, set_aside_previous_attempt,
                              write_manifest)
from ect.runs.publish import publish_run
from ect.runs.record import experiment_of, new_manifest, require_tracking_settings, track_if_enabled
from ect.steady import images_per_epoch, steady_state
from ect.store import open_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOutcome:
    folder: Path
    status: str  # completed | failed
    reused: bool  # True when the run id was already completed
    manifest: Manifest


def run_folder(cfg: Config, key: RunKey) -> Path:
    """Where a profiled run is measured: METRICS_DIR/raw, or METRICS_DIR/scratch with a run store."""
    metrics = MetricsDir(cfg.path("METRICS_DIR"))
    return key.folder(metrics.scratch if cfg.run_store() else metrics.raw)


def run_lock(cfg: Config, key: RunKey) -> Path:
    """The lock a measuring run holds: METRICS_DIR/locks/<environment>/<architecture>/<run id>.lock (outside the
    run folders, which hold the run's files only)."""
    return key.folder(cfg.path("METRICS_DIR") / "locks").with_suffix(".lock")


def profile_run(cfg: Config, key: RunKey, repetition: int, experiment_name: str | None = None,
                dag_run_id: str | None = None, backend: str | None = None) -> RunOutcome:
    """One profiled run on `backend` (default: the environment's BACKEND)."""
    backend = backend or cfg.environment(key.environment).backend
    experiment_name = experiment_of(cfg, key.environment, experiment_name)
    require_tracking_settings(cfg, experiment_name)
    check_run_id(key.run_id)
    store = open_store(cfg.run_store())
    folder = run_folder(cfg, key)
    try:
        with exclusive(run_lock(cfg, key), f"profile-run {key}"):
            return _profile_run(cfg, key, repetition, experiment_name, dag_run_id, store, folder, backend)
    except FolderInUse as error:
        raise ConfigError(f"run {key}: {error}; two runs with one run id would interleave their files: wait for "
                          "it to end or choose another run id") from None


def _profile_run(cfg: Config, key: RunKey, repetition: int, experiment_name: str | None, dag_run_id: str | None,
                 store, folder: Path, backend: str) -> RunOutcome:
    existing = read_manifest(folder)
    if existing is not None and existing.completed:
        log.info(f"run {key.run_id} ({key.environment}/{key.architecture}) is already completed: {folder}; not re-running")
        _publish(store, folder, key)
        return RunOutcome(folder, "completed", True, existing)
    folder.mkdir(parents=True, exist_ok=True)
    attempt = set_aside_previous_attempt(folder, existing)
    manifest = new_manifest(cfg, "profiled", key, experiment_name, backend, repetition=repetition, attempt=attempt,
                            dag_run_id=dag_run_id)
    try:
        with recorded(folder, manifest):
            _measure(cfg, key, folder, manifest)
    except BaseException:
        if store is not None:  # the failed run too, so that validation lists it (best effort: the error goes on)
            publish_run(store, folder, key)
        raise
    track_if_enabled(cfg, folder, experiment_name)
    _publish(store, folder, key)
    return RunOutcome(folder, "completed", False, manifest)


def _publish(store, folder: Path, key: RunKey) -> None:
    if store is not None and not publish_run(store, folder, key):
        raise StoreError(f"run {key} is complete in {folder} but the run store {store!r} did not take it; "
                         "a retry of this run, or `ect publish`, publishes it")


def cool_down_after(cfg: Config, key: RunKey) -> None:
    """The cool-down after a run (`ect profile` between runs, `profile-run --cool-down`): COOLDOWN minutes at most,
    until the environment's GPUs are back at the first idle baseline of the run's campaign."""
    from ect.profiling.thermal import Tolerance, campaign_baseline
    from ect.profiling.warmup import cool_down

    reference = campaign_baseline(run_folder(cfg, key).parent.parent, campaign_of(key.run_id))
    cool_down(cfg.experiment.cooldown * 60, reference, Tolerance.of(cfg.experiment),
              cfg.environment(key.environment).gpus)


def projection_history(cfg: Config, key: RunKey, backend: str):
    """Early stopping's distribution for the energy projection (ect.projection), from METRICS_DIR/processed/runs.parquet
    on this host: the environment's runs of the architecture on the backend; None (the plan only) where the file is
    missing, unreadable or has no such run."""
    processed = MetricsDir(cfg.path("METRICS_DIR")).processed
    if not processed.is_file():
        log.info(f"energy projection: the plan only (no history: {processed} does not exist)")
        return None
    import pandas as pd

    from ect.analysis.predict import projection_history as history_of
    try:
        history = history_of(pd.read_parquet(processed), key.environment, key.architecture, backend,
                             "processed/runs.parquet")
    except (OSError, ValueError, KeyError) as error:
        log.warning(f"energy projection: the plan only ({processed} could not be read: {error})")
        return None
    if history is None:
        log.info(f"energy projection: the plan only ({processed} has no run of {key.architecture} on {backend} in "
                 f"{key.environment})")
    else:
        log.info(f"energy projection: early stopping's distribution from {len(history.trained_epochs)} run(s) of "
                 f"{key.architecture} on {backend} in {processed}")
    return history


def host_of(choice) -> Host:
    """This machine, with the CPU model, the names of the GPUs the sensors measure and the GPU driver (each GPU's
    UUID, power limit, memory and energy counter are in the NVML sensor's details)."""
    host = Host(hostname=socket.gethostname(), platform=platform.platform(), cpu_count=os.cpu_count())
    for sensor in (*choice.gpu, *choice.cpu):
        details = sensor.info()
        if sensor.name == "process":
            host.cpu_model = details.get("cpu_model")
        if sensor.name == "nvml":
            host.gpus = [d.get("name") for d in details.get("devices", [])]
            host.gpu_driver = details.get("driver_version")
    return host


def sensors_of(choice, interval_s: float) -> Sensors:
    return Sensors(
        sampling_interval_s=interval_s, used=[s.name for s in (*choice.gpu, *choice.cpu)],
        gpu_energy_source=choice.gpu_energy_source, cpu_energy_source=choice.cpu_energy_source,
        report=choice.report, details={s.name: s.info() for s in (*choice.gpu, *choice.cpu)},
    )


def _measure(cfg: Config, key: RunKey, folder: Path, manifest: Manifest) -> None:
    from ect.models.saving import keep_model
    from ect.models.training import train_two_phase
    from ect.profiling.monitor import EnergyMonitor
    from ect.profiling.thermal import Tolerance, measure_idle_baseline
    from ect.runs.workload import final_metrics, prepare_run
    from ect.sensors import select_sensors

    env = cfg.environment(key.environment)
    interval_s = cfg.experiment.sampling_interval_ms / 1000
    choice = select_sensors(gpu_devices=env.gpus, cpu_tdp_W=cfg.resources.cpu_tdp_w)
    manifest.host = host_of(choice)
    manifest.sensors = sensors_of(choice, interval_s)
    for name, entry in choice.report.items():
        log.info(f"sensor {name}: {'used' if entry['used'] else 'not used'} ({entry['reason']})")

    run = prepare_run(cfg, key.environment, key.architecture, manifest.backend["name"])
    history = projection_history(cfg, key, manifest.backend["name"])
    manifest.dataset = {"path": str(cfg.dataset_dir()), "fingerprint": run.fingerprint}
    manifest.preparation_s = run.seconds_to_prepare
    write_manifest(folder, manifest)

    with EnergyMonitor(folder, interval_s=interval_s, choice=choice) as monitor:
        # What the started sensors measure with (GPUs, driver, NVML), as found now; on disk before the training.
        manifest.host = host_of(choice)
        manifest.sensors = sensors_of(choice, interval_s)
        write_manifest(folder, manifest)
        if cfg.experiment.idle_baseline > 0:  # idle with the framework loaded, before the window
            manifest.idle_baseline = measure_idle_baseline(monitor, cfg.experiment.idle_baseline, folder,
                                                           Tolerance.of(cfg.experiment))
            write_manifest(folder, manifest)
        monitor.begin_window("training")
        training_start = time.time()
        result = train_two_phase(run.model, run.base, run.train_ds, run.val_ds, cfg.experiment,
                                 history_csv=folder / HISTORY_FILE, monitor=monitor, projection_history=history)
        training = monitor.end_window("training")
        training_end = time.time()
        first_epoch = replace(monitor.windows["epoch_1"], name="first_epoch")
    metrics = final_metrics(run, result, cfg.experiment)
    write_json(folder / METRICS_FILE, metrics)
    manifest.model = keep_model(run.model, cfg.path("MODELS_DIR"), key, cfg.experiment.save_models)
    if manifest.model.get("error"):
        log.warning(f"the trained model was not saved ({manifest.model['error']}); the measurement is kept")

    manifest.window = Window(training.start, training.end)
    manifest.training = {"start": iso_utc(training_start), "end": iso_utc(training_end),
                         "initial_epochs_trained": result.initial_epochs_trained,
                         "ft_epochs_trained": result.ft_epochs_trained}
    manifest.energy = {
        "training": training.to_dict(),
        "first_epoch": first_epoch.to_dict(),
        "steady_state": steady_state(result.history, images_per_epoch(metrics)).to_dict(),
        "missed_sampling_ticks": monitor.sampler.missed_ticks,
    }
    energy = training.energy
    gpu = "unavailable" if energy.gpu_total_J is None else f"{energy.gpu_total_J:.1f} J ({energy.gpu_sources})"
    log.info(f"measured {training.duration_s:.1f} s of training: GPU {gpu}, CPU "
             f"{training.cpu_energy_J:.1f} J ({training.cpu_energy_source}), total {training.total_energy_J:.1f} J; "
             f"val_f1 {metrics['val_f1']:.4f} -> {folder}")
