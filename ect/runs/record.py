"""What every run records around its work: its manifest (from the configuration and this process) and, with
MLFLOW_ENABLED, its upload to MLflow once it is complete."""

from __future__ import annotations

import logging
import platform
from importlib import metadata
from pathlib import Path

from ect import __version__
from ect.backends import backend_record
from ect.config import Config, load_secrets
from ect.errors import ConfigError
from ect.raw.layout import RunKey
from ect.raw.manifest import Manifest, started_now

log = logging.getLogger(__name__)


def software_versions() -> dict:
    versions = {"python": platform.python_version(), "ect": __version__}
    for name in ("tensorflow", "jax", "torch", "keras", "numpy", "nvidia-ml-py", "psutil"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def new_manifest(cfg: Config, kind: str, key: RunKey, experiment_name: str | None, backend: str,
                 **values) -> Manifest:
    """The manifest of a run that starts now: kind is "profiled" (ect profile-run) or "train" (ect train)."""
    return started_now(key, kind, experiment_name=experiment_name, seed=cfg.experiment.seed, config=cfg.snapshot(),
                       software=software_versions(), backend=backend_record(backend), **values)


def experiment_of(cfg: Config, environment: str, given: str | None) -> str | None:
    """The MLflow experiment of a run: the one given (--experiment-name, the experiment_name trigger parameter), else
    with MLFLOW_ENABLED the environment's EXPERIMENT_NAME (default ect-<environment>); without MLflow, what was given."""
    if given or not cfg.experiment.mlflow_enabled:
        return given
    return cfg.environment(environment).experiment


def require_tracking_settings(cfg: Config, experiment_name: str | None) -> None:
    """With MLFLOW_ENABLED, the experiment name and a tracking URL must be known before any training."""
    if not cfg.experiment.mlflow_enabled:
        return
    if not experiment_name:
        raise ConfigError(f"{cfg.origins['experiment.MLFLOW_ENABLED']}: MLFLOW_ENABLED=true needs the MLflow "
                          "experiment: give it with --experiment-name")
    load_secrets(cfg.root).require_url()


def track_if_enabled(cfg: Config, folder: Path, experiment_name: str | None) -> None:
    """With MLFLOW_ENABLED, uploads the completed run folder; never changes the run's outcome."""
    if not cfg.experiment.mlflow_enabled:
        return
    try:
        from ect.tracking import track_completed_run

        track_completed_run(cfg, folder, experiment_name)
    except Exception as error:
        log.warning(f"MLflow: tracking failed ({type(error).__name__}); the run stays completed")
