"""The paper's statistics over the processed runs (one row per run, see README "Aggregation").

Normality (Shapiro-Wilk), equal variances (Levene, median-centred), differences between groups
(Kruskal-Wallis with eta squared, Dunn's post-hoc test with tie correction and Holm or Bonferroni
adjustment), effect sizes (Cliff's delta), the largest energy reduction between
(architecture, environment) cells, the energy/quality Pareto front and Tukey outlier removal.
Every result is a plain JSON-serialisable dict: floats and ints, None for undefined values.

The Keras backend is a factor beside environment and architecture where the runs used more than one: cells are then
(architecture, environment, backend), named "vgg16@local·jax", architectures and environments are compared within
one backend, the backend effect is tested per architecture within each environment, and the Pareto front is also
computed per backend. Runs without a backend (processed before backends were a choice) ran on TensorFlow.

Energies carry their uncertainty (README "Energy measurement", Uncertainty): a pair of groups whose medians differ by
no more than their uncertainties together is "within uncertainty", never significant, in the pairwise results
(Dunn, Cliff's delta, the energy-reduction table). Runs without an uncertainty (processed before it was recorded)
leave it unknown, and the results are as before.
"""

from __future__ import annotations

import math
from itertools import combinations, permutations

import numpy as np
import pandas as pd
from scipy import stats

from ect.backends import DEFAULT_BACKEND
from ect.quality import one_class_reason

By = str | list[str]

METRICS = ("total_energy_J", "energy_per_image_J", "gpu_utilization_mean_pct", "val_f1")
CELL = ["architecture", "environment"]
BACKEND = "backend"
CORRECTIONS = ("holm", "bonferroni", "none")
TUKEY_K = 1.5
MIN_TEST_N = 3  # values per group below which a test, a post-hoc comparison or an effect size says nothing
# Romano et al. (2006): upper bounds of |delta| for negligible, small and medium effects.
CLIFF_THRESHOLDS = ((0.147, "negligible"), (0.33, "small"), (0.474, "medium"))
# Each run's uncertainty of an energy metric: its own column of the processed runs (energy_per_image_J: the total's
# per image).
UNCERTAINTY_OF = {"total_energy_J": "total_energy_uncertainty_J", "gpu_energy_J": "gpu_energy_uncertainty_J",
                  "cpu_energy_J": "cpu_energy_uncertainty_J", "dram_energy_J": "dram_energy_uncertainty_J"}
BOUND = "_uncertainty"  # a working column: each run's uncertainty of the metric at hand


def _number(value) -> float | None:
    """A plain float, or None where the value is undefined (NaN or infinite)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _plain(value):
    """A table cell as a JSON value: numpy scalars become Python ones, NaN becomes None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def group_label(key, by: By | None = None) -> str:
    """A group's name: "vgg16", "vgg16@local" for (architecture, environment), and the backend last after "·" when
    `by` ends with it: "vgg16@local·jax", "local·jax"."""
    if not isinstance(key, tuple):
        return str(key)
    parts = [str(part) for part in key]
    if isinstance(by, list) and len(by) > 1 and by[-1] == BACKEND:
        return "@".join(parts[:-1]) + "·" + parts[-1]
    return "@".join(parts)


def with_backend(df: pd.DataFrame) -> pd.DataFrame:
    """The runs with a backend in every row: a run without one (a processed dataset from before backends were a
    choice, which has no such column) trained on TensorFlow."""
    if BACKEND in df.columns and df[BACKEND].notna().all():
        return df
    return df.assign(**{BACKEND: df[BACKEND].fillna(DEFAULT_BACKEND) if BACKEND in df.columns else DEFAULT_BACKEND})


def backends(df: pd.DataFrame) -> list[str]:
    """The backends the runs trained on, sorted."""
    return sorted(str(name) for name in with_backend(df)[BACKEND].unique())


def shows_backend(names) -> bool:
    """Whether tables and labels name the backend: where any run trained on another backend than TensorFlow (the
    only one before backends were a choice, so TensorFlow-only outputs stay as they were)."""
    return bool(set(names) - {DEFAULT_BACKEND})


def cell_columns(df: pd.DataFrame) -> list[str]:
    """The columns of a cell: (architecture, environment), and the backend where the runs used more than one."""
    return CELL + [BACKEND] if len(backends(df)) > 1 else CELL


