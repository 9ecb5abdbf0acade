"""A running training's projected total energy, after each epoch: the energy so far + the epochs still to come x the
steady energy per epoch, with an interval (issue 28, part 2). Pure: numbers in, numbers out.

The epochs still to come: the history's trained epochs of the architecture on the backend (early stopping's
distribution; `History`), each clipped at the plan's maximum, of the history runs that trained more epochs than this
run so far (conditioned on having got here); the point is their median, the interval their order statistics at the
ranks of a split-conformal interval (floor((n + 1) alpha / 2) and ceil((n + 1)(1 - alpha / 2)) of n; an upper rank
past n is the plan's maximum, which no run exceeds). Without a history, or without a history run that trained this
far, the plan's maximum, without an interval, and the basis says so.

Per epoch: each phase's steady energy per epoch (ect.steady: the phase's first epoch is its warm-up, set-up and
compilation, and is left out once later epochs exist; the mean of its settled epochs); a phase not yet reached, or
reached only for its warm-up epoch, at the history's steady energy per epoch of that phase, else at the current
phase's. Remaining epochs go to the current phase up to its planned epochs, the rest to fine-tuning. The interval's
ends take the epoch-count ends at the epoch energy's ends, mean +/- z sd sqrt(1/n + 1/r) (n settled epochs, r
epochs to come: the mean's error and the future epochs' own spread), a conservative combination.

When training has ended (the fine-tuning phase stopped or reached its plan) the projection is the energy measured.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from ect.steady import epochs_of, steady_state

LEVEL = 0.8
LEVEL_TAG = f"{100 * LEVEL:g}pct"
# history.csv's projection columns (profiled runs), after the epoch's energy columns.
PROJECTION_COLUMNS = ("projected_total_energy_J", f"projected_energy_low_{LEVEL_TAG}_J",
                      f"projected_energy_high_{LEVEL_TAG}_J", "projected_epochs", "projection_basis")
NO_HISTORY = "plan only (no history)"


@dataclass(frozen=True)
class Plan:
    initial_epochs: int
    ft_epochs: int


@dataclass(frozen=True)
class History:
    """Early stopping's distribution for one architecture on one backend, and its steady energy per epoch by phase."""

    trained_epochs: tuple[float, ...]  # each history run's trained epochs (both phases)
    phase_energy_per_epoch_J: dict[str, float] = field(default_factory=dict)  # median steady energy per epoch
    source: str = ""  # where it came from, for the basis: "processed/runs.parquet, vgg16 on jax"


@dataclass(frozen=True)
class Projection:
    total_energy_J: float
    low_J: float | None  # at LEVEL; None without an interval
    high_J: float | None
    epochs: float  # projected trained epochs
    basis: str

    def columns(self) -> dict:
        """history.csv's projection columns, every digit."""
        return dict(zip(PROJECTION_COLUMNS, (self.total_energy_J, self.low_J, self.high_J, self.epochs, self.basis)))

    def text(self) -> str:
        """The log line's part: 3-4 significant digits with units."""
        if self.low_J == self.high_J == self.total_energy_J:  # training ended: what was measured, no interval
            return f"total {_energy(self.total_energy_J)} in {self.epochs:.4g} epochs; {self.basis}"
        span = "no interval" if self.low_J is None else \
            f"{100 * LEVEL:g} % {_energy(self.low_J)} to {_energy(self.high_J)}"
        return f"projected {_energy(self.total_energy_J)} ({span}) in {self.epochs:.4g} epochs; {self.basis}"


def _energy(joules: float) -> str:
    return f"{joules / 1000:.4g} kJ" if abs(joules) >= 1000 else f"{joules:.4g} J"


def order_statistics(values: list[float], level: float = LEVEL) -> tuple[float | None, float | None]:
    """The ends of a split-conformal central interval: the floor((n + 1) alpha / 2)-th and ceil((n + 1)(1 - alpha /
    2))-th smallest of n values (1-based); None where the rank falls outside 1..n."""
    ordered, alpha = sorted(values), 1 - level
    n = len(ordered)
    # rounded first: 1 - 0.8 is 0.19999999999999996, and floor(20 x that / 2) would be 1, not 2
    low, high = math.floor(round((n + 1) * alpha / 2, 9)), math.ceil(round((n + 1) * (1 - alpha / 2), 9))
    return (ordered[low - 1] if low >= 1 else None), (ordered[high - 1] if high <= n else None)


