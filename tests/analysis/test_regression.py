import json

import numpy as np
import pandas as pd
import pytest

from ect.analysis.plots import plot_trend
from ect.analysis.regression import (
    RegressionSettings,
    campaign_order,
    check_regressions,
    raise_on_regression,
    trend_table,
)
from ect.errors import EnergyRegression

MEANS_J = {"cnn": 1000.0, "mobilenet": 4000.0, "resnet": 20000.0}
NOISE_SD = 0.02  # of the mean


def history(seed: int, campaigns: int = 6, repetitions: int = 5, environment: str = "gpu-node",
            latest_increase: dict[str, float] | None = None) -> pd.DataFrame:
    """Nightly campaigns (02:00 UTC) of every architecture with normal noise around stable means;
    latest_increase multiplies the means of the last campaign (0.10 = +10 %)."""
    rng = np.random.default_rng(seed)
    latest_increase = latest_increase or {}
    rows = []
    for night in range(campaigns):
        campaign = f"nightly__2024-03-{night + 1:02d}T02:00:00+00:00"
        night_start = pd.Timestamp("2024-03-01 02:00", tz="UTC") + pd.Timedelta(days=night)
        for a, (architecture, mean_J) in enumerate(MEANS_J.items()):
            if night == campaigns - 1:
                mean_J *= 1 + latest_increase.get(architecture, 0.0)
            for repetition in range(repetitions):
                rows.append({
                    "environment": environment,
                    "architecture": architecture,
                    "run_id": f"{campaign}-{architecture}-rep{repetition:02d}",
                    "campaign_id": campaign,
                    "repetition": repetition,
                    "start": night_start + pd.Timedelta(minutes=10 * (a * repetitions + repetition)),
                    "total_energy_J": rng.normal(mean_J, NOISE_SD * mean_J),
                })
    return pd.DataFrame(rows)


def test_injected_increase_is_a_regression():
    result = check_regressions(history(seed=1, latest_increase={"mobilenet": 0.10}), "gpu-node",
                               RegressionSettings())
    assert result["regressions"] == ["mobilenet"]
    mobilenet = result["architectures"]["mobilenet"]
    assert mobilenet["status"] == "regression"
    assert mobilenet["relative_change"] == pytest.approx(0.10, abs=0.02)
    assert mobilenet["p_value"] < 0.05
    assert mobilenet["latest_runs"] == 5 and mobilenet["baseline_runs"] == 25
    assert mobilenet["baseline_campaigns"] == 5
    for architecture in ("cnn", "resnet"):
        assert result["architectures"][architecture]["status"] == "ok"
        assert abs(result["architectures"][architecture]["relative_change"]) < 0.05
    json.dumps(result, allow_nan=False)


def test_result_names_latest_and_baseline_campaigns():
    df = history(seed=2, campaigns=8)
    order = campaign_order(df, "gpu-node")
    result = check_regressions(df, "gpu-node", RegressionSettings(baseline_runs=3))
    assert result["latest_campaign"] == order[-1]
    assert result["baseline_campaigns"] == order[-4:-1]
    assert result["settings"] == {"baseline_runs": 3, "threshold": 0.05, "alpha": 0.05,
                                  "metric": "total_energy_J"}
    assert result["architectures"]["cnn"]["baseline_runs"] == 15


def test_baseline_median_is_median_of_campaign_medians():
    rows = [("a", 0, 100.0), ("a", 1, 100.0), ("a", 2, 100.0),  # 3 repetitions at 100 J
            ("b", 3, 200.0),                                    # 1 repetition at 200 J
            ("c", 4, 300.0),                                    # 1 repetition at 300 J
            ("latest", 5, 210.0), ("latest", 6, 210.0)]
    df = pd.DataFrame([{"environment": "e", "architecture": "cnn", "run_id": f"{c}-{i}", "campaign_id": c,
                        "start": pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(hours=i),
                        "total_energy_J": energy_J} for c, i, energy_J in rows])
    cnn = check_regressions(df, "e", RegressionSettings())["architectures"]["cnn"]
    # The run-level median would be 100 J (3 of 5 runs); per campaign it is median(100, 200, 300).
    assert cnn["baseline_median"] == 200.0
    assert cnn["relative_change"] == pytest.approx(0.05)


def test_no_injection_is_no_regression():
    result = check_regressions(history(seed=3), "gpu-node", RegressionSettings())
    assert result["regressions"] == []
    assert {r["status"] for r in result["architectures"].values()} == {"ok"}


def test_increase_within_threshold_is_no_regression():
    result = check_regressions(history(seed=4, latest_increase={"cnn": 0.03}), "gpu-node",
                               RegressionSettings(threshold=0.05))
    assert result["regressions"] == []
    assert result["architectures"]["cnn"]["relative_change"] == pytest.approx(0.03, abs=0.015)


def test_noise_rarely_raises_false_alarms():
    # The rank test alone would flag about alpha = 5 % of the 60 checks (3 expected); the 5 %
    # threshold is about 4 standard deviations of the median's noise here, so the combined rule
    # should practically never fire. One alarm is tolerated so the bound is not a coin flip on
    # a seed; more than one would mean the threshold is not doing its job.
    false_alarms = sum(len(check_regressions(history(seed=100 + s), "gpu-node")["regressions"])
                       for s in range(20))
    assert false_alarms <= 1