def group_values(df: pd.DataFrame, metric: str, by: By) -> dict[str, np.ndarray]:
    """The metric's non-missing values per group, groups sorted; a list `by` gives "a@b" names ("a@b·backend")."""
    present = df.dropna(subset=[metric])
    return {group_label(key, by): group[metric].to_numpy(dtype=float)
            for key, group in present.groupby(by, sort=True)}


def uncertainty(df: pd.DataFrame, metric: str) -> pd.Series:
    """Each run's uncertainty of the metric, in the metric's unit; NaN where it is unknown (a metric without one, runs
    processed before uncertainties were recorded)."""
    total = UNCERTAINTY_OF["total_energy_J"]
    if metric in UNCERTAINTY_OF and UNCERTAINTY_OF[metric] in df.columns:
        return pd.to_numeric(df[UNCERTAINTY_OF[metric]], errors="coerce").astype(float)
    if metric == "energy_per_image_J" and {total, "images_seen"} <= set(df.columns):
        images = pd.to_numeric(df["images_seen"], errors="coerce").astype(float)
        return pd.to_numeric(df[total], errors="coerce").astype(float) / images.where(images > 0)
    return pd.Series(np.nan, index=df.index, dtype=float)


def median_uncertainty(bounds) -> float:
    """The uncertainty of a median of runs, each within its own bound of its true value: the largest bound (an order
    statistic moves no further than the furthest of the values it is taken from moves). NaN where any bound is unknown
    or there is none."""
    bounds = np.asarray(bounds, dtype=float)
    return float(bounds.max()) if len(bounds) and not np.isnan(bounds).any() else math.nan


def group_uncertainties(df: pd.DataFrame, metric: str, by: By) -> dict[str, float]:
    """median_uncertainty of each group of group_values (the same runs, the same names); NaN where unknown."""
    present = df.dropna(subset=[metric])
    present = present.assign(**{BOUND: uncertainty(present, metric).to_numpy()})
    return {group_label(key, by): median_uncertainty(group[BOUND]) for key, group in present.groupby(by, sort=True)}


def mark_within_uncertainty(pairs: list[dict], medians: dict[str, float], bounds: dict[str, float]) -> list[dict]:
    """Each pair {"a", "b", ...} of groups whose uncertainties are known gets "uncertainty" (the two added: each
    median may be off by its own in either direction) and "within_uncertainty" (the medians differ by no more): such a
    pair is never "significant" (False where a test said True). Pairs with an unknown uncertainty stay as they were."""
    for pair in pairs:
        combined = bounds.get(pair["a"], math.nan) + bounds.get(pair["b"], math.nan)
        if math.isnan(combined):
            continue
        pair["uncertainty"] = combined
        pair["within_uncertainty"] = bool(abs(medians[pair["a"]] - medians[pair["b"]]) <= combined)
        if pair["within_uncertainty"] and pair.get("significant"):
            pair["significant"] = False
    return pairs


def too_few(groups: dict[str, np.ndarray], minimum: int = MIN_TEST_N) -> str | None:
    """Why a test is not run for lack of values ("n = 1 per group (needs >= 3)"); None when every group has enough."""
    small = {name: len(values) for name, values in groups.items() if len(values) < minimum}
    if not small:
        return None
    if len(small) == len(groups):
        low, high = min(small.values()), max(small.values())
        sizes = f"n = {low}" if low == high else f"n = {low} to {high}"
        return f"not tested: {sizes} per group (needs >= {minimum})"
    named = ", ".join(f"{name} (n = {n})" for name, n in small.items())
    return f"not tested: too few values in {named} (needs >= {minimum} per group)"


def _check_correction(correction: str) -> None:
    if correction not in CORRECTIONS:
        raise ValueError(f"unknown p-value correction {correction!r}; use one of {', '.join(CORRECTIONS)}")


def adjust_p_values(p_values: list[float], correction: str = "holm") -> list[float]:
    """Family-wise adjusted p-values, in the input's order: Holm (step-down), Bonferroni or none."""
    _check_correction(correction)
    m = len(p_values)
    if correction == "none":
        return [float(p) for p in p_values]
    if correction == "bonferroni":
        return [min(1.0, float(p) * m) for p in p_values]
    adjusted = [0.0] * m
    running_max = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        # The running maximum keeps the adjusted p-values in the same order as the raw ones.
        running_max = max(running_max, min(1.0, (m - rank) * float(p_values[index])))
        adjusted[index] = running_max
    return adjusted


