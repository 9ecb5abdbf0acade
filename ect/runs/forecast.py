"""A campaign's energy and duration before it trains, for `ect predict` and each DAG run's preflight alike (one code
path): the planned runs' predictions (ect.analysis.predict) from the configuration and the processed history; the
energy budget's decision (ENERGY_BUDGET_KWH); each training's duration alert limit (DURATION_ALERT_FACTOR) and the
watch that raises it.

What the budget sums, per planned run x its repetitions: the upper end of the energy's 95 % prediction interval; where
that interval is unbounded (too few calibration runs), the 80 % interval's upper end; for the labelled prior (too
little history; it has no interval) its point. Planned runs without any prediction are left out of the sum and named.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from ect.errors import EctError

log = logging.getLogger(__name__)

BUDGET_LEVEL = "0.95"
FALLBACK_LEVEL = "0.8"
# What a training task does besides the measured training window the prediction is of: the interpreter's and
# Keras' start-up, the dataset's scan; the idle baseline and the cool-down are added from their settings.
STARTUP_ALLOWANCE_S = 120.0


def text_table(header: list[str], rows: list[list]) -> str:
    """A terminal table: numbers to 4 significant digits, missing values as "-", columns aligned."""
    def cell(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    cells = [header] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


@dataclass(frozen=True)
class History:
    """What a prediction is made from: the environment's processed runs and what lies beside them."""

    processed: Path | None
    runs: object  # pandas.DataFrame of processed runs (all environments)
    raw: Path | None
    power_limits: dict
    cpu_tdp_W: float
    prior: object  # ect.analysis.predict.PriorInputs


def history_of(cfg, environment: str, runs, processed: Path | None) -> History:
    """The prior's inputs and the GPUs' power limits for `runs` (processed rows) read from `processed`, whose raw
    folder and interim samples lie beside it (none: no history)."""
    from ect.analysis import predict as prediction
    from ect.sensors.estimate import DEFAULT_CPU_TDP_W

    raw, limits = None, {}
    if processed is not None:
        raw, samples = prediction.raw_and_samples(processed)
        limits = prediction.power_limits(samples, environment)
    cpu_tdp_W = cfg.resources.cpu_tdp_w or DEFAULT_CPU_TDP_W
    prior = prediction.prior_inputs(runs, environment, limits, cpu_tdp_W, cfg.path("DATASET_DIR"))
    return History(processed, runs, raw, limits, cpu_tdp_W, prior)


def forecast(cfg, environment: str, history: History, architectures: list[str] | None = None,
             epochs: int | None = None, count_flops: bool = True) -> dict:
    """ect.analysis.predict.predict's result for the runs a campaign of the environment plans (its ARCHITECTURES, or
    `architectures`, on its backends, at most `epochs` epochs). An architecture no run of the history has measured
    has its forward FLOPs counted on the Keras model when count_flops (imports the backend: seconds), else it gets no
    prior."""
    from ect.analysis import predict as prediction

    plans = prediction.planned_runs(cfg, environment, architectures, epochs)
    prior = history.prior
    unknown = sorted({p.architecture for p in plans} - set(prior.gflops))
    if unknown and count_flops:
        prior = replace(prior, gflops={**prior.gflops, **counted_gflops(cfg, plans[0].backend, unknown)})
    return prediction.predict(history.runs, cfg.environment(environment), plans, prior)


def backtest_of(environment: str, history: History, planned_epochs: int) -> dict:
    """ect.analysis.predict.backtest's result on the history (`ect predict --backtest`, the environment report's
    table); NothingToDo with too little history."""
    from ect.analysis import predict as prediction

    mine = history.runs[history.runs["environment"] == environment]
    details = prediction.run_details(history.raw, mine) if history.raw is not None and history.raw.is_dir() else {}
    return prediction.backtest(history.runs, environment, history.prior, planned_epochs, details,
                               history.power_limits, history.cpu_tdp_W)


def counted_gflops(cfg, backend: str, architectures: list[str]) -> dict[str, float]:
    """Forward GFLOPs of one image at IMAGE_SIZE, counted on each architecture built with Keras (no weights), for the
    prior of architectures no run of the history has measured; an architecture that cannot be built is left out."""
    from ect.architectures import get_architecture
    from ect.backends import select_backend

    log.info(f"counting the forward FLOPs of {', '.join(architectures)} on the model (no run of the history has "
             f"them; imports Keras with {backend})")
    counted = {}
    try:
        select_backend(backend)
        from ect.models.build import build_model, make_optimizer
        from ect.models.flops import forward_flops
    except (EctError, ImportError) as error:
        log.warning(f"cannot count FLOPs: {error}")
        return counted
    for name in architectures:
        try:
            model, _ = build_model(get_architecture(name), cfg.experiment.image_size, "none",
                                   make_optimizer("adam", 1e-3, 0.0))
            counted[name] = forward_flops(model, cfg.experiment.image_size) / 1e9
        except EctError as error:
            log.warning(f"cannot count the FLOPs of {name}: {error}")
    return counted


def forecast_text(result: dict) -> str:
    """The prediction as people read it: the table (3-4 significant digits, units) and the lines under it."""
    from ect.analysis.predict import prediction_table

    header, rows, lines = prediction_table(result)
    return "\n".join([text_table(header, rows), *lines])


# ---------------------------------------------------------------------------------------------------------------
# The energy budget


UPPER_END_NAMES = {BUDGET_LEVEL: "95 % upper end", FALLBACK_LEVEL: "80 % upper end"}


def _interval_upper(entry: dict, quantity: str) -> tuple[float | None, str | None]:
    """(the upper end of a predicted run's `quantity` (energy_kWh, duration_s) at BUDGET_LEVEL, else at FALLBACK_LEVEL
    where that interval is unbounded, which end it is); (None, None) without a bounded interval."""
    for level, name in UPPER_END_NAMES.items():
        bounds = (entry.get("intervals") or {}).get(level, {}).get(quantity)
        if bounds is not None:
            return bounds[1], name
    return None, None


