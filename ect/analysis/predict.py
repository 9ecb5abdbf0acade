"""A planned run's energy and duration before it trains, from the environment's own history, with split-conformal
prediction intervals; and a backtest that scores this predictor against the field's rules, one campaign left out at a
time.

The model (per environment, fit on its processed runs):
- per (architecture, backend) with history: the median energy per trained epoch (total_energy_J / trained_epochs) x
  the epochs early stopping is expected to run, the median of the group's trained epochs clipped at the plan's
  maximum (INITIAL_EPOCHS + FT_EPOCHS); the same for the duration. Runs without trained_epochs: the group's median per
  run;
- an architecture or backend without history: a log-linear regression, across the environment's runs, of log energy
  on log(forward GFLOPs x images per epoch x epochs) (numpy least squares), the epochs from the whole environment's
  trained epochs;
- intervals: split conformal. The environment's campaigns, oldest first, alternate between the fit part and the
  calibration part (by run where there is one campaign); the model is fit on the fit part and each calibration run's
  score is |log(actual / predicted)|. At level 1 - alpha the interval is the point x exp(+/- q), q the
  ceil((n + 1)(1 - alpha))-th smallest of the n scores: it covers a new run with probability >= 1 - alpha when runs
  are exchangeable (same setup, relative errors alike across architectures), unbounded where n is too small for the
  level (n < 19 at 95 %).
With fewer than MIN_CALIBRATION_RUNS scores there is no calibrated prediction: a physical prior instead, labelled
PRIOR_LABEL, from the planned FLOPs (3 x forward GFLOPs x images per epoch x planned epochs, forward + backward) at an
assumed throughput, times the GPUs' power limit (else the CPU's TDP).

The backtest (leave one campaign out) scores, on each held-out run: ect's predictor as above (from the other
campaigns), CarbonTracker's rule (the run's first epoch's energy x planned epochs), a STEP-style projection (the
run's set-up epochs as measured + its steady energy per epoch x the remaining planned epochs), a PRE-style ridge
regression of log energy per epoch on log GFLOPs, log images per epoch and the backend (x planned epochs), and TDP x
time (power limits x the measured duration). Where history.csv has no per-epoch energy, CarbonTracker's and STEP's
rules fall back to named approximations (energy per epoch of the other runs; the processed steady energy per epoch).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ect.analysis.stats import BACKEND, shows_backend, with_backend
from ect.energy import JOULES_PER_KWH, carbon_factors
from ect.errors import ConfigError, NothingToDo
from ect.projection import History
from ect.raw.atomic import read_text
from ect.raw.layout import HISTORY_FILE, RunKey
from ect.raw.manifest import read_manifest
from ect.steady import PHASES, epochs_of, read_history, steady_state

log = logging.getLogger(__name__)

LEVELS = (0.8, 0.95)
MIN_CALIBRATION_RUNS = 5
PRIOR_LABEL = "prior (not measured, no interval calibration)"
TRAINING_FLOPS_PER_FORWARD = 3  # a training step: forward pass + backward pass (about 2 x the forward pass)
ASSUMED_GPU_FLOPS_PER_S = 10e12  # the prior's sustained throughput: a guess, not a measurement
ASSUMED_CPU_FLOPS_PER_S = 50e9
PREDICTORS = ("ect", "carbontracker", "step", "pre", "tdp_time")
PREDICTOR_NAMES = {"ect": "ect (history + split conformal)", "carbontracker": "CarbonTracker rule",
                   "step": "STEP-style projection", "pre": "PRE-style ridge regression", "tdp_time": "TDP x time"}
RIDGE_PENALTY = 1.0  # on standardised features


@dataclass(frozen=True)
class Planned:
    """One planned run of a campaign: `repetitions` identical runs of an architecture on a backend."""

    architecture: str
    backend: str
    repetitions: int
    max_epochs: int  # INITIAL_EPOCHS + FT_EPOCHS: early stopping may end it sooner


def planned_runs(cfg, environment: str, architectures: list[str] | None = None,
                 epochs: int | None = None) -> list[Planned]:
    """The runs a campaign of the environment plans (its architectures, or `architectures`, on each of its backends),
    with at most `epochs` epochs (default INITIAL_EPOCHS + FT_EPOCHS). ConfigError names an unknown environment or
    architecture."""
    from ect.architectures import ARCHITECTURES

    cfg.environment(environment)
    names = list(architectures or cfg.experiment.architectures)
    unknown = [name for name in names if name not in ARCHITECTURES]
    if unknown:
        raise ConfigError(f"unknown architecture(s) {', '.join(map(repr, unknown))} in --architectures: expected "
                          f"{', '.join(ARCHITECTURES)}")
    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs {epochs}: expected an integer >= 1")
    max_epochs = epochs or cfg.experiment.initial_epochs + cfg.experiment.ft_epochs
    return [Planned(name, backend, cfg.experiment.repetitions, max_epochs)
            for name in names for backend in cfg.backends(environment)]


def usable_runs(runs: pd.DataFrame, environment: str) -> pd.DataFrame:
    """The environment's runs with a positive energy and duration, oldest first, with the working columns `epochs`
    (trained_epochs, NaN when unknown), `images_per_epoch` and `work` (forward GFLOPs x images seen)."""
    if "environment" not in runs or runs.empty:
        return pd.DataFrame(columns=["environment", "architecture", BACKEND, "campaign_id", "run_id",
                                     "total_energy_J", "duration_s", "trained_epochs", "gflops", "images_seen",
                                     "epochs", "images_per_epoch", "work"])
    mine = with_backend(runs[runs["environment"] == environment]).copy()
    for column in ("total_energy_J", "duration_s", "trained_epochs", "gflops", "images_seen"):
        mine[column] = pd.to_numeric(mine[column], errors="coerce") if column in mine else np.nan
    mine = mine[(mine["total_energy_J"] > 0) & (mine["duration_s"] > 0)]
    epochs = mine["trained_epochs"].where(mine["trained_epochs"] > 0)
    mine["epochs"] = epochs
    mine["images_per_epoch"] = mine["images_seen"].where(mine["images_seen"] > 0) / epochs
    mine["work"] = mine["gflops"].where(mine["gflops"] > 0) * mine["images_seen"].where(mine["images_seen"] > 0)
    if "campaign_id" not in mine:
        mine["campaign_id"] = mine.get("run_id", pd.Series(range(len(mine)), index=mine.index)).astype(str)
    order = ["start", "run_id"] if "start" in mine and "run_id" in mine else ["campaign_id"]
    if "start" in mine:
        mine["start"] = pd.to_datetime(mine["start"], utc=True)
    return mine.sort_values(order, kind="stable")


def projection_history(runs: pd.DataFrame, environment: str, architecture: str, backend: str,
                       source: str = "") -> History | None:
    """Early stopping's distribution for a running training's projection (ect.projection): the trained epochs of the
    environment's runs of the architecture on the backend, and each phase's median steady energy per epoch; None
    where no such run has trained_epochs."""
    mine = usable_runs(runs, environment)
    mine = mine[(mine["architecture"] == architecture) & (mine[BACKEND] == backend)]
    epochs = mine["epochs"].dropna()
    if epochs.empty:
        return None
    rates = {}
    for phase in PHASES:
        column = f"{phase}_steady_energy_per_epoch_J"
        values = pd.to_numeric(mine[column], errors="coerce") if column in mine else pd.Series(dtype=float)
        values = values[values > 0]
        if len(values):
            rates[phase] = float(values.median())
    return History(tuple(float(e) for e in epochs), rates,
                   f"{source}, {architecture} on {backend}" if source else f"{architecture} on {backend}")


# ---------------------------------------------------------------------------------------------------------------
# The model


@dataclass(frozen=True)
class Group:
    """One (architecture, backend)'s history."""

    runs: int
    energy_J: float  # median per run
    duration_s: float
    energy_per_epoch_J: float | None  # median of total_energy_J / trained_epochs; None where no run has epochs
    duration_per_epoch_s: float | None
    epochs: tuple[float, ...]  # the trained epochs of its runs (early stopping's distribution)