def shapiro_by_group(df: pd.DataFrame, metric: str, by: By, alpha: float = 0.05) -> dict[str, dict]:
    """Shapiro-Wilk per group; "normal" when p >= alpha."""
    results = {}
    for name, values in group_values(df, metric, by).items():
        n = len(values)
        if n < 3:
            results[name] = {"n": n, "W": None, "p": None, "normal": None,
                             "reason": f"not tested: n = {n} (needs >= 3)"}
        elif np.ptp(values) == 0:
            # scipy answers W = p = 1 with a warning; a constant sample says nothing about normality.
            results[name] = {"n": n, "W": None, "p": None, "normal": None,
                             "reason": "not tested: all values are equal"}
        else:
            w, p = stats.shapiro(values)
            results[name] = {"n": n, "W": float(w), "p": float(p), "normal": bool(p >= alpha)}
    return results


def levene(df: pd.DataFrame, metric: str, by: By, alpha: float = 0.05) -> dict:
    """Levene's test (Brown-Forsythe, centred on the median) for equal variances across groups."""
    groups = group_values(df, metric, by)
    if len(groups) < 2:
        return {"statistic": None, "p": None, "equal_variances": None, "reason": "not tested: fewer than 2 groups"}
    if reason := too_few(groups):
        return {"statistic": None, "p": None, "equal_variances": None, "reason": reason}
    with np.errstate(divide="ignore", invalid="ignore"):
        statistic, p = stats.levene(*groups.values(), center="median")
    if not math.isfinite(statistic):
        return {"statistic": None, "p": None, "equal_variances": None,
                "reason": "not tested: no spread around the median within any group"}
    return {"statistic": float(statistic), "p": float(p), "equal_variances": bool(p >= alpha)}


def kruskal_wallis(df: pd.DataFrame, metric: str, by: By, alpha: float = 0.05) -> dict:
    """Kruskal-Wallis H test with eta squared = (H - k + 1) / (n - k), 0 where H < k - 1 (no effect beyond chance;
    the raw estimate is kept with a note)."""
    groups = group_values(df, metric, by)
    k = len(groups)
    n = int(sum(len(values) for values in groups.values()))
    undefined = {"H": None, "p": None, "k": k, "n": n, "eta_squared": None, "significant": None}
    if k < 2:
        return {**undefined, "reason": "not tested: fewer than 2 groups"}
    if reason := too_few(groups):
        return {**undefined, "reason": reason}
    if np.ptp(np.concatenate(list(groups.values()))) == 0:
        return {**undefined, "reason": "not tested: all values are equal"}
    try:
        h, p = stats.kruskal(*groups.values())
    except ValueError as error:
        return {**undefined, "reason": f"not tested: {error}"}
    result = {"H": float(h), "p": float(p), "k": k, "n": n, "eta_squared": None, "significant": bool(p < alpha)}
    estimate = (h - k + 1) / (n - k)
    result["eta_squared"] = max(0.0, float(estimate))
    if estimate < 0:
        result["eta_squared_note"] = (f"H below k - 1 = {k - 1}: no effect beyond chance (raw estimate "
                                      f"{estimate:.3g}, reported as 0)")
    return result


def dunn(df: pd.DataFrame, metric: str, by: By, correction: str = "holm", alpha: float = 0.05) -> list[dict]:
    """Dunn's pairwise post-hoc test on the pooled ranks, with tie correction; z = (R_a - R_b) / sigma."""
    _check_correction(correction)
    groups = group_values(df, metric, by)
    if len(groups) < 2:
        return []
    pairs = list(combinations(groups, 2))
    pooled = np.concatenate(list(groups.values()))
    reason = too_few(groups) or ("not tested: all values are equal" if np.ptp(pooled) == 0 else None)
    if reason:
        return [{"a": a, "b": b, "z": None, "p": None, "p_adjusted": None, "significant": None, "reason": reason}
                for a, b in pairs]
    n_total = len(pooled)
    ranks = stats.rankdata(pooled, method="average")
    ends = np.cumsum([len(values) for values in groups.values()])[:-1]
    mean_rank = {name: float(group_ranks.mean()) for name, group_ranks in zip(groups, np.split(ranks, ends))}
    _, tie_sizes = np.unique(pooled, return_counts=True)
    rank_variance = n_total * (n_total + 1) / 12 - float((tie_sizes**3 - tie_sizes).sum()) / (12 * (n_total - 1))
    z_values = [(mean_rank[a] - mean_rank[b])
                / math.sqrt(rank_variance * (1 / len(groups[a]) + 1 / len(groups[b]))) for a, b in pairs]
    p_values = [float(2 * stats.norm.sf(abs(z))) for z in z_values]
    adjusted = adjust_p_values(p_values, correction)
    return [{"a": a, "b": b, "z": float(z), "p": p, "p_adjusted": p_adjusted, "significant": bool(p_adjusted < alpha)}
            for (a, b), z, p, p_adjusted in zip(pairs, z_values, p_values, adjusted)]


