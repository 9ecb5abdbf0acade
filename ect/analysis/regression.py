"""Nightly regression check: did the latest campaign (DAG run) of an environment cost more energy
than the campaigns before it?

Per architecture, the median of the latest campaign's repetitions is compared with a baseline of
the previous N campaigns, with a relative threshold and a one-sided Mann-Whitney U test.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import pandas as pd
from scipy import stats

from ect.errors import EnergyRegression


@dataclass(frozen=True)
class RegressionSettings:
    baseline_runs: int = 5  # number of previous campaigns that form the baseline
    threshold: float = 0.05  # relative increase of the median that counts as a regression
    alpha: float = 0.05  # significance level of the one-sided rank test
    metric: str = "total_energy_J"


def _environment_runs(df: pd.DataFrame, environment: str) -> pd.DataFrame:
    runs = df[df["environment"] == environment].copy()
    # The CSV holds strings; naive timestamps are UTC by the dataset's definition.
    runs["start"] = pd.to_datetime(runs["start"], utc=True)
    return runs


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


def _compare(latest_J: pd.Series, baseline: pd.DataFrame, settings: RegressionSettings) -> dict:
    """One architecture: latest runs against the baseline runs (with their campaign_id)."""
    latest_median = float(latest_J.median())
    baseline_median = float(baseline.groupby("campaign_id")[settings.metric].median().median())
    relative_change = latest_median / baseline_median - 1
    baseline_J = baseline[settings.metric]

    p_value = None
    test_decides = False
    if len(latest_J) < 2 or len(baseline_J) < 2:
        decided_by = (f"threshold only: {len(latest_J)} latest and {len(baseline_J)} baseline value(s); "
                      "the rank test needs at least 2 on each side")
    else:
        p_value = float(stats.mannwhitneyu(latest_J, baseline_J, alternative="greater").pvalue)
        # With few repetitions the test cannot reach alpha at all (3 vs 3 runs: p >= 1/20);
        # it would then veto every alarm, so the threshold decides alone.
        if smallest_p_value(len(latest_J), len(baseline_J)) >= settings.alpha:
            decided_by = (f"threshold only: with {len(latest_J)} latest and {len(baseline_J)} baseline values "
                          f"the rank test cannot reach p < {settings.alpha}")
        else:
            test_decides = True
            decided_by = "threshold and one-sided Mann-Whitney U test"

    regression = relative_change > settings.threshold and (not test_decides or p_value < settings.alpha)
    return {
        "status": "regression" if regression else "ok",
        "regression": bool(regression),
        "latest_runs": int(len(latest_J)),
        "baseline_runs": int(len(baseline_J)),
        "baseline_campaigns": int(baseline["campaign_id"].nunique()),
        "latest_median": latest_median,
        "baseline_median": baseline_median,
        "relative_change": float(relative_change),
        "p_value": p_value,
        "decided_by": decided_by,
    }


def check_regressions(df: pd.DataFrame, environment: str,
                      settings: RegressionSettings = RegressionSettings()) -> dict:
    """Compare each architecture of the environment's latest campaign with the previous
    `settings.baseline_runs` campaigns.

    latest_median is the median of the latest campaign's runs. baseline_median is the median of
    the per-campaign medians, so that one baseline campaign with many repetitions does not
    dominate. The one-sided Mann-Whitney U test (latest greater than baseline) runs over the
    run-level values. A regression is relative_change > threshold and p < alpha; where the test
    cannot decide (fewer than 2 values on a side, or too few to ever reach alpha) the threshold
    decides alone and "decided_by" says so. Runs without a value of the metric are left out.
    """
    runs = _environment_runs(df, environment)
    runs = runs[runs[settings.metric].notna()]
    order = [str(c) for c in _campaign_starts(runs).index]
    latest_campaign = order[-1] if order else None
    baseline_campaigns = order[-1 - settings.baseline_runs:-1] if settings.baseline_runs > 0 else []

    latest = runs[runs["campaign_id"] == latest_campaign]
    baseline = runs[runs["campaign_id"].isin(baseline_campaigns)]
    architectures = {}
    for architecture in sorted(latest["architecture"].unique()):
        latest_J = latest.loc[latest["architecture"] == architecture, settings.metric]
        arch_baseline = baseline[baseline["architecture"] == architecture]
        if arch_baseline.empty:
            architectures[str(architecture)] = {
                "status": "no baseline",
                "regression": False,
                "latest_runs": int(len(latest_J)),
                "baseline_runs": 0,
                "baseline_campaigns": 0,
                "latest_median": float(latest_J.median()),
                "baseline_median": None,
                "relative_change": None,
                "p_value": None,
                "decided_by": "no baseline: no earlier campaign ran this architecture",
            }
        else:
            architectures[str(architecture)] = _compare(latest_J, arch_baseline, settings)

    return {
        "environment": environment,
        "latest_campaign": latest_campaign,
        "baseline_campaigns": baseline_campaigns,
        "settings": dataclasses.asdict(settings),
        "architectures": architectures,
        "regressions": [a for a, r in architectures.items() if r["regression"]],
    }


def trend_table(df: pd.DataFrame, environment: str, metric: str = "total_energy_J") -> pd.DataFrame:
    """One row per campaign (oldest first, indexed by campaign_id): its earliest "start" and, per
    architecture, the campaign's median of the metric (NaN where the architecture did not run)."""
    runs = _environment_runs(df, environment)
    starts = _campaign_starts(runs)
    medians = runs.groupby(["campaign_id", "architecture"])[metric].median().unstack("architecture")
    medians = medians.reindex(index=starts.index, columns=sorted(medians.columns))
    medians.columns.name = None
    return pd.concat([starts.rename("start"), medians], axis=1)


def raise_on_regression(result: dict) -> None:
    """Raise EnergyRegression naming every regressed architecture of a check_regressions result."""
    if not result["regressions"]:
        return
    unit = result["settings"]["metric"].rsplit("_", 1)[-1]
    lines = []
    for architecture in result["regressions"]:
        r = result["architectures"][architecture]
        p_text = "no p-value" if r["p_value"] is None else f"p = {r['p_value']:.3g}"
        lines.append(f"{architecture}: {r['relative_change'] * 100:+.1f} % "
                     f"(median {r['latest_median']:.1f} {unit} vs baseline {r['baseline_median']:.1f} {unit}, "
                     f"{p_text}; {r['decided_by']})")
    raise EnergyRegression(f"energy regression on {result['environment']} in campaign "
                           f"{result['latest_campaign']}: " + "; ".join(lines))
