"""`ect profile`: the original's profile_model. Warm-up, then one profiled run per architecture and
repetition, each in its own process (`python -m ect profile-run ...`), with cool-downs between runs.

A run in its own process starts from a fresh framework (nothing cached from the previous model, the backend
chosen before Keras is imported),
and a run that crashes or is killed is recorded as failed while the next run goes on.
"""

from __future__ import annotations

import logging
import subprocess
import time
from datetime import datetime, timezone
from typing import Sequence

from ect.architectures import get_architecture
from ect.backends import check_backend
from ect.config import Config
from ect.raw.layout import RunKey
from ect.raw.manifest import read_manifest
from ect.runs.commands import ect_command, profile_run_args, warmup_args
from ect.runs.plan import early_stop_reason, plan_of
from ect.runs.profiled import cool_down_after, run_folder
from ect.runs.record import experiment_of, require_tracking_settings

log = logging.getLogger(__name__)


def format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def profile_campaign(cfg: Config, environment: str, options: Sequence[str], experiment_name: str | None = None) -> int:
    """Runs the campaign of the configuration's architectures and repetitions; returns the number of failed runs.
    `options` (config_options) are forwarded to each run."""
    cfg.environment(environment)
    experiment_name = experiment_of(cfg, environment, experiment_name)
    require_tracking_settings(cfg, experiment_name)
    for name in cfg.experiment.architectures:
        get_architecture(name).check_input_size(cfg.experiment.image_size)
    backends = cfg.backends(environment)
    for name in backends:
        check_backend(name, cfg.experiment.architectures)
    cfg.dataset_dir()  # fail before the warm-up, not after it
    runs = plan_of(cfg.experiment, datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ"), backends)
    started = time.monotonic()
    if cfg.experiment.warmup_time > 0:
        warm = subprocess.run(ect_command(warmup_args(environment, list(options), backends[0])))
        if warm.returncode != 0:
            log.warning(f"warm-up failed with exit code {warm.returncode}; measuring anyway")

    failed, skipped, energy_J = [], [], 0.0
    for number, run in enumerate(runs, start=1):
        reason = early_stop_reason(run, runs, lambda r: run_folder(cfg, RunKey(environment, r.architecture, r.run_id)),
                                   cfg.experiment.early_stop_spread, cfg.experiment.early_stop_min_runs)
        if reason:  # EARLY_STOP_SPREAD: skipped, not failed, and no cool-down after it
            skipped.append(run)
            log.info(f"== run {number}/{len(runs)}: {run.label} skipped: {reason}")
            continue
        log.info(f"== run {number}/{len(runs)}: {run.architecture} on {run.backend}, repetition {run.repetition}, "
                 f"id {run.run_id} (elapsed {format_duration(time.monotonic() - started)})")
        key = RunKey(environment, run.architecture, run.run_id)
        args = profile_run_args(environment, run, list(options), experiment_name)
        code = subprocess.run(ect_command(args)).returncode
        manifest = read_manifest(run_folder(cfg, key))
        if code == 0 and manifest is not None and manifest.completed:
            run_J = manifest.energy["training"]["total_energy_J"]
            energy_J += run_J
            outcome = f"completed, {run_J:.1f} J"
        else:
            failed.append(key)
            reason = (manifest.error if manifest else None) or f"exit code {code}"
            outcome = f"FAILED ({reason})"
        log.info(f"== run {number}/{len(runs)} {outcome}; energy so far {energy_J:.1f} J, "
                 f"elapsed {format_duration(time.monotonic() - started)}")
        if run.cool_down_after:
            cool_down_after(cfg, key)

    log.info(f"profiled {len(runs) - len(failed) - len(skipped)}/{len(runs)} runs in "
             f"{format_duration(time.monotonic() - started)}, {energy_J:.1f} J measured"
             + (f"; skipped (EARLY_STOP_SPREAD): {len(skipped)}" if skipped else "")
             + (f"; failed: {', '.join(f'{k.architecture}/{k.run_id}' for k in failed)}" if failed else ""))
    return len(failed)