def cliffs_magnitude(delta: float) -> str:
    for upper_bound, magnitude in CLIFF_THRESHOLDS:
        if abs(delta) < upper_bound:
            return magnitude
    return "large"


def cliffs_delta(a, b) -> dict:
    """Cliff's delta = (#(a_i > b_j) - #(a_i < b_j)) / (n_a n_b); positive when a tends to be larger."""
    a = np.asarray(a, dtype=float)
    b = np.sort(np.asarray(b, dtype=float))
    a, b = a[~np.isnan(a)], b[~np.isnan(b)]
    if len(a) == 0 or len(b) == 0:
        return {"delta": None, "magnitude": None, "reason": "an empty sample"}
    # Counting through the sorted b is O(n log n) and needs no n_a x n_b matrix.
    b_below_a = np.searchsorted(b, a, side="left").sum()
    b_above_a = (len(b) - np.searchsorted(b, a, side="right")).sum()
    delta = float(b_below_a - b_above_a) / (len(a) * len(b))
    return {"delta": delta, "magnitude": cliffs_magnitude(delta)}


def cliffs_by_pair(df: pd.DataFrame, metric: str, by: By) -> list[dict]:
    """Cliff's delta for every pair of groups (a before b in sorted order) of at least MIN_TEST_N values each."""
    groups = group_values(df, metric, by)
    results = []
    for a, b in combinations(groups, 2):
        reason = too_few({a: groups[a], b: groups[b]})
        results.append({"a": a, "b": b, "delta": None, "magnitude": None, "reason": reason} if reason
                       else {"a": a, "b": b, **cliffs_delta(groups[a], groups[b])})
    return results


def compare_groups(df: pd.DataFrame, metric: str, by: By, alpha: float = 0.05, correction: str = "holm") -> dict:
    """Every test of the paper for one metric across the groups of `by`; pairs whose medians differ within their
    uncertainties marked (mark_within_uncertainty), each group with the uncertainty of its median (None: unknown)."""
    groups = group_values(df, metric, by)
    medians = {name: float(np.median(values)) for name, values in groups.items()}
    bounds = group_uncertainties(df, metric, by)
    return {
        "metric": metric,
        "by": by,
        "groups": {name: {"n": len(values), "median": medians[name], "mean": float(values.mean()),
                          "uncertainty": _number(bounds.get(name))} for name, values in groups.items()},
        "shapiro": shapiro_by_group(df, metric, by, alpha),
        "levene": levene(df, metric, by, alpha),
        "kruskal_wallis": kruskal_wallis(df, metric, by, alpha),
        "dunn": mark_within_uncertainty(dunn(df, metric, by, correction, alpha), medians, bounds),
        "cliffs_delta": mark_within_uncertainty(cliffs_by_pair(df, metric, by), medians, bounds),
    }


def _cell_medians(df: pd.DataFrame, columns: list[str], cell: list[str]) -> pd.DataFrame:
    """Medians per cell (e.g. architecture, environment), NaN ignored, with an "arch@env" label column."""
    medians = df.groupby(cell, sort=True)[columns].median().reset_index()
    medians["group"] = [group_label(tuple(key), cell) for key in medians[cell].itertuples(index=False)]
    return medians