def test_single_repetition_falls_back_to_threshold():
    df = history(seed=5, repetitions=1, latest_increase={"resnet": 0.10})
    result = check_regressions(df, "gpu-node", RegressionSettings())
    resnet = result["architectures"]["resnet"]
    assert resnet["p_value"] is None
    assert resnet["decided_by"].startswith("threshold only")
    assert resnet["latest_runs"] == 1
    assert result["regressions"] == ["resnet"]


def test_too_few_repetitions_for_the_test_fall_back_to_threshold():
    # 3 latest vs 3 baseline runs: the exact test's smallest p-value is 1/C(6, 3) = 0.05, never < alpha.
    df = history(seed=6, campaigns=2, repetitions=3, latest_increase={"cnn": 0.10})
    cnn = check_regressions(df, "gpu-node", RegressionSettings())["architectures"]["cnn"]
    assert cnn["p_value"] is not None
    assert cnn["decided_by"].startswith("threshold only")
    assert cnn["regression"] is True


def test_single_campaign_has_no_baseline():
    result = check_regressions(history(seed=7, campaigns=1), "gpu-node", RegressionSettings())
    assert result["baseline_campaigns"] == []
    assert result["regressions"] == []
    for r in result["architectures"].values():
        assert r["status"] == "no baseline"
        assert r["relative_change"] is None and r["p_value"] is None
    json.dumps(result, allow_nan=False)
    raise_on_regression(result)


def test_new_architecture_has_no_baseline():
    df = history(seed=8)
    latest = df["campaign_id"].max()
    new = df[(df["campaign_id"] == latest) & (df["architecture"] == "cnn")].assign(architecture="vit")
    result = check_regressions(pd.concat([df, new]), "gpu-node", RegressionSettings())
    assert result["architectures"]["vit"]["status"] == "no baseline"
    assert result["architectures"]["cnn"]["status"] == "ok"


def test_unknown_environment_gives_empty_result():
    result = check_regressions(history(seed=9), "nowhere", RegressionSettings())
    assert result["latest_campaign"] is None
    assert result["architectures"] == {} and result["regressions"] == []


def test_other_environments_are_ignored():
    here = history(seed=10, campaigns=3)
    # A later campaign elsewhere with +50 %: neither the latest campaign nor the baseline here.
    elsewhere = history(seed=11, campaigns=7, environment="laptop", latest_increase={"cnn": 0.5})
    df = pd.concat([here, elsewhere], ignore_index=True)
    assert campaign_order(df, "gpu-node") == sorted(here["campaign_id"].unique())
    result = check_regressions(df, "gpu-node", RegressionSettings())
    assert result["latest_campaign"] == here["campaign_id"].max()
    assert result["architectures"]["cnn"]["baseline_runs"] == 10
    assert result["regressions"] == []
    assert check_regressions(df, "laptop", RegressionSettings())["regressions"] == ["cnn"]


def test_campaign_order_follows_start_not_name():
    df = history(seed=12, campaigns=2)
    renamed = df.replace({"campaign_id": {df["campaign_id"].min(): "zzz-first", df["campaign_id"].max(): "aaa-second"}})
    assert campaign_order(renamed, "gpu-node") == ["zzz-first", "aaa-second"]


def test_trend_table_holds_campaign_medians():
    df = history(seed=13, campaigns=4)
    table = trend_table(df, "gpu-node")
    assert list(table.index) == campaign_order(df, "gpu-node")
    assert list(table.columns) == ["start", "cnn", "mobilenet", "resnet"]
    assert table.shape == (4, 4)
    first = table.index[0]
    assert table.loc[first, "start"] == pd.Timestamp("2024-03-01 02:00", tz="UTC")
    expected_J = df[(df["campaign_id"] == first) & (df["architecture"] == "resnet")]["total_energy_J"].median()
    assert table.loc[first, "resnet"] == expected_J


def test_plot_trend_writes_png(tmp_path):
    table = trend_table(history(seed=14, campaigns=4), "gpu-node")
    path = plot_trend(table, tmp_path / "plots" / "trend.png")
    assert path == tmp_path / "plots" / "trend.png"
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 1000


def test_raise_on_regression_names_architecture():
    result = check_regressions(history(seed=1, latest_increase={"mobilenet": 0.10}), "gpu-node")
    mobilenet = result["architectures"]["mobilenet"]
    with pytest.raises(EnergyRegression) as raised:
        raise_on_regression(result)
    message = str(raised.value)
    assert "mobilenet" in message and "cnn" not in message
    assert f"{mobilenet['relative_change'] * 100:+.1f} %" in message
    assert f"{mobilenet['latest_median']:.1f} J" in message
    assert f"{mobilenet['p_value']:.3g}" in message


def test_raise_on_regression_message_format():
    result = {"environment": "gpu-node", "latest_campaign": "nightly-7", "baseline_campaigns": ["nightly-6"],
              "settings": {"baseline_runs": 5, "threshold": 0.05, "alpha": 0.05, "metric": "total_energy_J"},
              "architectures": {"resnet": {"regression": True, "relative_change": 0.1004, "latest_median": 1100.4,
                                           "baseline_median": 1000.0, "p_value": 0.0001,
                                           "decided_by": "threshold and one-sided Mann-Whitney U test"}},
              "regressions": ["resnet"]}
    with pytest.raises(EnergyRegression, match=r"resnet: \+10\.0 % \(median 1100\.4 J vs baseline 1000\.0 J, p = 0\.0001"):
        raise_on_regression(result)


def test_raise_on_regression_is_silent_without_regressions():
    raise_on_regression(check_regressions(history(seed=3), "gpu-node"))
