"""The one planner of profiled runs, for `ect profile` campaigns and DAG runs alike.

Repetition-major order (every architecture on every backend once, then again): slow drifts of the machine
(temperature, background load) spread over all architectures and backends instead of biasing one. Every
COOLDOWN_EVERY-th run but the last cools down after itself.

Repetitions that stop when the answer is known (EARLY_STOP_SPREAD > 0): a planned run is skipped once the completed
runs of its architecture on its backend in the same campaign (its siblings in the plan: at least EARLY_STOP_MIN_RUNS)
have a relative spread of their energy, (max - min) / median of the training window's total_energy_J, at most
EARLY_STOP_SPREAD. The range, not the coefficient of variation: it needs no distribution, and it bounds every pair of
runs (MLPerf Power's best and worst run, the Green Metrics Tool's run-to-run deviation).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

from ect.raw.layout import run_id_for
from ect.raw.manifest import read_manifest


@dataclass(frozen=True)
class PlannedRun:
    architecture: str
    repetition: int
    run_id: str
    cool_down_after: bool = False
    backend: str = "tensorflow"

    @property
    def label(self) -> str:
        """How people name the run: "vgg16 · jax · rep 0" (the training task's map index in Airflow's grid)."""
        return f"{self.architecture} · {self.backend} · rep {self.repetition}"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PlannedRun:
        return cls(**data)


def plan_runs(architectures: Sequence[str], repetitions: int, campaign_id: str, cooldown_minutes: float = 0,
              cooldown_every: int = 1, backends: Sequence[str] = ("tensorflow",)) -> list[PlannedRun]:
    runs = [(arch, backend, rep) for rep in range(repetitions) for arch in architectures for backend in backends]
    return [PlannedRun(arch, rep, run_id_for(campaign_id, rep, backend),
                       cooldown_minutes > 0 and number % cooldown_every == 0 and number < len(runs), backend)
            for number, (arch, backend, rep) in enumerate(runs, start=1)]


def plan_of(experiment, campaign_id: str, backends: Sequence[str]) -> list[PlannedRun]:
    """The plan of a campaign with the experiment settings (architectures, repetitions, cool-downs) and the
    environment's backends (Config.backends)."""
    return plan_runs(experiment.architectures, experiment.repetitions, campaign_id, experiment.cooldown,
                     experiment.cooldown_every, backends)


def energy_spread(energies: Sequence[float]) -> float | None:
    """(max - min) / median of the energies; None for fewer than two or a median that is not positive."""
    if len(energies) < 2:
        return None
    median = statistics.median(energies)
    return (max(energies) - min(energies)) / median if median > 0 else None


def answer_known(energies: Sequence[float], spread: float, min_runs: int) -> str | None:
    """Why no more repetitions are needed (the energies of at least min_runs completed runs spread by at most
    `spread`), or None: not yet, or early stop off (spread 0)."""
    if spread <= 0 or len(energies) < max(min_runs, 2):
        return None
    observed = energy_spread(energies)
    if observed is None or observed > spread:
        return None
    return (f"the answer is known: {len(energies)} completed runs spread by {100 * observed:.3g} % ((max - min) / "
            f"median of {min(energies):.4g}-{max(energies):.4g} J), at most EARLY_STOP_SPREAD {100 * spread:g} %")


def completed_energy_J(folder: Path) -> float | None:
    """The total energy of the training window of a completed run folder (its manifest), else None."""
    manifest = read_manifest(folder)
    if manifest is None or not manifest.completed or not isinstance(manifest.energy, dict):
        return None
    training = manifest.energy.get("training")
    value = training.get("total_energy_J") if isinstance(training, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def early_stop_reason(run: PlannedRun, plan: Sequence[PlannedRun], folder_of: Callable[[PlannedRun], Path],
                      spread: float, min_runs: int) -> str | None:
    """Why `run` is skipped (its siblings in the plan, same architecture and backend, already know the answer:
    answer_known), or None: it runs. A run already completed (a retried task) is never skipped."""
    if spread <= 0 or completed_energy_J(folder_of(run)) is not None:
        return None
    energies = [energy for other in plan
                if (other.architecture, other.backend) == (run.architecture, run.backend) and other.run_id != run.run_id
                and (energy := completed_energy_J(folder_of(other))) is not None]
    return answer_known(energies, spread, min_runs)
