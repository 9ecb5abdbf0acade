"""Nightly regression check: did the latest campaign (DAG run) of an environment cost more energy
than the campaigns before it?

Per architecture, the latest campaign's repetitions are compared with a baseline of the previous N
campaigns, and the verdict is one of:
- "regression": at least MIN_RUNS repetitions on each side and the whole confidence interval of the
  ratio latest / baseline above 1 + THRESHOLD. The interval is the Mann-Whitney (Hodges-Lehmann) one
  on the log scale, each end at one-sided level ALPHA / (architectures compared): distribution-free,
  so the chance that a night of an unchanged setup gives any "regression" is at most ALPHA whatever
  the noise, and in practice far less (the interval must clear the threshold, not just 1);
- "no regression": enough repetitions, and the interval's upper end at or below 1 + THRESHOLD;
- "inconclusive": too few repetitions, or an interval that straddles the threshold; "decided_by"
  says what would decide it. Inconclusive never fails a DAG run;
- "no baseline": no earlier campaign ran the architecture.
A change of the median that the measurements' uncertainties cover is never a regression: where the latest and the
baseline median differ by no more than their uncertainties added (each median's: the largest of its runs', see
stats.median_uncertainty), the verdict is "inconclusive", its reason naming both numbers. Runs without an
uncertainty (processed before it was recorded) are judged as before.

A backend is only ever compared with itself: the series compared (and the trend's columns) are the architectures
where every run of the environment trained on TensorFlow (the keys of every result before backends were a choice),
else one per architecture and backend, keyed "vgg16·jax"; each verdict names its "architecture" and "backend".
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ect.analysis.stats import BACKEND, BOUND, median_uncertainty, shows_backend, uncertainty, with_backend
from ect.errors import ConfigError, EnergyRegression
from ect.raw.layout import campaign_of, run_id_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RegressionSettings:
    baseline_runs: int = 5  # number of previous campaigns that form the baseline
    threshold: float = 0.05  # relative increase of the median that counts as a regression
    alpha: float = 0.05  # significance level of the one-sided rank test; the interval is at 1 - 2 * alpha
    min_runs: int = 5  # repetitions needed on each side (latest campaign, baseline) for a verdict
    metric: str = "total_energy_J"




def _environment_runs(df: pd.DataFrame, environment: str) -> pd.DataFrame:
    runs = with_backend(df[df["environment"] == environment]).copy()
    # The CSV holds strings; naive timestamps are UTC by the dataset's definition.
    runs["start"] = pd.to_datetime(runs["start"], utc=True)
    return runs


def series_label(architecture: str, backend: str, named: bool) -> str:
    """A series of the regression check: "vgg16", or "vgg16·jax" where the backend is named."""
    return f"{architecture}·{backend}" if named else str(architecture)


def _with_series(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs with their "series": the architecture, with the backend where any run of them trained on another
    backend than TensorFlow (shows_backend)."""
    named = shows_backend(runs[BACKEND])
    return runs.assign(series=[series_label(a, b, named) for a, b in zip(runs["architecture"], runs[BACKEND])])


def _campaign_starts(runs: pd.DataFrame) -> pd.Series:
    """Earliest start per campaign, oldest first (ties broken by campaign id, for a stable order)."""
    starts = runs.groupby("campaign_id")["start"].min().reset_index()
    return starts.sort_values(["start", "campaign_id"]).set_index("campaign_id")["start"]


def campaign_order(df: pd.DataFrame, environment: str) -> list[str]:
    """The environment's campaign ids, ordered by their earliest run start."""
    return [str(c) for c in _campaign_starts(_environment_runs(df, environment)).index]


def smallest_p_value(latest_count: int, baseline_count: int) -> float:
    """The smallest p-value the exact one-sided rank test can reach: every latest value above every
    baseline value, one arrangement out of C(n + m, n)."""
    return 1.0 / math.comb(latest_count + baseline_count, latest_count)


def _rank_sum_cdf(n: int, m: int) -> np.ndarray:
    """P(U <= u), u = 0..n*m, of the Mann-Whitney U statistic under the null (no ties), from its generating
    function prod_{i=1..n} (1 - q^(m+i)) / (1 - q^i)."""
    n, m = min(n, m), max(n, m)
    counts = np.zeros(n * m + 1)
    counts[0] = 1.0
    for i in range(1, n + 1):
        counts[m + i:] -= counts[:len(counts) - m - i].copy()
        for start in range(i):  # divided by (1 - q^i): a running sum with stride i
            counts[start::i] = np.cumsum(counts[start::i])
    return np.cumsum(counts) / counts.sum()


