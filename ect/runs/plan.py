"""The one planner of profiled runs, for `ect profile` campaigns and DAG runs alike.

Repetition-major order (every architecture on every backend once, then again): slow drifts of the machine
(temperature, background load) spread over all architectures and backends instead of biasing one. Every
COOLDOWN_EVERY-th run but the last cools down after itself.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

from ect.raw.layout import run_id_for


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
