"""One profiled run: trains one architecture inside an energy measurement window and writes its raw run folder.

    data/metrics/raw/<environment>/<architecture>/<run_id>/
        manifest.json   status running -> completed | failed, written atomically
        gpu.csv         one row per GPU per sample (absent when no GPU was measured)
        cpu.csv         one row per sample
        history.csv     one row per epoch, with the epoch's energy
        metrics.json    final quality metrics, GFLOPs, parameters, epochs, images seen

Idempotent per run id: a completed run is reported, not re-run; the files of a failed or interrupted
attempt are moved to previous-attempts/<n>/ and the run starts again as attempt n + 1.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Callable

from ect import __version__
from ect.config import Config
from ect.io import write_json_atomic
from ect.profiling.sampler import iso_utc

RUN_FILES = ("manifest.json", "gpu.csv", "cpu.csv", "history.csv", "metrics.json")


@dataclass(frozen=True)
class RunOutcome:
    folder: Path
    status: str  # completed | failed
    reused: bool  # True when the run id was already completed
    manifest: dict


def run_folder(cfg: Config, environment: str, architecture: str, run_id: str) -> Path:
    return cfg.path("METRICS_DIR") / "raw" / environment / architecture / run_id


def read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def _set_aside_previous_attempt(folder: Path, manifest: dict | None) -> int:
    """Moves an unfinished attempt's files to previous-attempts/<n>/; returns the next attempt number."""
    previous = folder / "previous-attempts"
    attempts = sorted(int(p.name) for p in previous.glob("*") if p.name.isdigit()) if previous.is_dir() else []
    files = [folder / name for name in RUN_FILES if (folder / name).exists()]
    if not files:
        return len(attempts) + 1
    number = (manifest or {}).get("attempt") or (attempts[-1] + 1 if attempts else 1)
    while number in attempts:
        number += 1
    target = previous / str(number)
    target.mkdir(parents=True)
    for path in files:
        path.rename(target / path.name)
    return number + 1


