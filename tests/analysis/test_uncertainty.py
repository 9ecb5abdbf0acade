"""Energies with their uncertainty in the analysis: a regression the uncertainties cover is inconclusive, pairs of
groups within them are never significant, and the report shows median ± uncertainty (README "Energy measurement":
Uncertainty)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ect.analysis.regression import (RegressionSettings, campaign_key, check_regressions, compare_campaigns,
                                     raise_on_regression)
from ect.analysis.stats import compare_groups, energy_reduction_table, median_uncertainty, uncertainty

MEANS_J = {"cnn": 1000.0, "mobilenet": 4000.0}


def nights(bound_J: float | None, increase: float = 0.10, campaigns: int = 6, repetitions: int = 5,
           seed: int = 3) -> pd.DataFrame:
    """Nightly campaigns of two architectures with 1 % noise, mobilenet's last one `increase` higher; every run's
    total_energy_uncertainty_J is bound_J (no such column where None: runs processed before it was recorded)."""
    rng = np.random.default_rng(seed)
    rows = []
    for night in range(campaigns):
        campaign = f"nightly__2024-03-{night + 1:02d}T02:00:00+00:00"
        for a, (architecture, mean_J) in enumerate(MEANS_J.items()):
            if night == campaigns - 1 and architecture == "mobilenet":
                mean_J *= 1 + increase
            for repetition in range(repetitions):
                rows.append({"environment": "gpu-node", "architecture": architecture,
                             "run_id": f"{campaign}-{architecture}-rep{repetition:02d}",
                             "campaign_id": campaign_key(campaign),
                             "repetition": repetition,
                             "start": pd.Timestamp("2024-03-01 02:00", tz="UTC") + pd.Timedelta(
                                 days=night, minutes=10 * (a * repetitions + repetition)),
                             "total_energy_J": rng.normal(mean_J, 0.01 * mean_J)})
    runs = pd.DataFrame(rows)
    return runs if bound_J is None else runs.assign(total_energy_uncertainty_J=bound_J)


def test_a_change_the_uncertainties_cover_is_inconclusive_not_a_regression():
    result = check_regressions(nights(bound_J=250.0), "gpu-node", RegressionSettings())
    mobilenet = result["architectures"]["mobilenet"]
    change_J = mobilenet["latest_median"] - mobilenet["baseline_median"]
    assert 300 < change_J < 500  # +10 % of 4 kJ, beyond the threshold and significant: a regression without bounds
    assert mobilenet["status"] == "inconclusive" and not mobilenet["regression"]
    assert (mobilenet["latest_median_uncertainty"], mobilenet["baseline_median_uncertainty"]) == (250.0, 250.0)
    assert mobilenet["decided_by"].startswith(
        f"the change of the median, {change_J / 1000:+.4g} kJ, lies within the measurements' uncertainty 0.5 kJ "
        "(latest +/- 0.25 kJ + baseline +/- 0.25 kJ): no difference can be called (the runs alone: ")
    assert result["regressions"] == [] and "mobilenet" in result["inconclusive"]
    raise_on_regression(result)  # inconclusive never raises
    json.dumps(result, allow_nan=False)


def test_a_change_far_beyond_the_uncertainties_is_still_a_regression():
    result = check_regressions(nights(bound_J=50.0), "gpu-node", RegressionSettings())
    mobilenet = result["architectures"]["mobilenet"]
    assert mobilenet["status"] == "regression" and result["regressions"] == ["mobilenet"]
    assert mobilenet["latest_median_uncertainty"] == 50.0
    assert result["architectures"]["cnn"]["status"] == "no regression"


def test_runs_without_uncertainty_are_judged_as_before():
    result = check_regressions(nights(bound_J=None), "gpu-node", RegressionSettings())
    mobilenet = result["architectures"]["mobilenet"]
    assert mobilenet["status"] == "regression" and mobilenet["latest_median_uncertainty"] is None
    one_unknown = nights(bound_J=250.0)
    one_unknown.loc[0, "total_energy_uncertainty_J"] = np.nan  # an unknown bound makes the median's unknown
    assert check_regressions(one_unknown, "gpu-node")["architectures"]["cnn"]["baseline_median_uncertainty"] is None


def test_compare_campaigns_calls_no_difference_the_uncertainties_cover():
    runs = nights(bound_J=250.0, campaigns=2)
    result = compare_campaigns(runs, "nightly__2024-03-01T02:00:00+00:00", "nightly__2024-03-02T02:00:00+00:00")
    mobilenet = next(c for c in result["comparisons"] if c["architecture"] == "mobilenet")
    assert mobilenet["status"] == "inconclusive"
    assert "lies within the measurements' uncertainty 0.5 kJ (second-campaign +/- 0.25 kJ" in mobilenet["decided_by"]


def test_the_uncertainty_of_a_median_is_the_largest_of_its_runs():
    assert median_uncertainty([1.0, 5.0, 2.0]) == 5.0
    assert math.isnan(median_uncertainty([1.0, np.nan])) and math.isnan(median_uncertainty([]))
    runs = pd.DataFrame({"total_energy_uncertainty_J": [10.0, 20.0], "images_seen": [100, 0]})
    assert list(uncertainty(runs, "total_energy_J")) == [10.0, 20.0]
    per_image = uncertainty(runs, "energy_per_image_J")
    assert per_image[0] == 0.1 and math.isnan(per_image[1])
    assert uncertainty(runs, "val_f1").isna().all()


def groups(values: dict[str, list[float]], bound_J: float | None) -> pd.DataFrame:
    rows = [{"architecture": name, "environment": "local", "total_energy_J": v} for name, vs in values.items()
            for v in vs]
    frame = pd.DataFrame(rows)
    return frame if bound_J is None else frame.assign(total_energy_uncertainty_J=bound_J)


def test_pairs_within_the_uncertainty_are_not_significant():
    values = {"a": [100.0 + i for i in range(8)], "b": [110.0 + i for i in range(8)]}  # medians 103.5 and 113.5
    plain = compare_groups(groups(values, None), "total_energy_J", "architecture")
    assert plain["dunn"][0]["significant"] is True and "within_uncertainty" not in plain["dunn"][0]
    covered = compare_groups(groups(values, 6.0), "total_energy_J", "architecture")  # 10 J apart, +/- 12 J together
    (dunn,), (cliffs,) = covered["dunn"], covered["cliffs_delta"]
    assert dunn["within_uncertainty"] is True and dunn["significant"] is False and dunn["uncertainty"] == 12.0
    assert cliffs["within_uncertainty"] is True and cliffs["delta"] == -1.0
    assert covered["groups"]["a"]["uncertainty"] == 6.0 and plain["groups"]["a"]["uncertainty"] is None
    apart = compare_groups(groups(values, 2.0), "total_energy_J", "architecture")
    assert apart["dunn"][0]["within_uncertainty"] is False and apart["dunn"][0]["significant"] is True
    json.dumps(covered, allow_nan=False)


def test_the_energy_reduction_table_says_which_reductions_the_uncertainties_cover():
    values = {"vgg": [100.0] * 3, "resnet": [95.0] * 3, "mobilenet": [25.0] * 3}
    table = energy_reduction_table(groups(values, 4.0), cell=["architecture"])
    pairs = {(p["from"], p["to"]): p for p in table["pairs"]}
    assert pairs[("vgg", "resnet")]["within_uncertainty"] is True and pairs[("vgg", "resnet")]["uncertainty_J"] == 8.0
    assert pairs[("vgg", "mobilenet")]["within_uncertainty"] is False
    unknown = energy_reduction_table(groups(values, None), cell=["architecture"])
    assert all("within_uncertainty" not in p for p in unknown["pairs"])


def test_the_report_shows_energy_with_its_uncertainty_and_the_inconclusive_verdict(tmp_path):
    from ect.analysis.report import write_report

    runs = nights(bound_J=250.0).assign(gpu_energy_source="counter", cpu_energy_source="estimated", val_f1=0.8,
                                        gflops=np.nan, duration_s=60.0)
    runs = runs.assign(energy_kWh=runs["total_energy_J"] / 3.6e6, emissions_gCO2e=0.0, energy_per_image_J=np.nan)
    regression = check_regressions(runs, "gpu-node")
    write_report(runs, tmp_path, "With uncertainty", regression=regression)
    markdown = (tmp_path / "report.md").read_text()
    summary = next(line for line in markdown.splitlines() if line.startswith("| gpu-node | mobilenet |"))
    assert " ± 0.25 |" in summary  # the median in kJ ± the largest uncertainty of its runs
    assert "Energy as median ± its uncertainty: the largest uncertainty of the runs behind the median" in markdown
    verdict = next(line for line in markdown.splitlines() if line.startswith("| mobilenet | 5 | 25 |"))
    assert "± 0.25 |" in verdict and "| inconclusive |" in verdict
    assert "within the measurements' uncertainty" in verdict
    assert "±" in (tmp_path / "report.html").read_text()

    write_report(runs.drop(columns="total_energy_uncertainty_J"), tmp_path / "old", "Without")
    old = (tmp_path / "old" / "report.md").read_text()
    assert "(uncertainty unknown)" in old and "±" not in next(
        line for line in old.splitlines() if line.startswith("| gpu-node | mobilenet |"))


def test_report_cells_round_the_uncertainty_to_2_digits_and_the_value_to_its_place():
    from ect.analysis.report import trimmed_frame, with_uncertainty
    assert with_uncertainty(121.0, 74.91) == "0.121 ± 0.075"
    assert with_uncertainty(642.6, 322.6) == "0.64 ± 0.32"
    assert with_uncertainty(5264.2, 10.2) == "5.264 ± 0.010"
    assert with_uncertainty(15893.0, 1552.0) == "15.9 ± 1.6"
    assert with_uncertainty(12345.6, 0.1) == "12.35 ± 0.00010"  # never more than 4 significant digits
    assert with_uncertainty(250.0, 0.0) == "0.25 ± 0"
    assert with_uncertainty(5264.0, None) == "5.264 (uncertainty unknown)"
    three = pd.DataFrame({"environment": "local", "architecture": "vgg16", "total_energy_J": [1.0, 2.0, 4.0]})
    (row,) = trimmed_frame(three).to_dict("records")
    assert row["Trimmed mean energy (kJ)"] == 0.002 and row["Spread of the runs kept (%)"] is None  # one run kept