def _upper_end(entry: dict) -> tuple[float | None, str | None]:
    """(a predicted run's upper energy in kWh, which figure it is) as the budget counts it (the module's docstring)."""
    if entry.get("energy_kWh") is None:
        return None, None
    if entry.get("kind") == "prior":
        return entry["energy_kWh"], "prior point"
    upper, name = _interval_upper(entry, "energy_kWh")
    return (upper, name) if upper is not None else (entry["energy_kWh"], "point (no bounded interval)")


@dataclass(frozen=True)
class Budget:
    """A DAG run's energy budget against its predicted upper bound."""

    budget_kWh: float | None
    upper_kWh: float | None  # the sum (None: nothing predicted)
    source: str  # what was summed, and from what
    unpredicted: tuple[str, ...]  # planned architecture · backend without a prediction (not in the sum)
    exceeded: bool
    approval: bool  # BUDGET_APPROVAL: an exceeded budget waits for a person instead of failing
    message: str

    def to_dict(self) -> dict:
        return {"budget_kWh": self.budget_kWh, "upper_kWh": self.upper_kWh, "source": self.source,
                "unpredicted": list(self.unpredicted), "exceeded": self.exceeded, "approval": self.approval,
                "approval_needed": self.exceeded and self.approval, "message": self.message}


def budget_check(result: dict | None, budget_kWh: float | None, approval: bool = False,
                 origin: str = "ENERGY_BUDGET_KWH") -> Budget:
    """The planned runs' predicted upper bound (the module's docstring: what is summed) against `budget_kWh`;
    `result` is predict's (None: no prediction could be made); `origin` names where the budget was set."""
    parts, counts, unpredicted = 0.0, {}, []
    for entry in (result or {}).get("predictions", []):
        upper, figure = _upper_end(entry)
        if upper is None:
            unpredicted.append(f"{entry['architecture']} · {entry['backend']}")
            continue
        parts += upper * entry["repetitions"]
        counts[figure] = counts.get(figure, 0) + entry["repetitions"]
    upper_kWh = parts if counts else None
    if result is None:
        source = "no prediction"
    else:
        history = result["history"]
        source = (", ".join(f"{figure} of {n} run(s)" for figure, n in counts.items()) or "nothing predicted") + \
            (f"; from {history['runs']} measured run(s) of environment {result['environment']}, "
             f"{history['calibration_runs']} calibration run(s)" if result["status"] == "calibrated" else
             f"; {result['reason'] or 'the prior'}")
    left_out = f"; without a prediction, not counted: {', '.join(unpredicted)}" if unpredicted else ""
    if budget_kWh is None:
        return Budget(None, upper_kWh, source, tuple(unpredicted), False, approval,
                      "no energy budget (ENERGY_BUDGET_KWH empty)")
    if upper_kWh is None:
        why = (result or {}).get("reason") or "no prediction could be made"
        return Budget(budget_kWh, None, source, tuple(unpredicted), False, approval,
                      f"energy budget {budget_kWh:.4g} kWh ({origin}) not checked: none of the planned runs "
                      f"({', '.join(unpredicted) or 'none'}) has a prediction ({why})")
    exceeded = upper_kWh > budget_kWh
    verdict = "exceeds" if exceeded else "is within"
    message = (f"the planned runs' predicted upper bound {upper_kWh:.4g} kWh {verdict} the energy budget "
               f"{budget_kWh:.4g} kWh ({origin}); summed: {source}{left_out}")
    return Budget(budget_kWh, upper_kWh, source, tuple(unpredicted), exceeded, approval, message)


# ---------------------------------------------------------------------------------------------------------------
# The duration alert


def run_key(architecture: str, backend: str) -> str:
    return f"{architecture}/{backend}"


def duration_limits(result: dict | None, factor: float, allowance_s: float) -> dict[str, float]:
    """{architecture/backend: seconds} after which a training task alerts: factor x the predicted duration's 95 %
    upper end (80 % where the 95 % interval is unbounded) + allowance_s (start-up, idle baseline, cool-down). None for
    a prior (a guessed throughput, no interval) or without a prediction; {} when factor is 0 (off)."""
    limits = {}
    if not factor or result is None:
        return limits
    for entry in result["predictions"]:
        if entry.get("kind") in (None, "prior"):
            continue
        upper_s, _ = _interval_upper(entry, "duration_s")
        if upper_s is not None:
            limits[run_key(entry["architecture"], entry["backend"])] = factor * upper_s + allowance_s
    return limits


class DurationWatch:
    """Calls `alert(message)` once (from a timer thread) when the block it guards is still running `limit_s` seconds
    after it began; nothing when limit_s is None."""

    def __init__(self, limit_s: float | None, label: str, alert: Callable[[str], None]):
        self.limit_s, self.label, self.alert = limit_s, label, alert
        self._timer: threading.Timer | None = None
        self.fired = False

    def _fire(self) -> None:
        self.fired = True
        message = (f"{self.label} is still running after {self.limit_s / 60:.3g} min, its duration alert limit "
                   "(DURATION_ALERT_FACTOR x the predicted duration's upper end + start-up, idle baseline and "
                   "cool-down)")
        try:
            self.alert(message)
        except Exception:  # a broken callback must not end the training it watches
            log.exception(f"the duration alert of {self.label} failed")

    def __enter__(self) -> DurationWatch:
        if self.limit_s is not None:
            log.info(f"{self.label}: duration alert after {self.limit_s / 60:.3g} min")
            self._timer = threading.Timer(self.limit_s, self._fire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
