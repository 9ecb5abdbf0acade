"""`ect profile`: the original's profile_model. Warm-up, then one profiled run per architecture and
repetition, each in its own process (`python -m ect profile-run ...`), with cool-downs between runs.

A run in its own process starts from a fresh TensorFlow (nothing cached from the previous model),
and a run that crashes or is killed is recorded as failed while the next run goes on.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

from ect.config import Config
from ect.models.registry import get_architecture
from ect.profiling.run import read_manifest, require_tracking_settings, run_folder
from ect.profiling.warmup import cool_down


@dataclass(frozen=True)
class PlannedRun:
    architecture: str
    repetition: int
    run_id: str


def plan_runs(architectures: Sequence[str], repetitions: int, campaign_id: str) -> list[PlannedRun]:
    """Repetition-major order (every architecture once, then again): slow drifts of the machine
    (temperature, background load) spread over all architectures instead of biasing one."""
    return [PlannedRun(arch, rep, f"{campaign_id}-rep{rep:02d}")
            for rep in range(repetitions) for arch in architectures]


def _format_duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"


def profile_campaign(cfg: Config, environment: str, config_args: Sequence[str], architectures: Sequence[str],
                     repetitions: int, experiment_name: str | None = None,
                     print_line: Callable[[str], None] = print) -> int:
    """Runs the campaign; returns the number of failed runs. `config_args` are forwarded to each run."""
    cfg.environment(environment)
    require_tracking_settings(cfg, experiment_name)
    for name in architectures:
        get_architecture(name).check_input_size(cfg.experiment.image_size)
    cfg.dataset_dir()  # fail before the warm-up, not after it
    campaign_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    runs = plan_runs(architectures, repetitions, campaign_id)
    python = [sys.executable, "-m", "ect"]
    started = time.monotonic()
    if cfg.experiment.warmup_time > 0:
        warm = subprocess.run([*python, "warmup", environment, "--minutes", str(cfg.experiment.warmup_time),
                               *config_args])
        if warm.returncode != 0:
            print_line(f"warm-up failed with exit code {warm.returncode}; measuring anyway")

    failed, energy_J = [], 0.0
    for number, run in enumerate(runs, start=1):
        print_line(f"== run {number}/{len(runs)}: {run.architecture}, repetition {run.repetition}, "
                   f"id {run.run_id} (elapsed {_format_duration(time.monotonic() - started)})")
        command = [*python, "profile-run", environment, run.architecture, "--repetition", str(run.repetition),
                   "--run-id", run.run_id, *config_args]
        if experiment_name:
            command += ["--experiment-name", experiment_name]
        code = subprocess.run(command).returncode
        manifest = read_manifest(run_folder(cfg, environment, run.architecture, run.run_id)) or {}
        if code == 0 and manifest.get("status") == "completed":
            energy_J += manifest["energy"]["training"]["total_energy_J"]
            outcome = f"completed, {manifest['energy']['training']['total_energy_J']:.1f} J"
        else:
            failed.append(run)
            reason = manifest.get("error") or f"exit code {code}"
            outcome = f"FAILED ({reason})"
        print_line(f"== run {number}/{len(runs)} {outcome}; energy so far {energy_J:.1f} J, "
                   f"elapsed {_format_duration(time.monotonic() - started)}")
        if cfg.experiment.cooldown > 0 and number < len(runs) and number % cfg.experiment.cooldown_every == 0:
            cool_down(cfg.experiment.cooldown * 60, print_line)

    print_line(f"profiled {len(runs) - len(failed)}/{len(runs)} runs in {_format_duration(time.monotonic() - started)}, "
               f"{energy_J:.1f} J measured" + (f"; failed: {', '.join(f'{r.architecture}/{r.run_id}' for r in failed)}"
                                                if failed else ""))
    return len(failed)