@dataclass(frozen=True)
class LogLinear:
    """log(y) = intercept + slope x log(forward GFLOPs x images seen), across the environment's runs."""

    intercept: float
    slope: float
    runs: int

    def __call__(self, work: float) -> float:
        return math.exp(self.intercept + self.slope * math.log(work))


@dataclass(frozen=True)
class Model:
    groups: dict[tuple[str, str], Group]
    epochs: tuple[float, ...]  # every run's trained epochs (for architectures without history)
    energy_fit: LogLinear | None
    duration_fit: LogLinear | None
    gflops: dict[str, float]  # forward GFLOPs of one image per architecture
    images_per_epoch: float | None
    runs: int


@dataclass(frozen=True)
class Point:
    energy_J: float
    duration_s: float
    epochs: float | None
    kind: str  # "per-epoch", "per-run median", "log-linear"


def _log_linear(x: pd.Series, y: pd.Series) -> LogLinear | None:
    keep = x.notna() & y.notna() & (x > 0) & (y > 0)
    lx, ly = np.log(x[keep].to_numpy(float)), np.log(y[keep].to_numpy(float))
    if len(lx) < 3 or np.ptp(lx) <= 0:
        return None
    (intercept, slope), *_ = np.linalg.lstsq(np.column_stack([np.ones_like(lx), lx]), ly, rcond=None)
    return LogLinear(float(intercept), float(slope), int(len(lx)))


def _median(values) -> float | None:
    values = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.median(values)) if values else None


def fit_model(history: pd.DataFrame) -> Model:
    """The model of a usable_runs frame (the module's docstring)."""
    groups = {}
    for (architecture, backend), runs in history.groupby(["architecture", BACKEND], sort=True):
        with_epochs = runs[runs["epochs"].notna()]
        groups[(str(architecture), str(backend))] = Group(
            runs=len(runs), energy_J=float(runs["total_energy_J"].median()),
            duration_s=float(runs["duration_s"].median()),
            energy_per_epoch_J=_median(with_epochs["total_energy_J"] / with_epochs["epochs"]),
            duration_per_epoch_s=_median(with_epochs["duration_s"] / with_epochs["epochs"]),
            epochs=tuple(float(e) for e in with_epochs["epochs"]))
    gflops = {str(a): float(g) for a, g in history[history["gflops"] > 0].groupby("architecture")["gflops"].median()
              .items()}
    return Model(groups, tuple(float(e) for e in history["epochs"].dropna()),
                 _log_linear(history["work"], history["total_energy_J"]),
                 _log_linear(history["work"], history["duration_s"]), gflops,
                 _median(history["images_per_epoch"]), len(history))


