"""The paper's statistics: equal to scipy where scipy has them, to hand arithmetic where it does not."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from ect.analysis.stats import (adjust_p_values, analyze, cliffs_by_pair, cliffs_delta, cliffs_magnitude,
                                compare_groups, dunn, energy_reduction_table, kruskal_wallis, levene,
                                pareto_front, remove_outliers, shapiro_by_group)


def runs(values_by_group: dict, by: str = "architecture", metric: str = "total_energy_J") -> pd.DataFrame:
    """A processed dataset from {group: [metric values]}: one row per run, the other key fixed."""
    other = "environment" if by == "architecture" else "architecture"
    rows = []
    for group, values in values_by_group.items():
        for repetition, value in enumerate(values):
            rows.append({by: group, other: "env-a" if other == "environment" else "arch-a",
                         "run_id": f"{group}-rep{repetition:02d}", "campaign_id": group, metric: value})
    return pd.DataFrame(rows)


def lognormal_runs(medians_J: list[float], n: int, seed: int, sigma: float = 0.3) -> pd.DataFrame:
    """A synthetic processed dataset: one architecture per median, n runs each, lognormal energies."""
    rng = np.random.default_rng(seed)
    rows = []
    for index, median_J in enumerate(medians_J):
        energies_J = rng.lognormal(math.log(median_J), sigma, n)
        for repetition, energy_J in enumerate(energies_J):
            rows.append({"environment": "local", "architecture": f"arch{index}",
                         "run_id": f"arch{index}-rep{repetition:02d}", "campaign_id": f"arch{index}",
                         "total_energy_J": energy_J, "energy_per_image_J": energy_J / 1000,
                         "gpu_utilization_mean_pct": rng.uniform(40, 90), "val_f1": rng.uniform(0.7, 0.9)})
    return pd.DataFrame(rows)


GROUPS = {"a": [3.1, 2.4, 5.6, 4.0, 3.3, 2.9], "b": [6.2, 7.9, 5.1, 6.6, 8.8], "c": [2.0, 2.2, 9.5, 3.1]}


def test_shapiro_equals_scipy():
    result = shapiro_by_group(runs(GROUPS), "total_energy_J", "architecture", alpha=0.05)
    assert list(result) == ["a", "b", "c"]
    for name, values in GROUPS.items():
        w, p = scipy_stats.shapiro(values)
        assert result[name] == {"n": len(values), "W": w, "p": p, "normal": p >= 0.05}


def test_shapiro_small_and_constant_groups_say_why():
    result = shapiro_by_group(runs({"two": [1.0, 2.0], "flat": [5.0, 5.0, 5.0]}), "total_energy_J", "architecture")
    assert result["two"] == {"n": 2, "W": None, "p": None, "normal": None, "reason": "not tested: n = 2 (needs >= 3)"}
    assert result["flat"]["W"] is None and result["flat"]["reason"] == "not tested: all values are equal"


def test_levene_equals_scipy_median_centred():
    statistic, p = scipy_stats.levene(*GROUPS.values(), center="median")
    assert levene(runs(GROUPS), "total_energy_J", "architecture") == {
        "statistic": statistic, "p": p, "equal_variances": p >= 0.05}


def test_kruskal_equals_scipy_with_eta_squared():
    h, p = scipy_stats.kruskal(*GROUPS.values())
    result = kruskal_wallis(runs(GROUPS), "total_energy_J", "architecture")
    n, k = 15, 3
    assert result == {"H": h, "p": p, "k": k, "n": n, "eta_squared": (h - k + 1) / (n - k), "significant": p < 0.05}


# Dunn by hand. Values a = [1, 2, 2], b = [2, 3], c = [4, 4]; pooled (N = 7): 1 2 2 2 3 4 4.
# Average ranks: 1 -> 1, the three 2s -> (2+3+4)/3 = 3, 3 -> 5, the two 4s -> (6+7)/2 = 6.5.
# Mean ranks: a = (1+3+3)/3 = 7/3, b = (3+5)/2 = 4, c = 6.5.
# Ties: t = 3 gives 27-3 = 24, t = 2 gives 8-2 = 6; sum 30.
# N(N+1)/12 - 30/(12(N-1)) = 56/12 - 30/72 = 14/3 - 5/12 = 51/12 = 4.25.
# sigma_ab = sqrt(4.25 (1/3 + 1/2)), sigma_ac = the same, sigma_bc = sqrt(4.25 (1/2 + 1/2)).
# Two-sided p = 2 (1 - Phi(|z|)) = erfc(|z| / sqrt 2).
# Pooled ranks: 1 -> 1, the three 2s -> 3, the 3s -> 5.5, the 4s -> 7.5, 5 -> 9; mean ranks a 7/3, b 14/3, c 8.
# Rank variance with ties: 9 * 10 / 12 - (24 + 6 + 6) / (12 * 8) = 7.125.
TIES = {"a": [1, 2, 2], "b": [2, 3, 3], "c": [4, 4, 5]}
Z_AB = (7 / 3 - 14 / 3) / math.sqrt(7.125 * (1 / 3 + 1 / 3))
Z_AC = (7 / 3 - 8) / math.sqrt(7.125 * (1 / 3 + 1 / 3))
Z_BC = (14 / 3 - 8) / math.sqrt(7.125 * (1 / 3 + 1 / 3))


def two_sided_p(z):
    return math.erfc(abs(z) / math.sqrt(2))


def test_dunn_with_ties_equals_hand_computation():
    result = dunn(runs(TIES), "total_energy_J", "architecture", correction="none")
    assert [(pair["a"], pair["b"]) for pair in result] == [("a", "b"), ("a", "c"), ("b", "c")]
    for pair, z in zip(result, [Z_AB, Z_AC, Z_BC]):
        assert pair["z"] == pytest.approx(z, rel=1e-12)
        assert pair["p"] == pytest.approx(two_sided_p(z), rel=1e-9)
        assert pair["p_adjusted"] == pair["p"]
    assert result[0]["z"] == pytest.approx(-1.070607, abs=1e-6)


def test_dunn_holm_and_bonferroni_by_hand():
    p_ab, p_ac, p_bc = (two_sided_p(z) for z in (Z_AB, Z_AC, Z_BC))
    assert p_ac < p_bc < p_ab  # about 0.0093, 0.126, 0.284
    # Holm: sorted p times (3, 2, 1), then a running maximum (ab's 1 x 0.284 stays above bc's 2 x 0.126).
    holm = {(pair["a"], pair["b"]): pair["p_adjusted"] for pair in dunn(runs(TIES), "total_energy_J", "architecture")}
    assert holm[("a", "c")] == pytest.approx(3 * p_ac)
    assert holm[("b", "c")] == pytest.approx(2 * p_bc)
    assert holm[("a", "b")] == pytest.approx(max(p_ab, 2 * p_bc))
    bonferroni = dunn(runs(TIES), "total_energy_J", "architecture", correction="bonferroni")
    for pair, p in zip(bonferroni, (p_ab, p_ac, p_bc)):
        assert pair["p_adjusted"] == pytest.approx(min(1.0, 3 * p))
        assert pair["significant"] is (pair["p_adjusted"] < 0.05)


def test_adjust_p_values_by_hand():
    # Holm, m = 4: sorted 0.005 x 4 = 0.02, 0.01 x 3 = 0.03, 0.03 x 2 = 0.06, 0.04 x 1 = 0.04 -> max 0.06.
    assert adjust_p_values([0.01, 0.04, 0.03, 0.005], "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust_p_values([0.5, 0.6], "holm") == [1.0, 1.0]
    assert adjust_p_values([0.3, 0.6, 0.01], "bonferroni") == pytest.approx([0.9, 1.0, 0.03])
    assert adjust_p_values([0.3, 0.6], "none") == [0.3, 0.6]
    with pytest.raises(ValueError, match="holm"):
        adjust_p_values([0.1], "fdr")


def test_cliffs_delta_known_cases():
    assert cliffs_delta([5, 6, 7], [1, 2]) == {"delta": 1.0, "magnitude": "large"}
    assert cliffs_delta([1, 2], [5, 6, 7]) == {"delta": -1.0, "magnitude": "large"}
    assert cliffs_delta([1, 2, 3], [1, 2, 3]) == {"delta": 0.0, "magnitude": "negligible"}
    # a = [2, 5, 7], b = [1, 5]: 2 > 1, 2 < 5; 5 > 1, 5 = 5; 7 > 1, 7 > 5 -> (4 - 1) / 6 = 0.5.
    assert cliffs_delta([2, 5, 7], [1, 5]) == {"delta": 0.5, "magnitude": "large"}


def test_cliffs_delta_equals_brute_force_with_ties():
    rng = np.random.default_rng(7)
    a, b = rng.integers(0, 6, 40), rng.integers(0, 6, 30)
    brute = sum(np.sign(x - y) for x in a for y in b) / (len(a) * len(b))
    assert cliffs_delta(a, b)["delta"] == pytest.approx(brute, abs=1e-15)


def test_cliffs_magnitude_thresholds():
    assert cliffs_magnitude(0.1469) == "negligible"
    assert cliffs_magnitude(0.147) == "small"
    assert cliffs_magnitude(-0.3299) == "small"
    assert cliffs_magnitude(0.33) == "medium"
    assert cliffs_magnitude(-0.4739) == "medium"
    assert cliffs_magnitude(0.474) == "large"


def test_cliffs_by_pair_covers_every_pair():
    pairs = cliffs_by_pair(runs(GROUPS), "total_energy_J", "architecture")
    assert [(pair["a"], pair["b"]) for pair in pairs] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert pairs[0]["delta"] == cliffs_delta(GROUPS["a"], GROUPS["b"])["delta"]


def test_a_large_difference_is_found():
    result = compare_groups(lognormal_runs([100e3, 200e3, 400e3], n=10, seed=1), "total_energy_J", "architecture")
    assert result["kruskal_wallis"]["significant"] is True
    extreme = {(pair["a"], pair["b"]): pair for pair in result["dunn"]}[("arch0", "arch2")]
    assert extreme["significant"] is True and extreme["z"] < 0
    cliffs = {(pair["a"], pair["b"]): pair for pair in result["cliffs_delta"]}[("arch0", "arch2")]
    assert cliffs["magnitude"] == "large" and cliffs["delta"] < -0.474
    assert result["groups"]["arch0"]["n"] == 10


def test_one_distribution_is_rarely_called_different():
    # Under the null the test rejects with probability alpha = 0.05 per draw. Over 20 fixed seeds
    # the expected count is 1; demanding at most 3 rejections (rate <= 0.15) keeps the test about
    # the method, not about a lucky seed (P(>= 4 of 20) is under 2 % for a correct test).
    rejections = [compare_groups(lognormal_runs([200e3] * 3, n=10, seed=seed), "total_energy_J",
                                 "architecture")["kruskal_wallis"]["significant"] for seed in range(20)]
    assert sum(rejections) / len(rejections) <= 0.15


def cells(medians: dict) -> pd.DataFrame:
    """Three runs per (architecture, environment) cell with the given medians of energy and F1."""
    rows = []
    for (architecture, environment), (energy_J, f1) in medians.items():
        for offset in (-1.0, 0.0, 1.0):
            rows.append({"architecture": architecture, "environment": environment,
                         "run_id": f"{architecture}-{environment}-{offset}",
                         "total_energy_J": energy_J + offset, "val_f1": f1 + offset / 100})
    return pd.DataFrame(rows)


def test_energy_reduction_table_by_hand():
    table = energy_reduction_table(cells({("vgg", "local"): (100, 0.9), ("vgg", "cloud"): (60, 0.9),
                                          ("mobilenet", "local"): (25, 0.8)}))
    assert table["largest"] == {"from": "vgg@local", "to": "mobilenet@local", "from_median_J": 100.0,
                                "to_median_J": 25.0, "reduction": 0.75}
    assert [(pair["from"], pair["to"]) for pair in table["pairs"]] == [
        ("vgg@local", "mobilenet@local"), ("vgg@cloud", "mobilenet@local"), ("vgg@local", "vgg@cloud")]
    assert [pair["reduction"] for pair in table["pairs"]] == pytest.approx([0.75, 1 - 25 / 60, 0.4])


def test_pareto_front_drops_dominated_and_keeps_ties():
    front = pareto_front(cells({
        ("mobilenet", "local"): (25, 0.80),
        ("resnet", "local"): (60, 0.90),
        ("resnet", "cloud"): (60, 0.90),    # a tie with resnet@local: neither dominates the other
        ("vgg", "local"): (100, 0.90),      # dominated: more energy, same F1
        ("xception", "local"): (70, 0.85),  # dominated by resnet
        ("nasnet", "local"): (120, 0.95),
    }))
    assert [item["group"] for item in front] == ["mobilenet@local", "resnet@cloud", "resnet@local", "nasnet@local"]
    assert front[0] == {"group": "mobilenet@local", "architecture": "mobilenet", "environment": "local",
                        "median_total_energy_J": 25.0, "median_val_f1": 0.80}


def test_remove_outliers_reports_the_injected_run():
    df = runs({"a": [100, 102, 98, 101, 99, 500], "b": [10, 11, 12, 13]})
    kept, removed = remove_outliers(df, "total_energy_J", "architecture")
    assert len(kept) == len(df) - 1 and 500 not in kept["total_energy_J"].tolist()
    assert len(removed) == 1
    assert removed[0]["run_id"] == "a-rep05" and removed[0]["value"] == 500.0
    assert removed[0]["group"] == "a" and removed[0]["reason"] == "above Q3 + 1.5 IQR"
    assert removed[0]["upper_fence"] < 500
    json.dumps(removed, allow_nan=False)


def test_analyze_is_json_and_says_what_it_skipped():
    df = pd.concat([lognormal_runs([100e3, 200e3, 400e3], n=6, seed=3).assign(environment="local"),
                    lognormal_runs([150e3, 300e3], n=6, seed=4).assign(environment="cloud"),
                    lognormal_runs([100e3], n=3, seed=5).assign(environment="edge")], ignore_index=True)
    df.loc[df["environment"] == "cloud", "gpu_utilization_mean_pct"] = np.nan
    arch0_local = (df["architecture"] == "arch0") & (df["environment"] == "local")
    df.loc[arch0_local, "total_energy_J"] = [1e9, 101e3, 99e3, 102e3, 98e3, 100e3]  # one injected outlier
    result = analyze(df)
    json.dumps(result, allow_nan=False)
    assert set(result) >= {"by_environment", "by_architecture", "energy_reduction", "pareto_front", "outliers"}
    assert result["outliers"] == {"enabled": False, "k": 1.5, "removed": []}
    local = result["by_environment"]["local"]["metrics"]
    assert set(local) == {"total_energy_J", "energy_per_image_J", "gpu_utilization_mean_pct", "val_f1"}
    assert set(local["total_energy_J"]) >= {"groups", "shapiro", "levene", "kruskal_wallis", "dunn", "cliffs_delta"}
    assert "skipped" in result["by_environment"]["edge"]
    skipped = result["by_environment"]["cloud"]["metrics"]["gpu_utilization_mean_pct"]["skipped"]
    assert skipped == "no value measured in these runs"
    # Medians: the injected 1e9 J run barely moves arch0@local; the 400 kJ cell stays the costliest.
    assert result["energy_reduction"]["largest"]["from"] == "arch2@local"

    cleaned = analyze(df, outliers=True)
    json.dumps(cleaned, allow_nan=False)
    assert cleaned["outliers"]["enabled"] is True
    removed = [(item["run_id"], item["environment"], item["metric"]) for item in cleaned["outliers"]["removed"]]
    assert ("arch0-rep00", "local", "total_energy_J") in removed
    assert cleaned["by_environment"]["local"]["metrics"]["total_energy_J"]["groups"]["arch0"]["n"] == 5
    # The run's other metrics stay in their own tests.
    assert cleaned["by_environment"]["local"]["metrics"]["val_f1"]["groups"]["arch0"]["n"] == 6


def test_models_that_predict_one_class_stay_out_of_the_pareto_front_and_the_f1_tests():
    df = lognormal_runs([100e3, 200e3, 400e3], n=5, seed=6).assign(val_accuracy=0.8, val_precision=0.8,
                                                                   val_recall=0.8)
    # arch0, the cheapest, calls every image positive in all its runs: accuracy 0.5, F1 0.667, above the others.
    arch0 = df["architecture"] == "arch0"
    df.loc[arch0, ["val_accuracy", "val_precision", "val_recall", "val_f1"]] = [0.5, 0.5, 1.0, 2 / 3]
    # One run of arch1 finds no positive image: recall 0, precision 0.
    df.loc[df["run_id"] == "arch1-rep02", ["val_precision", "val_recall", "val_f1"]] = [0.0, 0.0, 0.0]
    df["val_f1"] = df["val_f1"].where(arch0, 0.6)
    df.loc[df["run_id"] == "arch1-rep02", "val_f1"] = 0.0

    assert [g["group"] for g in pareto_front(df)][0] == "arch0@local"  # what the one-class runs did before
    result = analyze(df)
    json.dumps(result, allow_nan=False)
    flagged = {(m["architecture"], m["run_id"]): m["reason"] for m in result["one_class_models"]}
    assert set(flagged) == {("arch0", f"arch0-rep{k:02d}") for k in range(5)} | {("arch1", "arch1-rep02")}
    assert flagged[("arch0", "arch0-rep00")].endswith("every validation image called positive")
    assert flagged[("arch1", "arch1-rep02")].endswith("every positive validation image called negative")
    assert "arch0" not in {g["architecture"] for g in result["pareto_front"]}
    f1 = result["by_environment"]["local"]["metrics"]["val_f1"]
    assert set(f1["groups"]) == {"arch1", "arch2"} and f1["groups"]["arch1"]["n"] == 4
    # Their energy is measured as any other's: arch0 stays the cheapest.
    energy = result["by_environment"]["local"]["metrics"]["total_energy_J"]["groups"]
    assert energy["arch0"]["n"] == 5 and energy["arch1"]["n"] == 5
    assert result["energy_reduction"]["largest"]["to"] == "arch0@local"
    assert analyze(df.drop(columns=["val_precision", "val_recall"]))["one_class_models"] == []  # nothing to judge


def test_degenerate_inputs_do_not_crash_and_say_why():
    single = compare_groups(runs({"only": [1.0, 2.0, 3.0]}), "total_energy_J", "architecture")
    assert single["kruskal_wallis"]["reason"] == "not tested: fewer than 2 groups"
    assert single["levene"]["reason"] == "not tested: fewer than 2 groups" and single["dunn"] == []

    tiny = compare_groups(runs({"one": [5.0], "two": [1.0, 2.0]}), "total_energy_J", "architecture")
    assert tiny["shapiro"]["one"]["reason"] == "not tested: n = 1 (needs >= 3)"
    assert tiny["kruskal_wallis"]["p"] is None and tiny["kruskal_wallis"]["H"] is None
    assert tiny["kruskal_wallis"]["reason"] == "not tested: n = 1 to 2 per group (needs >= 3)"
    assert tiny["levene"]["p"] is None and tiny["levene"]["reason"] == tiny["kruskal_wallis"]["reason"]
    assert tiny["cliffs_delta"][0]["delta"] is None and tiny["cliffs_delta"][0]["magnitude"] is None
    assert tiny["dunn"][0]["p"] is None and tiny["dunn"][0]["reason"].startswith("not tested: n = 1 to 2")

    flat = compare_groups(runs({"a": [7.0, 7.0, 7.0], "b": [7.0, 7.0, 7.0]}), "total_energy_J", "architecture")
    assert flat["kruskal_wallis"]["reason"] == "not tested: all values are equal" and flat["kruskal_wallis"]["p"] is None
    assert flat["levene"]["statistic"] is None and "spread" in flat["levene"]["reason"]
    assert flat["dunn"][0]["reason"] == "not tested: all values are equal"
    assert flat["cliffs_delta"][0] == {"a": "a", "b": "b", "delta": 0.0, "magnitude": "negligible"}
    for result in (single, tiny, flat):
        json.dumps(result, allow_nan=False)

    assert energy_reduction_table(cells({("vgg", "local"): (100, 0.9)}))["largest"] is None
    assert pareto_front(cells({("vgg", "local"): (100, 0.9)}))[0]["group"] == "vgg@local"


@pytest.mark.parametrize("n", [1, 2, 3])
def test_no_test_runs_where_its_preconditions_fail_and_no_field_is_left_empty(n):
    """Three architectures of n runs each, clearly apart: at n = 1 and 2 nothing is tested and every result says
    why; at n = 3 every test runs and fills its fields."""
    rng = np.random.default_rng(n)
    groups = {name: list(base + rng.normal(0, 1, n)) for name, base in (("a", 100.0), ("b", 120.0), ("c", 140.0))}
    result = compare_groups(runs(groups), "total_energy_J", "architecture")
    tests = [result["levene"], result["kruskal_wallis"], *result["dunn"], *result["cliffs_delta"]]
    if n < 3:
        for test in tests:
            assert test["reason"] == f"not tested: n = {n} per group (needs >= 3)", test
            assert all(test[key] is None for key in ("p", "statistic", "H", "z", "delta", "magnitude") if key in test)
    else:
        for test in tests:
            assert not test.get("reason"), test
            assert all(value is not None for value in test.values()), test
        assert result["kruskal_wallis"]["eta_squared"] >= 0
        assert {pair["magnitude"] for pair in result["cliffs_delta"]} == {"large"}


def test_eta_squared_is_never_negative_and_says_why():
    # Three groups that overlap completely: H is below k - 1 and the raw estimate is negative.
    same = {"a": [1.0, 4.0, 7.0], "b": [2.0, 5.0, 8.0], "c": [3.0, 6.0, 9.0]}
    result = kruskal_wallis(runs(same), "total_energy_J", "architecture")
    assert result["H"] < 2 and result["eta_squared"] == 0.0
    assert "no effect beyond chance" in result["eta_squared_note"] and "raw estimate -" in result["eta_squared_note"]



def two_backends(jax_factor: float, seed: int, n: int = 8) -> pd.DataFrame:
    """Runs of two architectures on one environment, each trained on TensorFlow and JAX (the same repetitions once
    per backend, different run ids); JAX's energy is TensorFlow's median times jax_factor, the same noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for architecture, median_J, f1 in (("vgg16", 400e3, 0.9), ("mobilenet_v2", 100e3, 0.8)):
        for backend, factor in (("tensorflow", 1.0), ("jax", jax_factor)):
            for repetition in range(n):
                energy_J = median_J * factor * rng.lognormal(0, 0.05)
                rows.append({"environment": "local", "architecture": architecture, "backend": backend,
                             "run_id": f"night-{backend}-rep{repetition:02d}", "campaign_id": "night",
                             "total_energy_J": energy_J, "energy_per_image_J": energy_J / 1e4,
                             "gpu_utilization_mean_pct": rng.uniform(40, 90),
                             "val_f1": f1 + (0.02 if backend == "jax" else 0) + rng.normal(0, 0.002)})
    return pd.DataFrame(rows)