def ratio_interval(latest: np.ndarray, baseline: np.ndarray, alpha: float) -> tuple[float, float]:
    """Distribution-free interval of the ratio latest / baseline (Mann-Whitney / Hodges-Lehmann, on the log scale):
    order statistics of all pairwise log ratios, each end at one-sided level alpha. (0, inf) where the runs are too
    few for that level."""
    differences = np.sort(np.subtract.outer(np.log(latest), np.log(baseline)).ravel())
    below = np.flatnonzero(_rank_sum_cdf(len(latest), len(baseline)) <= alpha)
    if not len(below):
        return 0.0, math.inf
    k = int(below[-1])  # P(U <= k) <= alpha: the (k+1)-th smallest difference is a lower bound at level alpha
    return float(np.exp(differences[k])), float(np.exp(differences[-1 - k]))


def _repetitions_to_decide(n: int, m: int, ratio: float, low: float, high: float, limit: float) -> int | None:
    """About how many more repetitions on each side would narrow the interval to one side of the limit (the
    interval shrinks as 1/sqrt(n)); None where the estimate says nothing (the change sits on the limit)."""
    distance = abs(ratio - limit)
    half_width = (high - low) / 2
    if distance < 1e-9 or half_width <= 0:
        return None
    more = math.ceil(min(n, m) * (half_width / distance) ** 2) - min(n, m)
    return max(1, more) if more < 1000 else None


