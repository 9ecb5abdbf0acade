"""`ect train`: the original's run_training, one model trained without energy profiling.

MODELS_DIR/<environment>/<architecture>/<UTC time>/: manifest.json says running, then completed or failed
(atomically); history.csv grows one row per epoch; model.keras and then metrics.json are written when training
ends. With MLFLOW_ENABLED the completed folder is tracked like a profiled run (without energy: nothing was
measured).
"""

from __future__ import annotations

import logging
import platform
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from ect.config import Config
from ect.models.saving import save_model
from ect.models.training import train_two_phase
from ect.raw.atomic import write_json
from ect.raw.layout import HISTORY_FILE, METRICS_FILE, RunKey
from ect.raw.manifest import Host, recorded
from ect.runs.record import experiment_of, new_manifest, require_tracking_settings, track_if_enabled
from ect.runs.workload import final_metrics, prepare_run

log = logging.getLogger(__name__)


def run_training(cfg: Config, environment: str, architecture: str, experiment_name: str | None = None,
                 backend: str | None = None) -> Path:
    """Trains one model on `backend` (default: the environment's BACKEND); returns its folder."""
    backend = backend or cfg.environment(environment).backend
    experiment_name = experiment_of(cfg, environment, experiment_name)
    require_tracking_settings(cfg, experiment_name)
    run = prepare_run(cfg, environment, architecture, backend)
    key = RunKey(environment, architecture, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ"))
    models_dir = cfg.path("MODELS_DIR")
    out = key.folder(models_dir)
    out.mkdir(parents=True)
    manifest = new_manifest(cfg, "train", key, experiment_name, backend,
                            host=Host(hostname=socket.gethostname(), platform=platform.platform(), gpus=run.gpu_names),
                            dataset={"path": str(cfg.dataset_dir()), "fingerprint": run.fingerprint})
    log.info(f"training {architecture} for {environment}: up to {cfg.experiment.initial_epochs} + "
             f"{cfg.experiment.ft_epochs} epochs -> {out}")
    with recorded(out, manifest):
        started = time.perf_counter()
        result = train_two_phase(run.model, run.base, run.train_ds, run.val_ds, cfg.experiment,
                                 history_csv=out / HISTORY_FILE)
        duration_s = time.perf_counter() - started
        metrics = final_metrics(run, result, cfg.experiment)
        manifest.model = {"file": save_model(run.model, out).relative_to(models_dir).as_posix()}
        write_json(out / METRICS_FILE, {
            "environment": environment, "architecture": architecture, "experiment_name": experiment_name,
            "profile": cfg.profile, "seed": cfg.experiment.seed, "weights": cfg.experiment.weights, "backend": backend,
            "gpus": run.gpu_names, "training_duration_s": duration_s, **metrics,
        })
        log.info(f"done in {duration_s:.1f} s: val_accuracy {metrics['val_accuracy']:.4f}, val_f1 "
                 f"{metrics['val_f1']:.4f}, {metrics['gflops']:.6g} GFLOPs per image -> {out}")
    track_if_enabled(cfg, out, experiment_name)
    return out
