"""A training's steady state, read off its per-epoch energy (history.csv, or the history the training returns).

The first epoch of each phase is set-up: the framework builds or compiles the training step (XLA on JAX, the graph
on TensorFlow; the fine-tuning phase recompiles it), and on an H200 that epoch costs ~15 x a later one (mobilenet_v2
on JAX: 52.6 s and 7152 J, then 3.4 s and 453 J). The rule, per phase: leave out the phase's first epoch; of the
epochs after it, the steady state starts at the first one whose energy is within SETTLE_TOLERANCE (10 %) of the
(lower) median energy of those epochs, and goes on to the phase's end. The run's steady state is the phases' together.

Per steady state: its epochs, duration (s), energy (J), mean power (energy / duration, W), energy per epoch and per
image (energy per epoch / images per epoch: metrics.json's images_seen / trained_epochs, the training and validation
images of an epoch, as the run's own energy_per_image_J counts them).
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field

from ect.numbers import finite

SETTLE_TOLERANCE = 0.10
PHASES = ("initial", "fine_tuning")
RULE = (f"per phase: its first epoch left out (set-up, compilation); from the first later epoch within "
        f"{100 * SETTLE_TOLERANCE:g} % of the median energy of the later epochs to the phase's end")


@dataclass(frozen=True)
class Epoch:
    number: int
    phase: str
    duration_s: float
    energy_J: float | None


@dataclass(frozen=True)
class Steady:
    """The steady epochs of a phase, or of the run."""

    epochs: tuple[int, ...]
    duration_s: float
    energy_J: float
    images_per_epoch: float | None = None

    @property
    def power_W(self) -> float | None:
        return self.energy_J / self.duration_s if self.duration_s > 0 else None

    @property
    def energy_per_epoch_J(self) -> float:
        return self.energy_J / len(self.epochs)

    @property
    def duration_per_epoch_s(self) -> float:
        return self.duration_s / len(self.epochs)

    @property
    def energy_per_image_J(self) -> float | None:
        return self.energy_per_epoch_J / self.images_per_epoch if self.images_per_epoch else None

    def to_dict(self) -> dict:
        return {"epochs": list(self.epochs), "duration_s": self.duration_s, "energy_J": self.energy_J,
                "power_W": self.power_W, "energy_per_epoch_J": self.energy_per_epoch_J,
                "duration_per_epoch_s": self.duration_per_epoch_s, "energy_per_image_J": self.energy_per_image_J}


@dataclass(frozen=True)
class SteadyState:
    """The run's steady state (None, with the reason, when there is none) and each phase's that has one."""

    overall: Steady | None
    phases: dict[str, Steady] = field(default_factory=dict)
    reason: str | None = None  # why there is no steady state
    has_energy: bool = True  # False: the history has no per-epoch energy (runs measured before it was recorded)

    @property
    def duration_s(self) -> float:
        return self.overall.duration_s if self.overall else 0.0

    def to_dict(self) -> dict:
        """The manifest's energy.steady_state: the run's figures, each phase's, the rule."""
        overall = self.overall.to_dict() if self.overall else {
            "epochs": [], "duration_s": 0.0, "energy_J": None, "power_W": None, "energy_per_epoch_J": None,
            "duration_per_epoch_s": None, "energy_per_image_J": None}
        return {**overall, "phases": {name: s.to_dict() for name, s in self.phases.items()}, "rule": RULE,
                **({"reason": self.reason} if self.reason else {})}


def epochs_of(rows: list[dict]) -> list[Epoch]:
    """The epochs of history rows (as the training returns them, or as csv.DictReader reads history.csv: text);
    rows without an epoch number, a phase or a duration are passed over."""
    epochs = []
    for row in rows:
        number, duration = finite(row.get("epoch")), finite(row.get("duration_s"))
        phase = row.get("phase")
        if number is None or duration is None or not isinstance(phase, str) or not phase:
            continue
        epochs.append(Epoch(int(number), phase, duration, finite(row.get("total_energy_J"))))
    return epochs


def read_history(text: str) -> list[dict]:
    """history.csv's rows as text."""
    return list(csv.DictReader(io.StringIO(text)))


def _settled(epochs: list[Epoch]) -> list[Epoch]:
    """The epochs from the first within SETTLE_TOLERANCE of the median energy on (the lower median: an epoch's
    energy, so that one always is)."""
    median = statistics.median_low(e.energy_J for e in epochs)
    start = next(i for i, e in enumerate(epochs) if abs(e.energy_J - median) <= SETTLE_TOLERANCE * abs(median))
    return epochs[start:]


def _steady(epochs: list[Epoch], images_per_epoch: float | None) -> Steady:
    return Steady(tuple(e.number for e in epochs), sum(e.duration_s for e in epochs),
                  sum(e.energy_J for e in epochs), images_per_epoch)


def steady_state(rows: list[dict], images_per_epoch: float | None = None) -> SteadyState:
    """The steady state of a history (module docstring: the rule); images_per_epoch gives the energy per image."""
    epochs = epochs_of(rows)
    if not any(e.energy_J is not None for e in epochs):
        return SteadyState(None, reason="history.csv has no per-epoch energy", has_energy=False)
    by_phase: dict[str, list[Epoch]] = {}
    for epoch in epochs:
        by_phase.setdefault(epoch.phase, []).append(epoch)
    phases = {}
    for name, members in by_phase.items():
        later = members[1:]
        if later and all(e.energy_J is not None for e in later):
            phases[name] = _steady(_settled(later), images_per_epoch)
    if not phases:
        return SteadyState(None, reason="no epoch after the first of its phase (more epochs are needed)")
    steady = [e for name, members in by_phase.items() if name in phases for e in members
              if e.number in phases[name].epochs]
    return SteadyState(_steady(steady, images_per_epoch), phases)


def images_per_epoch(metrics: dict | None) -> float | None:
    """The images of one epoch (training and validation) from metrics.json: images_seen / trained_epochs."""
    metrics = metrics if isinstance(metrics, dict) else {}
    seen, epochs = finite(metrics.get("images_seen")), finite(metrics.get("trained_epochs"))
    return seen / epochs if seen and epochs and seen > 0 and epochs > 0 else None