def _with_bounds(runs: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The runs with each one's uncertainty of the metric (NaN: unknown) in the working column BOUND."""
    return runs.assign(**{BOUND: uncertainty(runs, metric).to_numpy()})


def _number(value: float) -> float | None:
    return None if math.isnan(value) else value


def _compare(latest: pd.DataFrame, baseline: pd.DataFrame, settings: RegressionSettings, alpha: float,
             sides: tuple[str, str] = ("latest", "baseline")) -> dict:
    """One architecture: latest runs against the baseline runs (with their campaign_id and BOUND), the interval's
    ends at one-sided level alpha. `sides` names the two in decided_by (compare_campaigns: the second and first
    campaign)."""
    latest_side, baseline_side = sides
    latest_J = latest[settings.metric]
    latest_median = float(latest_J.median())
    baseline_median = float(baseline.groupby("campaign_id")[settings.metric].median().median())
    relative_change = latest_median / baseline_median - 1
    baseline_J = baseline[settings.metric]
    n, m, limit = len(latest_J), len(baseline_J), 1 + settings.threshold
    p_value = None
    if n >= 2 and m >= 2:
        p_value = float(stats.mannwhitneyu(latest_J, baseline_J, alternative="greater").pvalue)
    interval = None
    if n < settings.min_runs or m < settings.min_runs:
        status = "inconclusive"
        needs = [f"{settings.min_runs - k} more {side} repetition(s)"
                 for side, k in ((latest_side, n), (baseline_side, m)) if k < settings.min_runs]
        decided_by = (f"needs {' and '.join(needs)}: {n} {latest_side} and {m} {baseline_side} run(s), a verdict "
                      f"needs at least {settings.min_runs} on each side (REGRESSION: MIN_RUNS)")
    else:
        low, high = ratio_interval(latest_J.to_numpy(float), baseline_J.to_numpy(float), alpha)
        interval = None if math.isinf(high) else (low, high)
        span = (f"{100 * (1 - 2 * alpha):.3g} % interval of the change {100 * (low - 1):+.3g} % to "
                f"{100 * (high - 1):+.3g} %")
        if interval is None:
            status = "inconclusive"
            decided_by = (f"{n} {latest_side} and {m} {baseline_side} runs are too few for an interval at level "
                          f"{alpha:.3g}; "
                          "more repetitions would decide")
        elif low > limit:  # the rank test of "more than THRESHOLD", significant at alpha
            status = "regression"
            decided_by = f"{span}, above the threshold +{100 * settings.threshold:g} %"
        elif high <= limit:
            status = "no regression"
            decided_by = f"{span}, within the threshold +{100 * settings.threshold:g} %"
        else:
            status = "inconclusive"
            more = _repetitions_to_decide(n, m, 1 + relative_change, low, high, limit)
            decided_by = (f"{span}: it straddles the threshold +{100 * settings.threshold:g} %; "
                          + (f"about {more} more repetition(s) on each side would decide" if more
                             else "more repetitions would decide"))
    latest_bound, baseline_bound = median_uncertainty(latest[BOUND]), median_uncertainty(baseline[BOUND])
    change, combined = latest_median - baseline_median, latest_bound + baseline_bound  # NaN: unknown
    if status == "regression" and abs(change) <= combined:
        status = "inconclusive"
        decided_by = (f"the change of the median, {_energy(change, settings.metric, '+')}, lies within the "
                      f"measurements' uncertainty {_energy(combined, settings.metric)} ({latest_side} "
                      f"+/- {_energy(latest_bound, settings.metric)} + {baseline_side} "
                      f"+/- {_energy(baseline_bound, settings.metric)}): no difference can be called (the runs alone: "
                      f"{decided_by})")
    return {
        "status": status,
        "regression": status == "regression",
        "latest_runs": int(n),
        "baseline_runs": int(m),
        "baseline_campaigns": int(baseline["campaign_id"].nunique()),
        "latest_median": latest_median,
        "baseline_median": baseline_median,
        "latest_median_uncertainty": _number(latest_bound),
        "baseline_median_uncertainty": _number(baseline_bound),
        "relative_change": float(relative_change),
        "ratio_interval": None if interval is None else list(interval),
        "p_value": p_value,
        "decided_by": decided_by,
    }


def check_regressions(df: pd.DataFrame, environment: str,
                      settings: RegressionSettings = RegressionSettings()) -> dict:
    """Compare each architecture of the environment's latest campaign with the previous
    `settings.baseline_runs` campaigns (verdicts: see the module's docstring).

    latest_median is the median of the latest campaign's runs. baseline_median is the median of
    the per-campaign medians, so that one baseline campaign with many repetitions does not
    dominate. The interval and the one-sided Mann-Whitney U test's p-value (latest greater than
    baseline, reported) use the run-level values. Runs without a value of the metric are left out.
    """
    runs = _with_series(_environment_runs(df, environment))
    runs = _with_bounds(runs[runs[settings.metric].notna()], settings.metric)
    order = [str(c) for c in _campaign_starts(runs).index]
    latest_campaign = order[-1] if order else None
    baseline_campaigns = order[-1 - settings.baseline_runs:-1] if settings.baseline_runs > 0 else []

    latest = runs[runs["campaign_id"] == latest_campaign]
    baseline = runs[runs["campaign_id"].isin(baseline_campaigns)]
    architectures = {}
    compared = set(latest["series"]) & set(baseline["series"])
    alpha = settings.alpha / max(1, len(compared))  # Bonferroni: ALPHA is the chance of any false alarm in a night
    for series, mine in latest.groupby("series", sort=True):
        latest_J = mine[settings.metric]
        arch_baseline = baseline[baseline["series"] == series]
        names = {"architecture": str(mine["architecture"].iloc[0]), "backend": str(mine[BACKEND].iloc[0])}
        if arch_baseline.empty:
            architectures[series] = {
                **names,
                "status": "no baseline",
                "regression": False,
                "latest_runs": int(len(latest_J)),
                "baseline_runs": 0,
                "baseline_campaigns": 0,
                "latest_median": float(latest_J.median()),
                "baseline_median": None,
                "latest_median_uncertainty": _number(median_uncertainty(mine[BOUND])),
                "baseline_median_uncertainty": None,
                "relative_change": None,
                "ratio_interval": None,
                "p_value": None,
                "decided_by": "no baseline: no earlier campaign ran this architecture"
                              + (f" on {names['backend']}" if series != names["architecture"] else ""),
            }
        else:
            architectures[series] = {**names, **_compare(mine, arch_baseline, settings, alpha)}

    return {
        "environment": environment,
        "latest_campaign": latest_campaign,
        "baseline_campaigns": baseline_campaigns,
        "settings": dataclasses.asdict(settings),
        "architectures": architectures,
        "regressions": [a for a, r in architectures.items() if r["regression"]],
        "inconclusive": [a for a, r in architectures.items() if r["status"] == "inconclusive"],
    }


def campaign_key(name: str) -> str:
    """A DAG run id as it appears in campaign_id (run folder names): "manual__2026-12-01T03:52:18+00:00" ->
    "manual__2026-12-01T03_52_18_00_00"."""
    return campaign_of(run_id_for(name, 0))


COMPARE_SIDES = ("second-campaign", "first-campaign")  # what decided_by calls the sides of compare_campaigns


def compare_campaigns(df: pd.DataFrame, first: str, second: str,
                      settings: RegressionSettings = RegressionSettings()) -> dict:
    """The second campaign (DAG run) against the first, per environment, architecture and backend that ran in both,
    judged as the regression check judges a latest run against its baseline (alpha shared out over the cells
    compared); a backend is only compared with itself. Raises ConfigError naming a campaign without runs and the
    campaigns there are."""
    runs = _with_bounds(with_backend(df[df[settings.metric].notna()]), settings.metric)
    known = sorted(str(c) for c in runs["campaign_id"].unique())
    sides = {}
    for name in (first, second):
        side = runs[runs["campaign_id"] == campaign_key(name)]
        if side.empty:
            raise ConfigError(f"no runs of campaign {name!r} (with {settings.metric}); campaigns: "
                              f"{', '.join(known) or 'none'}")
        sides[name] = side
    cells = {name: set(zip(side["environment"], side["architecture"], side[BACKEND])) for name, side in sides.items()}
    both = sorted(cells[first] & cells[second])
    alpha = settings.alpha / max(1, len(both))
    comparisons = []
    for environment, architecture, backend in both:
        a, b = (sides[name][(sides[name]["environment"] == environment) & (sides[name]["architecture"] == architecture)
                            & (sides[name][BACKEND] == backend)] for name in (first, second))
        comparisons.append({"environment": environment, "architecture": architecture, "backend": backend,
                            **_compare(b, a, settings, alpha, COMPARE_SIDES)})
    return {"first": first, "second": second, "settings": dataclasses.asdict(settings), "comparisons": comparisons,
            "only_in_first": [list(cell) for cell in sorted(cells[first] - cells[second])],
            "only_in_second": [list(cell) for cell in sorted(cells[second] - cells[first])]}


def trend_table(df: pd.DataFrame, environment: str, metric: str = "total_energy_J") -> pd.DataFrame:
    """One row per campaign (oldest first, indexed by campaign_id): its earliest "start" and, per
    series (the architecture, or "vgg16·jax" as check_regressions keys it), the campaign's median of the metric (NaN
    where the series did not run)."""
    runs = _environment_runs(df, environment)
    starts = _campaign_starts(runs)
    medians = _with_series(runs).groupby(["campaign_id", "series"])[metric].median().unstack("series")
    medians = medians.reindex(index=starts.index, columns=sorted(medians.columns))
    medians.columns.name = None
    return pd.concat([starts.rename("start"), medians], axis=1)


def verdict_summary(result: dict) -> str:
    """A check_regressions result in one line: "regressions: vgg16, resnet50; inconclusive: none (latest campaign
    X)"."""
    return (f"regressions: {', '.join(result.get('regressions') or []) or 'none'}; "
            f"inconclusive: {', '.join(result.get('inconclusive') or []) or 'none'} "
            f"(latest campaign {result.get('latest_campaign')})")


def raise_on_regression(result: dict) -> None:
    """Raise EnergyRegression naming every regressed architecture of a check_regressions result; only a warning
    where the result says the profile does not fail runs (REGRESSION: FAIL_RUN false, e.g. the demo's smoke runs)."""
    if not result["regressions"]:
        return
    metric = result["settings"]["metric"]
    lines = []
    for architecture in result["regressions"]:
        r = result["architectures"][architecture]
        lines.append(f"{architecture}: {r['relative_change'] * 100:+.1f} % (median {_energy(r['latest_median'], metric)}"
                     f" vs baseline {_energy(r['baseline_median'], metric)}; {r['decided_by']})")
    message = (f"energy regression on {result['environment']} in campaign {result['latest_campaign']}: "
               + "; ".join(lines))
    if not result.get("fail_run", True):
        log.warning(f"{message} (REGRESSION: FAIL_RUN is false: reported, the DAG run does not fail)")
        return
    raise EnergyRegression(message)


def _energy(value: float, metric: str, sign: str = "") -> str:
    """A value of the metric as people read it, 4 significant digits with its unit (kJ for joules); sign "+" shows
    the sign of a change."""
    return f"{value / 1000:{sign}.4g} kJ" if metric.endswith("_J") else f"{value:{sign}.4g} {metric.rsplit('_', 1)[-1]}"