def test_a_backend_that_uses_clearly_more_energy_is_found_per_architecture():
    result = analyze(two_backends(jax_factor=1.5, seed=1))
    json.dumps(result, allow_nan=False)
    assert result["backends"] == ["jax", "tensorflow"]
    assert set(result["by_backend"]) == {"mobilenet_v2@local", "vgg16@local"}
    for cell in ("mobilenet_v2@local", "vgg16@local"):
        energy = result["by_backend"][cell]["metrics"]["total_energy_J"]
        assert result["by_backend"][cell]["across"] == "backend"
        assert energy["kruskal_wallis"]["significant"] is True and energy["kruskal_wallis"]["p"] < 0.001
        (pair,) = energy["cliffs_delta"]
        assert (pair["a"], pair["b"], pair["delta"], pair["magnitude"]) == ("jax", "tensorflow", 1.0, "large")
        assert energy["groups"]["jax"]["median"] > 1.3 * energy["groups"]["tensorflow"]["median"]
    # Architectures and environments are compared within one backend, cells name the backend.
    assert set(result["by_environment"]) == {"local·jax", "local·tensorflow"}
    assert set(result["by_architecture"]) == {"mobilenet_v2·jax", "mobilenet_v2·tensorflow", "vgg16·jax",
                                              "vgg16·tensorflow"}
    assert set(result["by_environment"]["local·jax"]["metrics"]["total_energy_J"]["groups"]) == {"mobilenet_v2",
                                                                                               "vgg16"}
    largest = result["energy_reduction"]["largest"]
    assert (largest["from"], largest["to"]) == ("vgg16@local·jax", "mobilenet_v2@local·tensorflow")