def energy_reduction_table(df: pd.DataFrame, energy: str = "total_energy_J", cell: list[str] | None = None) -> dict:
    """For every ordered pair of cells (cell_columns by default) with median_from > median_to:
    reduction = 1 - median_to / median_from; where both cells' uncertainties are known, "uncertainty_J" and
    "within_uncertainty" (mark_within_uncertainty)."""
    cell = cell or cell_columns(df)
    medians = _cell_medians(df, [energy], cell).dropna(subset=[energy])
    # A zero median (energy not measured) would read as a 100 % saving.
    medians = medians[medians[energy] > 0]
    median_J = dict(zip(medians["group"], medians[energy].astype(float)))
    bounds = group_uncertainties(df, energy, cell)
    pairs = [{"from": source, "to": target, "from_median_J": median_J[source], "to_median_J": median_J[target],
              "reduction": 1 - median_J[target] / median_J[source]}
             for source, target in permutations(median_J, 2) if median_J[source] > median_J[target]]
    marks = mark_within_uncertainty([{"a": pair["from"], "b": pair["to"]} for pair in pairs], median_J, bounds)
    for pair, mark in zip(pairs, marks):
        if "uncertainty" in mark:
            pair.update(uncertainty_J=mark["uncertainty"], within_uncertainty=mark["within_uncertainty"])
    pairs.sort(key=lambda pair: (-pair["reduction"], pair["from"], pair["to"]))
    result = {"energy": energy, "pairs": pairs, "largest": pairs[0] if pairs else None}
    if not pairs:
        result["reason"] = "fewer than 2 cells with different positive medians"
    return result


def pareto_front(df: pd.DataFrame, energy: str = "total_energy_J", quality: str = "val_f1",
                 cell: list[str] | None = None) -> list[dict]:
    """The cells (cell_columns by default) whose medians no other cell beats: energy <= and quality >= with one of
    them strict."""
    cell = cell or cell_columns(df)
    medians = _cell_medians(df, [energy, quality], cell).dropna(subset=[energy, quality])
    cells = list(medians.itertuples(index=False))
    cell_energy = medians[energy].to_numpy(dtype=float)
    cell_quality = medians[quality].to_numpy(dtype=float)
    front = []
    for i, row in enumerate(cells):
        no_worse = (cell_energy <= cell_energy[i]) & (cell_quality >= cell_quality[i])
        better = (cell_energy < cell_energy[i]) | (cell_quality > cell_quality[i])
        if not (no_worse & better).any():
            front.append({"group": row.group, **{column: str(getattr(row, column)) for column in cell},
                          f"median_{energy}": float(cell_energy[i]), f"median_{quality}": float(cell_quality[i])})
    front.sort(key=lambda item: (item[f"median_{energy}"], -item[f"median_{quality}"], item["group"]))
    return front


def pareto_fronts_by_backend(df: pd.DataFrame, energy: str = "total_energy_J", quality: str = "val_f1") -> dict:
    """{backend: the Pareto front of its own runs}, its cells (architecture, environment, backend)."""
    df = with_backend(df)
    return {name: pareto_front(df[df[BACKEND] == name], energy, quality, CELL + [BACKEND]) for name in backends(df)}


def one_class_models(df: pd.DataFrame) -> tuple[np.ndarray, list[dict]]:
    """A positional mask of the runs whose validation metrics show a model that predicts one class
    (ect.quality), and each of them with its reason."""
    columns = [c for c in ("val_accuracy", "val_precision", "val_recall") if c in df.columns]
    if not columns:
        return np.zeros(len(df), dtype=bool), []
    reasons = [one_class_reason(row) for row in df[columns].to_dict("records")]
    flagged = [{**{column: _plain(df.iloc[position][column]) for column in
                   ("environment", "architecture", "run_id", "repetition") if column in df.columns},
                "reason": reason} for position, reason in enumerate(reasons) if reason]
    return np.array([reason is not None for reason in reasons], dtype=bool), flagged