def expected_epochs(epochs, max_epochs: float | None) -> float | None:
    """The epochs a run is expected to train: the median of the history's trained epochs, each clipped at the plan's
    maximum (early stopping never trains more than planned)."""
    if not len(epochs):
        return None
    values = np.asarray(epochs, float)
    return float(np.median(values if max_epochs is None else np.minimum(values, max_epochs)))


def point(model: Model, architecture: str, backend: str, max_epochs: float | None = None,
          gflops: float | None = None) -> Point | None:
    """The model's prediction for one planned run, or None where it has nothing to go on."""
    group = model.groups.get((architecture, backend))
    if group is not None and group.energy_per_epoch_J is not None:
        epochs = expected_epochs(group.epochs, max_epochs)
        return Point(group.energy_per_epoch_J * epochs, group.duration_per_epoch_s * epochs, epochs, "per-epoch")
    if group is not None:
        return Point(group.energy_J, group.duration_s, None, "per-run median")
    gflops = gflops or model.gflops.get(architecture)
    epochs = expected_epochs(model.epochs, max_epochs)
    if model.energy_fit is None or model.duration_fit is None or not gflops or not model.images_per_epoch \
            or not epochs:
        return None
    work = gflops * model.images_per_epoch * epochs
    return Point(model.energy_fit(work), model.duration_fit(work), epochs, "log-linear")


# ---------------------------------------------------------------------------------------------------------------
# Split conformal


def conformal_quantile(scores, level: float) -> float:
    """The ceil((n + 1) x level)-th smallest score (split conformal's finite-sample quantile); inf where that rank
    exceeds n (too few scores for the level)."""
    scores = np.sort(np.asarray(scores, float))
    rank = math.ceil((len(scores) + 1) * level - 1e-9)
    return math.inf if rank > len(scores) or rank < 1 else float(scores[rank - 1])


