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
            latest_increase: dict[str, float] | None = None, noise: float = NOISE_SD) -> pd.DataFrame:
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
                    "total_energy_J": rng.normal(mean_J, noise * mean_J),
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
        assert result["architectures"][architecture]["status"] == "no regression"
        assert abs(result["architectures"][architecture]["relative_change"]) < 0.05
    json.dumps(result, allow_nan=False)


def test_result_names_latest_and_baseline_campaigns():
    df = history(seed=2, campaigns=8)
    order = campaign_order(df, "gpu-node")
    result = check_regressions(df, "gpu-node", RegressionSettings(baseline_runs=3))
    assert result["latest_campaign"] == order[-1]
    assert result["baseline_campaigns"] == order[-4:-1]
    assert result["settings"] == {"baseline_runs": 3, "threshold": 0.05, "alpha": 0.05, "min_runs": 5,
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
    assert {r["status"] for r in result["architectures"].values()} == {"no regression"}


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


def test_a_single_repetition_is_inconclusive_and_says_what_would_decide():
    df = history(seed=5, repetitions=1, latest_increase={"resnet": 0.30})
    result = check_regressions(df, "gpu-node", RegressionSettings())
    resnet = result["architectures"]["resnet"]
    assert resnet["status"] == "inconclusive" and resnet["regression"] is False and resnet["p_value"] is None
    assert resnet["decided_by"].startswith("needs 4 more latest repetition(s)")
    assert "1 latest and 5 baseline run(s)" in resnet["decided_by"]
    assert result["regressions"] == [] and "resnet" in result["inconclusive"]
    raise_on_regression(result)  # inconclusive never fails a DAG run


def test_an_interval_straddling_the_threshold_is_inconclusive():
    # +5 % exactly, 2 % noise, 5 runs: the interval spans the 5 % threshold.
    df = history(seed=6, campaigns=3, latest_increase={"cnn": 0.05})
    cnn = check_regressions(df, "gpu-node", RegressionSettings())["architectures"]["cnn"]
    assert cnn["status"] == "inconclusive"
    low, high = cnn["ratio_interval"]
    assert low < 1.05 < high
    assert "straddles the threshold +5 %" in cnn["decided_by"] and "more repetition" in cnn["decided_by"]


@pytest.mark.parametrize("repetitions", [1, 5, 30])
@pytest.mark.parametrize("noise", [0.02, 0.05, 0.10])
def test_campaigns_from_one_distribution_never_give_regression(repetitions, noise):
    """Thirty histories without any change, at realistic run-to-run noise (2-10 % of the mean)."""
    verdicts = [r["status"] for seed in range(30)
                for r in check_regressions(history(seed=1000 + seed, campaigns=3, repetitions=repetitions,
                                                   noise=noise), "gpu-node")["architectures"].values()]
    assert "regression" not in verdicts
    if repetitions == 1:
        assert set(verdicts) == {"inconclusive"}


def test_a_fifteen_percent_shift_with_ten_runs_and_two_percent_noise_is_a_regression():
    df = history(seed=21, campaigns=2, repetitions=10, latest_increase={"cnn": 0.15})
    result = check_regressions(df, "gpu-node", RegressionSettings(baseline_runs=1))
    cnn = result["architectures"]["cnn"]
    assert cnn["status"] == "regression" and result["regressions"] == ["cnn"]
    assert cnn["ratio_interval"][0] > 1.05 and cnn["p_value"] < 0.05
    assert "above the threshold +5 %" in cnn["decided_by"]


def test_runs_too_few_for_any_interval_are_inconclusive_even_when_min_runs_allows():
    # 3 latest vs 3 baseline runs: the rank statistic's smallest tail is 1/C(6, 3) = 0.05, above ALPHA / 3.
    df = history(seed=6, campaigns=2, repetitions=3, latest_increase={"cnn": 0.30})
    cnn = check_regressions(df, "gpu-node", RegressionSettings(min_runs=3))["architectures"]["cnn"]
    assert cnn["status"] == "inconclusive" and cnn["ratio_interval"] is None
    assert "too few for an interval at level 0.0167" in cnn["decided_by"]
    # One architecture alone keeps the whole ALPHA: then 3 against 3 can decide.
    alone = df[df["architecture"] == "cnn"]
    cnn = check_regressions(alone, "gpu-node", RegressionSettings(min_runs=3))["architectures"]["cnn"]
    assert cnn["status"] == "regression" and cnn["ratio_interval"][0] > 1.05


def test_the_rank_interval_matches_its_definition():
    from ect.analysis.regression import _rank_sum_cdf, ratio_interval
    # U's null distribution for 2 vs 2: 0, 1, 2, 2, 3, 4 over 6 arrangements.
    assert list(_rank_sum_cdf(2, 2) * 6) == pytest.approx([1, 2, 4, 5, 6])
    from scipy import stats
    x, y = np.array([3.0, 5, 8, 9, 12]), np.array([1.0, 2, 4, 6, 7, 10, 11])
    test = stats.mannwhitneyu(x, y, alternative="greater", method="exact")
    assert test.pvalue == pytest.approx(1 - _rank_sum_cdf(5, 7)[int(test.statistic) - 1], rel=1e-12)
    latest, baseline = np.array([110.0, 111, 112, 113, 114]), np.array([100.0, 101, 102, 103, 104])
    low, high = ratio_interval(latest, baseline, 0.05)
    ratios = np.sort(np.divide.outer(latest, baseline).ravel())
    assert (low, high) == (pytest.approx(ratios[4]), pytest.approx(ratios[-5]))  # P(U <= 4) = 12/252 <= 0.05


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
    assert result["architectures"]["cnn"]["status"] == "no regression"


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
    assert f"{mobilenet['latest_median'] / 1000:.4g} kJ" in message
    assert "interval of the change" in message and "above the threshold +5 %" in message


def test_raise_on_regression_message_format():
    result = {"environment": "gpu-node", "latest_campaign": "nightly-7", "baseline_campaigns": ["nightly-6"],
              "settings": {"baseline_runs": 5, "threshold": 0.05, "alpha": 0.05, "metric": "total_energy_J"},
              "architectures": {"resnet": {"regression": True, "relative_change": 0.1004, "latest_median": 1100.4,
                                           "baseline_median": 1000.0, "p_value": 0.0001,
                                           "decided_by": "90 % interval of the change +8.0 % to +12.0 %"}},
              "regressions": ["resnet"]}
    with pytest.raises(EnergyRegression, match=r"resnet: \+10\.0 % \(median 1\.1 kJ vs baseline 1 kJ; 90 % interval"):
        raise_on_regression(result)


def test_a_profile_that_does_not_fail_runs_only_warns(caplog):
    result = {**check_regressions(history(seed=1, latest_increase={"mobilenet": 0.10}), "gpu-node"),
              "fail_run": False}
    assert result["regressions"] == ["mobilenet"]
    raise_on_regression(result)
    assert any("mobilenet" in r.message and "FAIL_RUN is false" in r.message for r in caplog.records)


def test_raise_on_regression_is_silent_without_regressions():
    raise_on_regression(check_regressions(history(seed=3), "gpu-node"))


def with_backends(df: pd.DataFrame, jax_from: int, jax_factor: float = 1.0, jax_latest_increase: float = 0.0):
    """The history's runs on TensorFlow, and from campaign `jax_from` on the same runs also on JAX (run ids
    <campaign>-jax-rep<KK>), jax_factor times the energy, and jax_latest_increase more in the last campaign."""
    order = campaign_order(df, "gpu-node")
    jax = df[df["campaign_id"].isin(order[jax_from:])].copy()
    jax["backend"] = "jax"
    jax["run_id"] = jax["campaign_id"] + "-jax-rep" + jax["repetition"].map("{:02d}".format)
    jax["total_energy_J"] *= jax_factor * np.where(jax["campaign_id"] == order[-1], 1 + jax_latest_increase, 1.0)
    return pd.concat([df.assign(backend="tensorflow"), jax], ignore_index=True)


def test_jax_runs_are_never_compared_with_a_tensorflow_baseline():
    # JAX ran only in the latest campaign, at 1.5 times TensorFlow's energy: no baseline for it, never a regression.
    df = with_backends(history(seed=30), jax_from=-1, jax_factor=1.5)
    result = check_regressions(df, "gpu-node")
    assert set(result["architectures"]) == {f"{a}·{b}" for a in MEANS_J for b in ("jax", "tensorflow")}
    for architecture in MEANS_J:
        jax, tensorflow = (result["architectures"][f"{architecture}·{b}"] for b in ("jax", "tensorflow"))
        assert (jax["architecture"], jax["backend"], jax["status"]) == (architecture, "jax", "no baseline")
        assert jax["decided_by"] == "no baseline: no earlier campaign ran this architecture on jax"
        assert jax["latest_runs"] == 5 and jax["baseline_runs"] == 0
        assert (tensorflow["backend"], tensorflow["status"]) == ("tensorflow", "no regression")
        assert tensorflow["latest_runs"] == 5 and tensorflow["baseline_runs"] == 25  # TensorFlow's runs only
    assert result["regressions"] == []
    json.dumps(result, allow_nan=False)


def test_each_backend_is_checked_against_its_own_baseline():
    # JAX costs 1.5 times TensorFlow's energy every night (no regression), and 10 % more in the latest night on cnn.
    df = with_backends(history(seed=31), jax_from=0, jax_factor=1.5)
    latest = df["campaign_id"] == campaign_order(df, "gpu-node")[-1]
    df.loc[latest & (df["backend"] == "jax") & (df["architecture"] == "cnn"), "total_energy_J"] *= 1.10
    result = check_regressions(df, "gpu-node")
    assert result["regressions"] == ["cnn·jax"]
    assert result["architectures"]["cnn·jax"]["relative_change"] == pytest.approx(0.10, abs=0.03)
    assert result["architectures"]["cnn·tensorflow"]["status"] == "no regression"
    assert all(abs(v["relative_change"]) < 0.05 for k, v in result["architectures"].items() if k != "cnn·jax")
    with pytest.raises(EnergyRegression, match=r"cnn·jax: \+"):
        raise_on_regression(result)
    table = trend_table(df, "gpu-node")
    assert list(table.columns) == ["start"] + sorted(f"{a}·{b}" for a in MEANS_J for b in ("jax", "tensorflow"))
    assert table["cnn·jax"].iloc[0] == pytest.approx(1.5 * table["cnn·tensorflow"].iloc[0], rel=0.05)


def test_tensorflow_only_histories_keep_their_keys_with_or_without_the_column():
    df = history(seed=32, latest_increase={"cnn": 0.10})
    for runs in (df, df.assign(backend="tensorflow")):
        result = check_regressions(runs, "gpu-node")
        assert list(result["architectures"]) == ["cnn", "mobilenet", "resnet"] and result["regressions"] == ["cnn"]
        assert result["architectures"]["cnn"]["architecture"] == "cnn"
        assert result["architectures"]["cnn"]["backend"] == "tensorflow"
        assert list(trend_table(runs, "gpu-node").columns) == ["start", "cnn", "mobilenet", "resnet"]
    jax_only = check_regressions(df.assign(backend="jax"), "gpu-node")
    assert jax_only["regressions"] == ["cnn·jax"]  # another backend than TensorFlow is always named


def test_compare_campaigns_compares_each_backend_with_itself():
    from ect.analysis.regression import campaign_key, compare_campaigns

    nights = history(seed=33, campaigns=2, repetitions=10)
    nights["campaign_id"] = nights["campaign_id"].map(campaign_key)  # as run folders name them
    df = with_backends(nights, jax_from=0, jax_factor=1.5, jax_latest_increase=0.15)
    first, second = campaign_order(df, "gpu-node")
    result = compare_campaigns(df, first, second)
    verdicts = {(r["architecture"], r["backend"]): r["status"] for r in result["comparisons"]}
    assert verdicts == {**{(a, "jax"): "regression" for a in MEANS_J}, **{(a, "tensorflow"): "no regression"
                                                                          for a in MEANS_J}}
    assert all(r["environment"] == "gpu-node" for r in result["comparisons"])
    # A campaign on TensorFlow against one on JAX: nothing in common, nothing compared.
    apart = df[((df["campaign_id"] == first) & (df["backend"] == "tensorflow"))
               | ((df["campaign_id"] == second) & (df["backend"] == "jax"))]
    result = compare_campaigns(apart, first, second)
    assert result["comparisons"] == []
    assert result["only_in_first"] == [["gpu-node", a, "tensorflow"] for a in sorted(MEANS_J)]
    assert result["only_in_second"] == [["gpu-node", a, "jax"] for a in sorted(MEANS_J)]