def _versions() -> dict:
    versions = {"python": platform.python_version(), "ect": __version__}
    for name in ("tensorflow", "keras", "numpy", "nvidia-ml-py", "psutil"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _host(choice) -> dict:
    info = {"hostname": socket.gethostname(), "platform": platform.platform(), "cpu_count": os.cpu_count()}
    for sensor in (*choice.gpu, *choice.cpu):
        details = sensor.info()
        if sensor.name == "process":
            info["cpu_model"] = details.get("cpu_model")
        if sensor.name == "nvml":
            info["gpus"] = [d.get("name") for d in details.get("devices", [])]
            info["gpu_driver"] = details.get("driver_version")
    info.setdefault("gpus", [])
    return info


def _sensors(choice, interval_s: float) -> dict:
    return {
        "sampling_interval_s": interval_s,
        "used": [s.name for s in (*choice.gpu, *choice.cpu)],
        "gpu_energy_source": choice.gpu_energy_source,
        "cpu_energy_source": choice.cpu_energy_source,
        "report": choice.report,
        "details": {s.name: s.info() for s in (*choice.gpu, *choice.cpu)},
    }


def steady_state(history: list[dict]) -> dict:
    """Energy per epoch after set-up: the epochs that are not the first of their phase.

    On CPU the first epoch of each phase is mostly TensorFlow building the training graph (the
    fine-tuning phase recompiles it), so those epochs are reported apart as set-up cost.
    """
    seen_phases, epochs = set(), []
    for row in history:
        if row["phase"] in seen_phases and row.get("total_energy_J") is not None:
            epochs.append(row)
        seen_phases.add(row["phase"])
    if not epochs:
        return {"epochs": [], "energy_per_epoch_J": None, "duration_per_epoch_s": None,
                "reason": "no epoch after the first of its phase (more epochs are needed)"}
    return {
        "epochs": [row["epoch"] for row in epochs],
        "energy_per_epoch_J": sum(row["total_energy_J"] for row in epochs) / len(epochs),
        "duration_per_epoch_s": sum(row["duration_s"] for row in epochs) / len(epochs),
    }


def require_tracking_settings(cfg: Config, experiment_name: str | None) -> None:
    """With MLFLOW_ENABLED, the experiment name and a tracking URL must be known before any training."""
    if not cfg.experiment.mlflow_enabled:
        return
    from ect.config import ConfigError, load_secrets

    if not experiment_name:
        raise ConfigError(f"{cfg.origins['experiment.MLFLOW_ENABLED']}: MLFLOW_ENABLED=true needs the MLflow "
                          "experiment: give it with --experiment-name")
    load_secrets(cfg.root).require_url()


def profile_run(cfg: Config, environment: str, architecture: str, repetition: int, run_id: str,
                experiment_name: str | None = None, print_line: Callable[[str], None] = print,
                dag_run_id: str | None = None) -> RunOutcome:
    require_tracking_settings(cfg, experiment_name)
    folder = run_folder(cfg, environment, architecture, run_id)
    existing = read_manifest(folder)
    if existing and existing.get("status") == "completed":
        print_line(f"run {run_id} ({environment}/{architecture}) is already completed: {folder}; not re-running")
        return RunOutcome(folder, "completed", True, existing)
    folder.mkdir(parents=True, exist_ok=True)
    attempt = _set_aside_previous_attempt(folder, existing)

    manifest = new_manifest(cfg, "profiled", environment, architecture, run_id, experiment_name,
                            repetition=repetition, attempt=attempt, dag_run_id=dag_run_id)
    recorded_run(folder, manifest, lambda: _measure(cfg, environment, architecture, folder, manifest, print_line))
    track_if_enabled(cfg, folder, experiment_name, print_line)
    return RunOutcome(folder, "completed", False, manifest)


def new_manifest(cfg: Config, kind: str, environment: str, architecture: str, run_id: str,
                 experiment_name: str | None, **fields) -> dict:
    """The manifest of a run that starts now: kind is "profiled" (ect profile-run) or "train" (ect train)."""
    return {
        "run_id": run_id, "kind": kind, "environment": environment, "architecture": architecture, **fields,
        "status": "running", "pid": os.getpid(), "experiment_name": experiment_name,
        "created": iso_utc(time.time()), "seed": cfg.experiment.seed, "config": cfg.snapshot(),
        "software": _versions(), "error": None,
    }


def recorded_run(folder: Path, manifest: dict, work: Callable[[], None]) -> None:
    """Runs `work` between manifest.json saying running and saying completed, or failed with the error."""
    write_json_atomic(folder / "manifest.json", manifest)
    try:
        work()
        manifest["status"] = "completed"
    except BaseException as error:  # also KeyboardInterrupt and SystemExit from SIGTERM: record, then re-raise
        manifest["status"] = "failed"
        manifest["error"] = f"{type(error).__name__}: {error}"
        manifest["traceback"] = traceback.format_exc(limit=8)
        raise
    finally:
        manifest["finished"] = iso_utc(time.time())
        write_json_atomic(folder / "manifest.json", manifest)


def track_if_enabled(cfg: Config, folder: Path, experiment_name: str | None, print_line) -> None:
    """With MLFLOW_ENABLED, uploads the completed run folder; never changes the run's outcome."""
    if not cfg.experiment.mlflow_enabled:
        return
    try:
        from ect.tracking import track_completed_run

        track_completed_run(cfg, folder, experiment_name, print_line=print_line)
    except Exception as error:
        print_line(f"MLflow: tracking failed ({type(error).__name__}); the run stays completed")


def _measure(cfg: Config, environment: str, architecture: str, folder: Path, manifest: dict, print_line) -> None:
    from ect.models.saving import keep_model
    from ect.models.training import final_metrics, prepare_run, train_two_phase
    from ect.profiling.monitor import EnergyMonitor
    from ect.sensors import select_sensors

    env = cfg.environment(environment)
    interval_s = cfg.experiment.sampling_interval_ms / 1000
    choice = select_sensors(gpu_devices=env.gpus, cpu_tdp_W=cfg.resources.cpu_tdp_w)
    manifest["host"] = _host(choice)
    manifest["sensors"] = _sensors(choice, interval_s)
    for name, entry in choice.report.items():
        print_line(f"sensor {name}: {'used' if entry['used'] else 'not used'} ({entry['reason']})")

    run = prepare_run(cfg, environment, architecture, print_line)
    manifest["dataset"] = {"path": str(cfg.dataset_dir()), "fingerprint": run.fingerprint}
    manifest["preparation_s"] = run.seconds_to_prepare
    write_json_atomic(folder / "manifest.json", manifest)

    with EnergyMonitor(folder, interval_s=interval_s, choice=choice) as monitor:
        monitor.begin_window("training")
        training_start = time.time()
        result = train_two_phase(run.model, run.base, run.train_ds, run.val_ds, cfg.experiment,
                                 history_csv=folder / "history.csv", print_line=print_line, monitor=monitor)
        training = monitor.end_window("training")
        training_end = time.time()
        first_epoch = replace(monitor.windows["epoch_1"], name="first_epoch")
    metrics = final_metrics(run, result, cfg.experiment)
    write_json_atomic(folder / "metrics.json", metrics)
    manifest["model"] = keep_model(run.model, cfg.path("MODELS_DIR"), environment, architecture, manifest["run_id"],
                                   cfg.experiment.save_models)
    if manifest["model"].get("error"):
        print_line(f"warning: the trained model was not saved ({manifest['model']['error']}); the measurement is kept")

    manifest["window"] = {"start": iso_utc(training.start), "end": iso_utc(training.end),
                          "start_unix_s": training.start, "end_unix_s": training.end}
    manifest["training"] = {"start": iso_utc(training_start), "end": iso_utc(training_end),
                            "initial_epochs_trained": result.initial_epochs_trained,
                            "ft_epochs_trained": result.ft_epochs_trained}
    manifest["energy"] = {
        "training": training.to_dict(),
        "first_epoch": first_epoch.to_dict(),
        "steady_state": steady_state(result.history),
        "missed_sampling_ticks": monitor.sampler.missed_ticks,
    }
    gpu = "unavailable" if not training.gpu_energy_J else f"{sum(training.gpu_energy_J.values()):.1f} J ({'+'.join(sorted(set(training.gpu_energy_source.values())))})"
    print_line(f"measured {training.duration_s:.1f} s of training: GPU {gpu}, CPU "
               f"{training.cpu_energy_J:.1f} J ({training.cpu_energy_source}), total {training.total_energy_J:.1f} J; "
               f"val_f1 {metrics['val_f1']:.4f} -> {folder}")