def calibration_split(history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit part, calibration part): the campaigns, oldest first, alternately; by run where there is one campaign."""
    if history.empty:
        return history, history
    campaigns = list(dict.fromkeys(history["campaign_id"]))  # usable_runs' order: oldest first
    if len(campaigns) >= 2:
        calibration = set(campaigns[1::2])
        chosen = history["campaign_id"].isin(calibration).to_numpy()
    else:
        chosen = np.arange(len(history)) % 2 == 1
    return history[~chosen], history[chosen]


@dataclass(frozen=True)
class Scores:
    """Split-conformal scores, |log(actual / predicted)|, of one kind of prediction on the calibration part."""

    energy: tuple[float, ...] = ()
    duration: tuple[float, ...] = ()

    @property
    def runs(self) -> int:
        return len(self.energy)

    @property
    def enough(self) -> bool:
        return self.runs >= MIN_CALIBRATION_RUNS


def _scores(pairs: list[tuple[pd.Series, Point]]) -> Scores:
    return Scores(tuple(abs(math.log(run.total_energy_J / p.energy_J)) for run, p in pairs),
                  tuple(abs(math.log(run.duration_s / p.duration_s)) for run, p in pairs))


@dataclass(frozen=True)
class Calibrated:
    """The model fit on the fit part and two sets of scores: "history" (a run whose architecture and backend have
    history: per-epoch or per-run median) and "log-linear" (a new architecture: each calibration run predicted by the
    regression fit on the other architectures' runs)."""

    model: Model
    history: Scores
    log_linear: Scores
    fit_runs: int

    def scores(self, kind: str) -> Scores:
        return self.log_linear if kind == "log-linear" else self.history


def calibrate(history: pd.DataFrame) -> Calibrated:
    """The model fit on the fit part, scored on the calibration part (calibration_split)."""
    fit, calibration = calibration_split(history)
    model = fit_model(fit)
    known, new = [], []
    for run in calibration.itertuples():
        if (run.architecture, getattr(run, BACKEND)) in model.groups:
            known.append((run, point(model, run.architecture, getattr(run, BACKEND))))
    for architecture, runs in calibration.groupby("architecture", sort=True):
        others = fit[fit["architecture"] != architecture]
        without = Model({}, tuple(others["epochs"].dropna()), _log_linear(others["work"], others["total_energy_J"]),
                        _log_linear(others["work"], others["duration_s"]), {}, _median(others["images_per_epoch"]),
                        len(others))
        for run in runs.itertuples():
            predicted = point(without, run.architecture, getattr(run, BACKEND),
                              gflops=run.gflops if run.gflops > 0 else None)
            if predicted is not None:
                new.append((run, predicted))
    return Calibrated(model, _scores(known), _scores(new), len(fit))


def interval(value: float, score: float) -> tuple[float, float] | None:
    """value x exp(-/+ score); None for an unbounded interval."""
    return None if math.isinf(score) else (value * math.exp(-score), value * math.exp(score))


# ---------------------------------------------------------------------------------------------------------------
# The prior


@dataclass(frozen=True)
class PriorInputs:
    """What the physical prior knows: forward GFLOPs per architecture, images per epoch, the power drawn and its
    source."""

    gflops: dict[str, float]
    images_per_epoch: float | None
    power_W: float
    power_source: str
    on_gpu: bool  # power is the GPUs' limit (else a CPU TDP estimate): the assumed throughput follows


def prior_inputs(runs: pd.DataFrame, environment: str, limits: dict[tuple[str, str], float], cpu_tdp_W: float,
                 dataset_dir: Path | None = None) -> PriorInputs:
    """The prior's inputs: GFLOPs from the history's metrics (the environment's runs first, then any environment's),
    images per epoch from the environment's runs (else the images in `dataset_dir`, else any environment's runs),
    power from the median of the environment's runs' GPU power limits (`limits`: power_limits) when known, else the
    CPU's TDP."""
    from ect.data.folder import IMAGE_EXTENSIONS

    mine = usable_runs(runs, environment)
    gflops = {}
    if "gflops" in runs and "architecture" in runs:
        for frame in (runs, mine):  # any environment's, then the environment's own
            known = frame[pd.to_numeric(frame["gflops"], errors="coerce") > 0]
            gflops.update({str(a): float(g) for a, g in
                           pd.to_numeric(known["gflops"]).groupby(known["architecture"]).median().items()})
    images = _median(mine["images_per_epoch"])
    if images is None and dataset_dir is not None and Path(dataset_dir).is_dir():
        images = float(sum(1 for f in Path(dataset_dir).rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS)) or None
    if images is None and {"images_seen", "trained_epochs"} <= set(runs.columns):
        seen, epochs = (pd.to_numeric(runs[c], errors="coerce") for c in ("images_seen", "trained_epochs"))
        images = _median((seen / epochs.where(epochs > 0)).dropna())
    power_limit_W = _median(limits.values())
    if power_limit_W:
        return PriorInputs(gflops, images, power_limit_W, f"GPU power limit {power_limit_W:.4g} W (from the "
                                                          "environment's samples)", True)
    return PriorInputs(gflops, images, cpu_tdp_W, f"CPU TDP estimate {cpu_tdp_W:.4g} W (no GPU power limit known)",
                       False)


def prior_point(plan: Planned, inputs: PriorInputs) -> tuple[Point | None, str]:
    """(the prior's point, how it was made) for a planned run; no point where the FLOPs are unknown."""
    gflops = inputs.gflops.get(plan.architecture)
    if not gflops or not inputs.images_per_epoch:
        missing = "forward GFLOPs of " + plan.architecture if not gflops else "images per epoch"
        return None, f"no prior: {missing} unknown (no run in the history has them)"
    flops = TRAINING_FLOPS_PER_FORWARD * gflops * 1e9 * inputs.images_per_epoch * plan.max_epochs
    throughput = ASSUMED_GPU_FLOPS_PER_S if inputs.on_gpu else ASSUMED_CPU_FLOPS_PER_S
    duration = flops / throughput
    how = (f"{PRIOR_LABEL}: {flops:.4g} FLOPs ({TRAINING_FLOPS_PER_FORWARD} x {gflops:.4g} GFLOPs x "
           f"{inputs.images_per_epoch:.4g} images x {plan.max_epochs} planned epochs) at an assumed "
           f"{throughput:.4g} FLOP/s = {duration:.4g} s, x {inputs.power_source}")
    return Point(inputs.power_W * duration, duration, float(plan.max_epochs), "prior"), how


# ---------------------------------------------------------------------------------------------------------------
# Predicting a campaign


def _figures(energy_J: float, intensity: float, pue: float) -> dict:
    kWh = energy_J / JOULES_PER_KWH
    return {"energy_J": energy_J, "energy_kWh": kWh, "emissions_gCO2e": kWh * pue * intensity}


def _intervals(predicted: Point, scores: Scores, levels, intensity: float, pue: float) -> dict:
    out = {}
    for level in levels:
        q_energy = conformal_quantile(scores.energy, level)
        q_duration = conformal_quantile(scores.duration, level)
        energy, duration = interval(predicted.energy_J, q_energy), interval(predicted.duration_s, q_duration)
        entry = {"energy_J": None, "energy_kWh": None, "emissions_gCO2e": None,
                 "duration_s": None if duration is None else list(duration),
                 "log_score_energy": None if math.isinf(q_energy) else q_energy,
                 "log_score_duration": None if math.isinf(q_duration) else q_duration}
        if energy is not None:
            low, high = (_figures(e, intensity, pue) for e in energy)
            entry.update({key: [low[key], high[key]] for key in low})
        if energy is None or duration is None:
            entry["unbounded"] = (f"{scores.runs} calibration run(s) are too few for a "
                                  f"{100 * level:g} % interval (needs at least "
                                  f"{math.ceil(level / (1 - level) - 1e-9)})")
        out[f"{level:g}"] = entry
    return out


def predict(runs: pd.DataFrame, environment, plans: list[Planned], prior: PriorInputs,
            levels=LEVELS) -> dict:
    """Each planned run's predicted energy (J, kWh, gCO2e) and duration with their intervals at `levels`, from the
    environment's history in `runs` (processed rows); the physical prior where the history is too small. `environment`
    is the config's Environment (its carbon intensity and PUE)."""
    intensity, pue, carbon_source = carbon_factors(environment)
    history = usable_runs(runs, environment.name)
    calibrated = calibrate(history)
    reason = None
    if not calibrated.history.enough:
        reason = (f"too little history: {len(history)} usable run(s) of environment {environment.name!r} give "
                  f"{calibrated.history.runs} calibration run(s), intervals need at least {MIN_CALIBRATION_RUNS}; "
                  f"showing the {PRIOR_LABEL} instead")
    predictions = []
    for plan in plans:
        predicted, scores, notes = None if reason else ect_point(calibrated, plan, prior), None, []
        if predicted is not None:
            scores = calibrated.scores(predicted.kind)
        else:
            predicted, how = prior_point(plan, prior)
            if not reason:
                how = (f"no history of {plan.architecture} on {plan.backend}, and the log-linear regression has "
                       f"{calibrated.log_linear.runs} calibration run(s) (needs {MIN_CALIBRATION_RUNS}) or no FLOPs "
                       f"of it: {how}")
            notes.append(how)
        group = calibrated.model.groups.get((plan.architecture, plan.backend))
        if predicted is not None and predicted.kind == "per-epoch" and plan.max_epochs > max(group.epochs) \
                and len(set(group.epochs)) == 1:
            notes.append(f"the plan allows {plan.max_epochs} epochs, every run of the history trained "
                         f"{max(group.epochs):g}: predicted at {max(group.epochs):g} (if the plan changed, it is low)")
        if predicted is not None and predicted.kind == "log-linear":
            gflops = prior.gflops.get(plan.architecture) or calibrated.model.gflops.get(plan.architecture, 0.0)
            notes.append(f"no history of {plan.architecture} on {plan.backend}: log-linear regression on forward "
                         f"GFLOPs ({gflops:.4g}) x images x epochs across the environment's architectures, its "
                         "interval calibrated on runs each predicted from the other architectures")
        entry = {"architecture": plan.architecture, "backend": plan.backend, "repetitions": plan.repetitions,
                 "max_epochs": plan.max_epochs, "kind": None, "label": None, "epochs": None,
                 "energy_J": None, "energy_kWh": None, "emissions_gCO2e": None, "duration_s": None,
                 "intervals": {}, "fit_runs": 0 if group is None else group.runs,
                 "calibration_runs": 0 if scores is None else scores.runs, "notes": notes}
        if predicted is not None:
            entry.update({"kind": predicted.kind, "epochs": predicted.epochs, "duration_s": predicted.duration_s,
                          **_figures(predicted.energy_J, intensity, pue),
                          "label": PRIOR_LABEL if scores is None else
                          f"measured history, {predicted.kind} model, split conformal on {scores.runs} calibration "
                          "run(s)",
                          "intervals": {} if scores is None else _intervals(predicted, scores, levels, intensity, pue)})
        predictions.append(entry)
    known = [p for p in predictions if p["energy_J"] is not None]
    total_J = sum(p["energy_J"] * p["repetitions"] for p in known)
    return {
        "environment": environment.name, "levels": list(levels), "status": "prior" if reason else "calibrated",
        "reason": reason, "carbon_intensity_gCO2e_per_kWh": intensity, "pue": pue,
        "carbon_intensity_source": carbon_source,
        "history": {"runs": len(history), "campaigns": int(history["campaign_id"].nunique()),
                    "fit_runs": calibrated.fit_runs, "calibration_runs": calibrated.history.runs,
                    "log_linear_calibration_runs": calibrated.log_linear.runs,
                    "min_calibration_runs": MIN_CALIBRATION_RUNS},
        "prior": {"label": PRIOR_LABEL, "power_W": prior.power_W, "power_source": prior.power_source,
                  "assumed_flops_per_s": ASSUMED_GPU_FLOPS_PER_S if prior.on_gpu else ASSUMED_CPU_FLOPS_PER_S,
                  "training_flops_per_forward": TRAINING_FLOPS_PER_FORWARD,
                  "images_per_epoch": prior.images_per_epoch},
        "predictions": predictions,
        "campaign": {"runs": sum(p["repetitions"] for p in known), **_figures(total_J, intensity, pue),
                     "duration_s": sum(p["duration_s"] * p["repetitions"] for p in known),
                     "all_prior": bool(known) and all(p["kind"] == "prior" for p in known),
                     "note": "point estimates summed; no interval for the sum (the runs' errors are correlated)"
                             + ("" if len(known) == len(predictions) else
                                f"; {len(predictions) - len(known)} planned architecture(s) without a prediction "
                                "left out")},
    }


def ect_point(calibrated: Calibrated, plan: Planned, prior: PriorInputs) -> Point | None:
    """ect's calibrated point for a planned run: from its group's history, else the log-linear regression where that
    has enough calibration runs; None: the prior's turn."""
    predicted = point(calibrated.model, plan.architecture, plan.backend, plan.max_epochs,
                      prior.gflops.get(plan.architecture))
    if predicted is None or not calibrated.scores(predicted.kind).enough:
        return None
    return predicted


# ---------------------------------------------------------------------------------------------------------------
# Backtest


@dataclass(frozen=True)
class RunDetails:
    """What a run's folder adds to its processed row for the online rules (None: not recorded)."""

    planned_epochs: int | None = None  # INITIAL_EPOCHS + FT_EPOCHS of the run's own configuration
    first_epoch_J: float | None = None  # history.csv's first epoch
    setup_J: float | None = None  # the epochs outside the steady state, as measured
    setup_epochs: int | None = None
    steady_per_epoch_J: float | None = None


def history_rows(raw_dir: Path, run) -> list[dict]:
    """The history.csv rows of a processed run's folder under raw_dir (`run` has environment, architecture, run_id);
    [] where it is missing or unreadable (a symbolic link, not text)."""
    path = RunKey(str(run.environment), str(run.architecture), str(run.run_id)).folder(raw_dir) / HISTORY_FILE
    try:
        return read_history(read_text(path)) if path.is_file() else []
    except (OSError, UnicodeDecodeError):
        return []


def run_details(raw_dir: Path, runs: pd.DataFrame) -> dict[tuple[str, str], RunDetails]:
    """Per (architecture, run id), what its folder under raw_dir says: planned epochs (the manifest's configuration),
    the first epoch's energy and the steady state (history.csv's per-epoch energy). Runs without a folder are left out;
    an unreadable history.csv (a symbolic link, not text) counts as none."""
    details = {}
    for run in runs.itertuples():
        folder = RunKey(str(run.environment), str(run.architecture), str(run.run_id)).folder(raw_dir)
        if not folder.is_dir():
            continue
        planned = None
        manifest = read_manifest(folder)
        experiment = (manifest.config or {}).get("experiment") if manifest is not None else None
        if isinstance(experiment, dict):
            try:
                planned = int(experiment["INITIAL_EPOCHS"]) + int(experiment["FT_EPOCHS"])
            except (KeyError, TypeError, ValueError):
                planned = None
        first = setup = steady_per_epoch = setup_epochs = None
        rows = history_rows(raw_dir, run)
        if rows:
            epochs = [e for e in epochs_of(rows) if e.energy_J is not None]
            first = epochs[0].energy_J if epochs else None
            steady = steady_state(rows).overall
            if steady is not None and epochs:
                outside = [e for e in epochs if e.number not in steady.epochs]
                setup, setup_epochs = sum(e.energy_J for e in outside), len(outside)
                steady_per_epoch = steady.energy_per_epoch_J
        details[(str(run.architecture), str(run.run_id))] = RunDetails(planned, first, setup, setup_epochs,
                                                                       steady_per_epoch)
    return details


def power_limits(samples: Path, environment: str) -> dict[tuple[str, str], float]:
    """Per (architecture, run id) of the environment, its GPUs' power limits added (W), from interim/samples.parquet;
    {} where the samples or the column are missing."""
    import pyarrow.dataset as ds

    if not Path(samples).exists():
        return {}
    dataset = ds.dataset(str(samples), format="parquet")
    names = set(dataset.schema.names)
    if not {"environment", "architecture", "run_id", "gpu_index", "power_limit_W"} <= names:
        return {}
    table = dataset.to_table(columns=["architecture", "run_id", "gpu_index", "power_limit_W"],
                             filter=ds.field("environment") == environment).to_pandas()
    table = table.dropna(subset=["power_limit_W"])
    if table.empty:
        return {}
    per_gpu = table.groupby(["architecture", "run_id", "gpu_index"])["power_limit_W"].max()
    return {(str(architecture), str(run)): float(total)
            for (architecture, run), total in per_gpu.groupby(level=[0, 1]).sum().items() if total > 0}


def _ridge(history: pd.DataFrame):
    """PRE-style: ridge regression of log(energy per epoch) on log GFLOPs, log images per epoch and the backend
    (standardised, intercept free), numpy's least squares; a function of a run's row, or None."""
    rows = history[history["epochs"].notna() & (history["gflops"] > 0) & history["images_per_epoch"].notna()]
    if len(rows) < 2:
        return None
    backends = sorted(set(rows[BACKEND]))[1:]

    def features(frame: pd.DataFrame) -> np.ndarray:
        columns = [np.log(frame["gflops"].to_numpy(float)), np.log(frame["images_per_epoch"].to_numpy(float))]
        columns += [(frame[BACKEND] == b).to_numpy(float) for b in backends]
        return np.column_stack(columns)

    x = features(rows)
    y = np.log((rows["total_energy_J"] / rows["epochs"]).to_numpy(float))
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    penalty = np.sqrt(RIDGE_PENALTY) * np.eye(z.shape[1])
    coefficients, *_ = np.linalg.lstsq(np.vstack([z - z.mean(axis=0), penalty]),
                                       np.concatenate([y - y.mean(), np.zeros(z.shape[1])]), rcond=None)
    intercept = y.mean() - z.mean(axis=0) @ coefficients

    def per_epoch(frame: pd.DataFrame) -> np.ndarray:
        return np.exp(intercept + ((features(frame) - mean) / scale) @ coefficients)
    return per_epoch


@dataclass
class Tally:
    """One predictor's predictions over the held-out runs."""

    predicted: list[float] = field(default_factory=list)
    actual: list[float] = field(default_factory=list)
    covered: dict[str, list[bool]] = field(default_factory=dict)  # level -> per run with a bounded interval
    missing: int = 0
    how: set[str] = field(default_factory=set)

    def add(self, predicted: float | None, actual: float, how: str) -> None:
        if predicted is None or not math.isfinite(predicted) or predicted <= 0:
            self.missing += 1
            return
        self.predicted.append(float(predicted))
        self.actual.append(float(actual))
        self.how.add(how)


def coverage_band(level: float, n: int) -> float:
    """How far an empirical coverage may stray from its nominal level before it is flagged: max(10 points, the
    binomial 95 % band 1.96 sqrt(level (1 - level) / n))."""
    return max(0.10, 1.96 * math.sqrt(level * (1 - level) / n)) if n else math.inf


def summarise(scores: Tally, levels) -> dict:
    """MAPE (%), RMSE (J) and, per level, the empirical coverage, flagged when it strays from nominal."""
    predicted, actual = np.asarray(scores.predicted), np.asarray(scores.actual)
    out = {"runs": len(predicted), "missing": scores.missing, "how": sorted(scores.how),
           "mape_pct": float(np.mean(np.abs(predicted - actual) / actual) * 100) if len(actual) else None,
           "rmse_J": float(np.sqrt(np.mean((predicted - actual) ** 2))) if len(actual) else None,
           "coverage": {}}
    for level in levels:
        hits = scores.covered.get(f"{level:g}")
        if hits is None:
            out["coverage"][f"{level:g}"] = {"status": "no interval"}
            continue
        n = len(hits)
        rate = float(np.mean(hits)) if n else None
        band = coverage_band(level, n)
        flagged = rate is not None and abs(rate - level) > band
        out["coverage"][f"{level:g}"] = {
            "nominal": level, "empirical": rate, "runs": n, "tolerance": None if math.isinf(band) else band,
            "flagged": flagged,
            "status": ("no bounded interval" if not n else
                       f"far from nominal: {100 * rate:.3g} % covered, {100 * level:g} % claimed" if flagged
                       else "within tolerance")}
    return out


def backtest(runs: pd.DataFrame, environment: str, prior: PriorInputs, default_planned_epochs: int,
             details: dict[tuple[str, str], RunDetails] | None = None,
             limits: dict[tuple[str, str], float] | None = None, cpu_tdp_W: float = 85.0, levels=LEVELS) -> dict:
    """Leave one campaign out: each campaign's runs predicted from the other campaigns by every predictor
    (PREDICTORS: the module's docstring), and each predictor's MAPE, RMSE and interval coverage. `details` (run_details)
    and `limits` (power_limits) are per (architecture, run id); a run's planned epochs are its configuration's, else
    `default_planned_epochs`."""
    history = usable_runs(runs, environment)
    campaigns = list(dict.fromkeys(history["campaign_id"]))
    if len(campaigns) < 2:
        raise NothingToDo(f"nothing to backtest: environment {environment!r} has {len(campaigns)} campaign(s) with a "
                          "measured energy; leaving one out needs at least 2")
    details, limits = details or {}, limits or {}
    scores = {name: Tally() for name in PREDICTORS}
    for level in levels:
        scores["ect"].covered[f"{level:g}"] = []
    kinds: dict[str, int] = {}
    for campaign in campaigns:
        held_out = history[history["campaign_id"] == campaign]
        rest = history[history["campaign_id"] != campaign]
        calibrated = calibrate(rest)
        everything = fit_model(rest)
        ridge = _ridge(rest)
        pre = ridge(held_out) if ridge is not None else [None] * len(held_out)
        for run, pre_per_epoch in zip(held_out.itertuples(), pre):
            actual = run.total_energy_J
            backend = getattr(run, BACKEND)
            key = (str(run.architecture), str(run.run_id))
            mine = details.get(key, RunDetails())
            planned = mine.planned_epochs or default_planned_epochs
            # ect, as `ect predict` would have answered before the run
            plan = Planned(run.architecture, backend, 1, planned)
            predicted = ect_point(calibrated, plan, prior) if calibrated.history.enough else None
            if predicted is None:
                predicted, _ = prior_point(plan, prior)
            kind = predicted.kind if predicted else "none"
            kinds[kind] = kinds.get(kind, 0) + 1
            scores["ect"].add(predicted.energy_J if predicted else None, actual, kind)
            if predicted is not None and predicted.kind != "prior":
                for level in levels:
                    quantile = conformal_quantile(calibrated.scores(predicted.kind).energy, level)
                    bounds = interval(predicted.energy_J, quantile)
                    if bounds is not None:
                        scores["ect"].covered[f"{level:g}"].append(bounds[0] <= actual <= bounds[1])
            # CarbonTracker: the first epoch's energy x the planned epochs
            if mine.first_epoch_J is not None:
                scores["carbontracker"].add(mine.first_epoch_J * planned, actual, "first epoch x planned epochs")
            else:
                group = everything.groups.get((run.architecture, backend))
                per_epoch = group.energy_per_epoch_J if group else None
                scores["carbontracker"].add(None if per_epoch is None else per_epoch * planned, actual,
                                            "approximation: median energy per epoch of the other campaigns' runs x "
                                            "planned epochs (no per-epoch energy in history.csv)")
            # STEP: set-up epochs as measured + the steady energy per epoch x the remaining planned epochs
            if mine.steady_per_epoch_J is not None:
                scores["step"].add(mine.setup_J + mine.steady_per_epoch_J * max(planned - mine.setup_epochs, 0),
                                   actual, "set-up epochs + steady energy per epoch x remaining planned epochs")
            else:
                steady = getattr(run, "steady_energy_per_epoch_J", None)
                steady = None if steady is None or pd.isna(steady) else float(steady)
                scores["step"].add(None if steady is None else steady * planned, actual,
                                   "approximation: processed steady energy per epoch x planned epochs")
            # PRE: regressed energy per epoch x planned epochs
            scores["pre"].add(None if pre_per_epoch is None or pd.isna(run.gflops) or pd.isna(run.images_per_epoch)
                              else float(pre_per_epoch) * planned, actual,
                              "ridge on log GFLOPs, log images per epoch, backend; x planned epochs")
            # TDP x time: the GPUs' power limits (else the CPU's TDP) x the measured duration
            limit = limits.get(key)
            power = (limit or 0.0) + (cpu_tdp_W if not limit or _has_cpu_energy(run) else 0.0)
            source = ("GPU power limit" + (" + CPU TDP" if _has_cpu_energy(run) else "")) if limit else "CPU TDP"
            scores["tdp_time"].add(power * run.duration_s, actual, f"{source} x measured duration")
    results = {name: {"name": PREDICTOR_NAMES[name], **summarise(scores[name], levels)} for name in PREDICTORS}
    return {"environment": environment, "campaigns": len(campaigns), "runs": len(history), "levels": list(levels),
            "ect_kinds": kinds, "predictors": results,
            "note": "leave one campaign out; ect and PRE see only the other campaigns; CarbonTracker and STEP see the "
                    "run's own epochs where history.csv has their energy (online rules), TDP x time its measured "
                    "duration"}


def _has_cpu_energy(run) -> bool:
    value = getattr(run, "cpu_energy_J", None)
    return value is not None and not pd.isna(value) and value > 0


def raw_and_samples(processed: Path) -> tuple[Path, Path]:
    """The raw folder and interim samples beside a processed dataset (METRICS_DIR/processed/runs.parquet)."""
    root = Path(processed).resolve().parent.parent
    return root / "raw", root / "interim" / "samples.parquet"


def as_json(result: dict) -> dict:
    """A result with NaN as None, for json.dumps(allow_nan=False)."""
    def clean(value):
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        if isinstance(value, (np.floating, np.integer)):
            return clean(value.item())
        return value
    return clean(result)


# ---------------------------------------------------------------------------------------------------------------
# Tables people read


def _number(value: float) -> str:
    """3 significant digits (4 from 1,000 on), without an exponent: 0.0123, 12.3, 1,415."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:,.{max(0, 2 - math.floor(math.log10(abs(value))))}f}"


def _span(bounds, scale: float) -> str:
    return "unbounded" if bounds is None else f"{_number(bounds[0] / scale)}-{_number(bounds[1] / scale)}"


def prediction_table(result: dict) -> tuple[list[str], list[list], list[str]]:
    """predict's result as (header, rows, lines under the table): 3-4 significant digits with units; a prior's row says
    "prior*" and has no interval."""
    levels = [f"{level:g}" for level in result["levels"]]
    named = shows_backend(p["backend"] for p in result["predictions"])  # a column where not all is TensorFlow
    header = ["architecture", *(["backend"] if named else []), "runs", "from", "epochs", "energy kJ",
              *(f"{100 * float(level):g} % kJ" for level in levels), "Wh", "gCO2e", "duration min",
              *(f"{100 * float(level):g} % min" for level in levels)]
    rows, lines = [], []
    for p in result["predictions"]:
        prior = p["kind"] == "prior"
        if p["energy_J"] is None:
            rows.append([p["architecture"], *([p["backend"]] if named else []), p["repetitions"], "none", None, None,
                         *([None] * len(levels)), None, None, None, *([None] * len(levels))])
        else:
            energy = [("none (prior)" if prior else _span(p["intervals"][level]["energy_J"], 1000)) for level in levels]
            duration = [("none (prior)" if prior else _span(p["intervals"][level]["duration_s"], 60))
                        for level in levels]
            rows.append([p["architecture"], *([p["backend"]] if named else []), p["repetitions"],
                         "prior*" if prior else p["kind"],
                         p["epochs"], p["energy_J"] / 1000, *energy, p["energy_kWh"] * 1000, p["emissions_gCO2e"],
                         p["duration_s"] / 60, *duration])
        lines += [f"{p['architecture']} · {p['backend']}: {note}" for note in p["notes"]]
    h = result["history"]
    lines.insert(0, f"history: {h['runs']} run(s) in {h['campaigns']} campaign(s) of {result['environment']}; "
                    f"model fit on {h['fit_runs']}, intervals calibrated on {h['calibration_runs']} (split conformal)")
    if result["reason"]:
        lines.insert(1, result["reason"])
    if any(p["kind"] == "prior" for p in result["predictions"]):
        lines.append(f"* {PRIOR_LABEL}: planned FLOPs at an assumed throughput x {result['prior']['power_source']}; "
                     "not a measurement")
    c = result["campaign"]
    lines.append(f"campaign: {c['runs']} run(s), about {c['energy_kWh']:.4g} kWh, {c['emissions_gCO2e']:.4g} gCO2e "
                 f"({result['carbon_intensity_gCO2e_per_kWh']:.4g} gCO2e/kWh x PUE {result['pue']:.3g}), "
                 f"{c['duration_s'] / 3600:.4g} h" + (" (prior)" if c["all_prior"] else "") + f"; {c['note']}")
    return header, rows, lines


def backtest_table(result: dict) -> tuple[list[str], list[list], list[str]]:
    """backtest's result as (header, rows, lines under the table)."""
    levels = [f"{level:g}" for level in result["levels"]]
    header = ["predictor", "runs", "MAPE %", "RMSE kJ", *(f"{100 * float(level):g} % coverage" for level in levels)]
    rows, lines = [], []
    for key, p in result["predictors"].items():
        cells = []
        for level in levels:
            c = p["coverage"][level]
            cells.append(c["status"] if c.get("empirical") is None else
                         f"{100 * c['empirical']:.3g} % of {c['runs']}" + (" FLAGGED" if c["flagged"] else ""))
        rows.append([p["name"], p["runs"], p["mape_pct"], None if p["rmse_J"] is None else p["rmse_J"] / 1000,
                     *cells])
        how = "; ".join(p["how"]) or "no prediction"
        lines.append(f"{p['name']}: {how}" + (f" ({p['missing']} run(s) without a prediction)" if p["missing"]
                                               else ""))
        lines += [f"{p['name']}: {100 * float(level):g} % interval {c['status']} (tolerance +/- "
                  f"{100 * c['tolerance']:.3g} points)"
                  for level, c in p["coverage"].items() if c.get("flagged")]
    lines.insert(0, f"backtest of {result['environment']}: {result['runs']} run(s), {result['campaigns']} campaign(s), "
                    "each left out in turn")
    lines.append(result["note"])
    return header, rows, lines