@dataclass(frozen=True)
class _Rate:
    mean_J: float
    sd_J: float  # of the settled epochs; 0 with fewer than 2
    settled: int  # how many settled epochs the mean is of (0: not measured here)
    label: str

    def bounds(self, remaining: float, z: float) -> tuple[float, float]:
        if self.settled < 2 or remaining <= 0:
            return self.mean_J, self.mean_J
        spread = z * self.sd_J * math.sqrt(1 / self.settled + 1 / remaining)
        return max(self.mean_J - spread, 0.0), self.mean_J + spread

    def relabelled(self, label: str) -> _Rate:
        return _Rate(self.mean_J, self.sd_J, self.settled, label)


def _rates(rows: list[dict], history: History | None) -> dict[str, _Rate]:
    steady = steady_state(rows)
    energies = {e.number: e.energy_J for e in epochs_of(rows)}
    rates = {}
    for phase, measured in steady.phases.items():
        values = [energies[n] for n in measured.epochs]
        rates[phase] = _Rate(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0,
                             len(values), f"{phase} at its {len(values)} settled epoch(s)")
    known = history.phase_energy_per_epoch_J if history else {}
    for phase, value in known.items():
        if phase not in rates and value is not None and math.isfinite(value) and value > 0:
            rates[phase] = _Rate(value, 0.0, 0, f"{phase} at the history's steady energy per epoch")
    return rates


def project(rows: list[dict], plan: Plan, history: History | None, phase_ended: bool = False,
            level: float = LEVEL) -> Projection | None:
    """The projection after the last of `rows` (the run's history rows so far, with total_energy_J); phase_ended: the
    last row's phase ends with it (early stopping stopped it, or its planned epochs are done). None without per-epoch
    energy."""
    epochs = epochs_of(rows)
    if not epochs or any(e.energy_J is None for e in epochs):
        return None
    so_far = sum(e.energy_J for e in epochs)
    done, phase = len(epochs), epochs[-1].phase
    initial_done = sum(e.phase == "initial" for e in epochs)
    if phase == "initial":
        initial_total = initial_done if phase_ended else plan.initial_epochs
        phase_left = initial_total - initial_done
    else:
        initial_total, phase_left = initial_done, None  # fine-tuning: every epoch to come is in this phase
    max_total = initial_total + plan.ft_epochs
    max_left = max_total - done
    if max_left <= 0 or (phase_ended and phase != "initial"):
        return Projection(so_far, so_far, so_far, done, "measured (training ended)")

    if history is None or not history.trained_epochs:
        left, low_left, high_left, basis = [], None, None, NO_HISTORY
    else:
        left = sorted(min(t, max_total) - done for t in history.trained_epochs if min(t, max_total) - done >= 1)
        basis = (f"history{f' ({history.source})' if history.source else ''}: {len(left)} of "
                 f"{len(history.trained_epochs)} run(s) trained more than {done} epoch(s)" if left else f"plan only (no history run of {len(history.trained_epochs)} "
                                                 f"trained more than {done} epoch(s))")
    if left:
        low_left, high_left = order_statistics(left, level)
        low_left, high_left = low_left if low_left is not None else 1, high_left if high_left is not None else max_left
        point_left = statistics.median(left)
    else:
        point_left, low_left, high_left = max_left, None, None

    rates = _rates(rows, history)
    current = rates.get(phase)
    if current is None:  # only the phase's warm-up epoch: it, as an upper guess
        current = _Rate(epochs[-1].energy_J, 0.0, 0, f"{phase} at its warm-up epoch (no settled epoch yet)")
    later = rates.get("fine_tuning") if phase == "initial" else current
    if later is None:
        later = current.relabelled(f"fine_tuning at the rate of {current.label}")
    z = statistics.NormalDist().inv_cdf((1 + level) / 2)

    def energy(remaining: float, end: int | None) -> float:
        here = remaining if phase_left is None else min(remaining, phase_left)
        there = remaining - here
        rate_here = current.mean_J if end is None else current.bounds(here, z)[end]
        rate_there = later.mean_J if end is None else later.bounds(there, z)[end]
        return so_far + here * rate_here + there * rate_there

    rate_text = current.label + ("" if later is current or phase != "initial" else f", {later.label}")
    return Projection(energy(point_left, None),
                      None if low_left is None else energy(low_left, 0),
                      None if high_left is None else energy(high_left, 1),
                      done + point_left, f"{basis}; {rate_text}")