def without_one_class_f1(df: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """The runs with val_f1 emptied where the model predicts one class (its F1 says nothing of quality, so it
    stays out of the F1 tests and the Pareto front; its energy counts as any other), and those runs."""
    one_class, flagged = one_class_models(df)
    if one_class.any() and "val_f1" in df.columns:
        df = df.assign(val_f1=df["val_f1"].mask(one_class))
    return df, flagged


def _outliers(df: pd.DataFrame, metric: str, by: By, k: float) -> tuple[np.ndarray, list[dict]]:
    """A positional mask of the rows outside their group's Tukey fences, and a report of each."""
    values = df[metric].to_numpy(dtype=float)
    outside = np.zeros(len(df), dtype=bool)
    removed = []
    for key, positions in df.groupby(by, sort=True).indices.items():
        positions = positions[~np.isnan(values[positions])]
        if len(positions) == 0:
            continue
        q1, q3 = np.percentile(values[positions], [25, 75])
        lower_fence, upper_fence = q1 - k * (q3 - q1), q3 + k * (q3 - q1)
        for position in positions:
            value = values[position]
            if lower_fence <= value <= upper_fence:
                continue
            outside[position] = True
            row = df.iloc[position]
            removed.append({
                **{column: _plain(row[column]) for column in ("run_id", "environment", "architecture")
                   if column in df.columns},
                "group": group_label(key, by), "metric": metric, "value": float(value),
                "lower_fence": float(lower_fence), "upper_fence": float(upper_fence),
                "reason": (f"below Q1 - {k} IQR" if value < lower_fence else f"above Q3 + {k} IQR"),
            })
    return outside, removed


def remove_outliers(df: pd.DataFrame, metric: str, by: By, k: float = TUKEY_K) -> tuple[pd.DataFrame, list[dict]]:
    """The rows inside their group's fences [Q1 - k IQR, Q3 + k IQR] (missing values kept), and the removed ones."""
    outside, removed = _outliers(df, metric, by, k)
    return df[~outside], removed


def _comparisons(df: pd.DataFrame, within: By, across: str, alpha: float, correction: str) -> dict[str, dict]:
    """For each value of `within` (each group of its columns, named as group_label names it), compare_groups of every
    metric across the values of `across`."""
    results = {}
    for key, subset in df.groupby(within, sort=True):
        name = group_label(key, within)
        n_groups = subset[across].nunique()
        if n_groups < 2:
            results[name] = {"across": across, "skipped": f"fewer than 2 {across} groups ({n_groups})"}
            continue
        metrics = {}
        for metric in METRICS:
            if metric not in subset.columns:
                metrics[metric] = {"skipped": "column missing"}
            elif subset[metric].isna().all():
                metrics[metric] = {"skipped": "no value measured in these runs"}
            elif subset.loc[subset[metric].notna(), across].nunique() < 2:
                metrics[metric] = {"skipped": f"fewer than 2 {across} groups with values"}
            else:
                metrics[metric] = compare_groups(subset, metric, across, alpha, correction)
        results[name] = {"across": across, "metrics": metrics}
    return results


def analyze(df: pd.DataFrame, alpha: float = 0.05, correction: str = "holm", outliers: bool = False) -> dict:
    """The paper's analysis: architectures compared within each environment and environments within
    each architecture, the largest energy reduction and the energy/F1 Pareto front. Runs whose model predicts
    one class ("one_class_models") keep their energy but not their F1.

    With runs of several backends ("backends"): architectures compared within each (environment, backend) ("local·jax")
    and environments within each (architecture, backend) ("vgg16·jax"), the backends compared within each
    (architecture, environment) ("by_backend", "vgg16@local"), cells of (architecture, environment, backend) and
    the Pareto front of each backend ("pareto_front_by_backend")."""
    _check_correction(correction)
    df = with_backend(df)
    names = backends(df)
    several = len(names) > 1
    cell = cell_columns(df)
    df, one_class = without_one_class_f1(df)
    removed = []
    if outliers:
        df = df.copy()
        for metric in METRICS:
            if metric in df.columns:
                outside, removed_here = _outliers(df, metric, cell, TUKEY_K)
                # Masking only this metric keeps the run's other metrics in their own tests.
                df[metric] = df[metric].mask(outside)
                removed += removed_here
    per_environment = ["environment", BACKEND] if several else "environment"
    per_architecture = ["architecture", BACKEND] if several else "architecture"
    results = {
        "n_runs": len(df),
        "alpha": alpha,
        "correction": correction,
        "backends": names,
        "outliers": {"enabled": outliers, "k": TUKEY_K, "removed": removed},
        "one_class_models": one_class,
        "by_environment": _comparisons(df, per_environment, "architecture", alpha, correction),
        "by_architecture": _comparisons(df, per_architecture, "environment", alpha, correction),
        "energy_reduction": energy_reduction_table(df, cell=cell),
        "pareto_front": pareto_front(df, cell=cell),
    }
    if several:
        results["by_backend"] = _comparisons(df, CELL, BACKEND, alpha, correction)
        results["pareto_front_by_backend"] = pareto_fronts_by_backend(df)
    return results