def test_backends_that_use_the_same_energy_show_no_backend_effect():
    # The same distribution on both backends: over 20 seeds, no more rejections than chance allows (alpha = 0.05,
    # two cells per seed: 2 expected; P(>= 7 of 40) is under 1 % for a correct test).
    rejections = [entry["metrics"]["total_energy_J"]["kruskal_wallis"]["significant"]
                  for seed in range(20) for entry in analyze(two_backends(1.0, seed=100 + seed))["by_backend"].values()]
    assert sum(rejections) <= 6
    same = analyze(two_backends(1.0, seed=7))["by_backend"]["vgg16@local"]["metrics"]["total_energy_J"]
    assert same["cliffs_delta"][0]["magnitude"] != "large"


def test_the_pareto_front_is_computed_per_backend():
    df = two_backends(jax_factor=1.5, seed=2)
    result = analyze(df)
    fronts = result["pareto_front_by_backend"]
    assert set(fronts) == {"jax", "tensorflow"}
    for backend, front in fronts.items():
        # Within one backend mobilenet_v2 is cheaper and vgg16 better: both are on its front.
        assert [f["group"] for f in front] == [f"mobilenet_v2@local·{backend}", f"vgg16@local·{backend}"]
        assert {f["backend"] for f in front} == {backend}
        mine = df[(df["backend"] == backend) & (df["architecture"] == "vgg16")]
        assert front[1]["median_total_energy_J"] == mine["total_energy_J"].median()
    # Across backends, JAX's cells cost 1.5 times the energy for +0.02 F1: every cell is on the joint front.
    assert {f["group"] for f in result["pareto_front"]} == {"mobilenet_v2@local·tensorflow", "mobilenet_v2@local·jax",
                                                            "vgg16@local·tensorflow", "vgg16@local·jax"}
    assert pareto_front(df[df["backend"] == "tensorflow"])[0]["group"] == "mobilenet_v2@local"  # one backend: as before


def test_one_backend_leaves_the_statistics_as_they_were():
    """Runs of one backend (or a processed dataset from before backends were a choice, without the column) give the
    results of before: no backend effect, cells of architecture and environment."""
    df = lognormal_runs([100e3, 200e3], n=5, seed=8)
    before = analyze(df)
    assert before["backends"] == ["tensorflow"] and "by_backend" not in before
    assert "pareto_front_by_backend" not in before and set(before["by_environment"]) == {"local"}
    assert analyze(df.assign(backend="tensorflow")) == before
    jax = analyze(df.assign(backend="jax"))
    assert jax["backends"] == ["jax"] and {k: v for k, v in jax.items() if k != "backends"} == {
        k: v for k, v in before.items() if k != "backends"}
