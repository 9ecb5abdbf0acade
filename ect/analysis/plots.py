"""The report's figures (PNG). Every axis says its unit."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ect.analysis.stats import BACKEND, shows_backend, with_backend


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # "tight": a legend outside the axes stays in the picture
    _pyplot().close(fig)
    return path


def _legend_outside(ax, *args, **kwargs):
    """The axes' legend to the right of the plot, where it hides no point."""
    return ax.legend(*args, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0, **kwargs)


# A box summarises a group of runs from this many on; below, its quartiles are the runs themselves.
BOX_MIN_RUNS = 5
ENVIRONMENT_BACKEND = "environment·backend"


def _by_environment(runs: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The runs and the column their colours stand for: "environment", or "environment·backend" ("local·jax") where a
    backend other than TensorFlow ran, so that every label names the backend."""
    runs = with_backend(runs)
    if not shows_backend(runs[BACKEND]):
        return runs, "environment"
    return runs.assign(**{ENVIRONMENT_BACKEND: runs["environment"].astype(str) + "·" + runs[BACKEND].astype(str)}), \
        ENVIRONMENT_BACKEND


def energy_boxplot(runs: pd.DataFrame, path: Path) -> Path:
    """Energy per run, per architecture and environment: each run a point, a box behind the groups of at least
    BOX_MIN_RUNS runs."""
    import seaborn as sns

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    data, hue = _by_environment(runs)
    data = data.assign(total_energy_kJ=data["total_energy_J"] / 1e3)
    order = sorted(data[hue].unique())  # the same colours as the bar plot's
    architectures = sorted(data["architecture"].unique())
    boxed = data[data.groupby(["architecture", hue])["total_energy_kJ"].transform("size") >= BOX_MIN_RUNS]
    common = dict(x="architecture", y="total_energy_kJ", hue=hue, hue_order=order, order=architectures, ax=ax)
    if len(boxed):
        sns.boxplot(data=boxed, dodge=len(order) > 1, showfliers=False, boxprops={"alpha": 0.5}, **common)
    sns.stripplot(data=data, dodge=len(order) > 1, size=6, linewidth=0.6, edgecolor="black", legend=not len(boxed),
                  **common)
    if ax.get_legend() is not None:
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    ax.set(xlabel="architecture", ylabel="energy per training run (kJ)",
           title=f"Energy per training run (each point a run; boxes for groups of >= {BOX_MIN_RUNS} runs)")
    return _save(fig, path)


def median_bars(runs: pd.DataFrame, path: Path) -> Path:
    """Median energy per architecture and environment (and backend)."""
    plt = _pyplot()
    runs, hue = _by_environment(runs)
    medians = runs.pivot_table(index="architecture", columns=hue, values="total_energy_J", aggfunc="median")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    (medians / 1e3).plot.bar(ax=ax, rot=0, legend=False)
    _legend_outside(ax, title=hue)
    ax.set(xlabel="architecture", ylabel="median energy per run (kJ)", title="Median energy per training run")
    return _save(fig, path)


def pareto_scatter(runs: pd.DataFrame, front: list[dict], path: Path,
                   fronts_by_backend: dict[str, list[dict]] | None = None) -> Path:
    """Median energy vs median F1 of every (architecture, environment[, backend]), the Pareto front joined; with
    fronts_by_backend, the front of each backend instead, each in its own colour."""
    plt = _pyplot()
    runs, hue = _by_environment(runs)
    groups = runs.groupby(["architecture", hue])[["total_energy_J", "val_f1"]].median().reset_index()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(groups["total_energy_J"] / 1e3, groups["val_f1"], color="tab:gray")
    for architecture, where, energy_J, f1 in groups[["architecture", hue, "total_energy_J", "val_f1"]].itertuples(
            index=False):
        ax.annotate(f"{architecture}@{where}", (energy_J / 1e3, f1), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    lines = ({f"Pareto front ({backend})": line for backend, line in sorted(fronts_by_backend.items()) if line}
             if fronts_by_backend else {"Pareto front": front} if front else {})
    tab10 = plt.get_cmap("tab10").colors
    for index, (label, line) in enumerate(lines.items()):
        ax.plot([g["median_total_energy_J"] / 1e3 for g in line], [g["median_val_f1"] for g in line], "o-",
                color=tab10[index % len(tab10)] if fronts_by_backend else "tab:red", label=label)
    if lines:
        _legend_outside(ax)
    ax.set(xlabel="median energy per run (kJ)", ylabel="median validation F1", title="Energy vs F1")
    return _save(fig, path)


def energy_vs_gflops(runs: pd.DataFrame, path: Path) -> Path:
    """Median energy per image against the forward-pass cost of the architecture."""
    plt = _pyplot()
    runs, hue = _by_environment(runs)
    groups = runs.groupby(["architecture", hue])[["gflops", "energy_per_image_J"]].median().reset_index()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for environment, part in groups.groupby(hue):
        ax.scatter(part["gflops"], part["energy_per_image_J"], label=environment)
        for row in part.itertuples(index=False):
            ax.annotate(row.architecture, (row.gflops, row.energy_per_image_J), fontsize=8, xytext=(3, 3),
                        textcoords="offset points")
    _legend_outside(ax, title=hue)
    ax.set(xlabel="forward pass (GFLOPs per image)", ylabel="median energy per image seen (J)",
           title="Energy per image vs model cost")
    return _save(fig, path)


def power_timeline(samples: pd.DataFrame, run: pd.Series, path: Path) -> Path:
    """Power over time of one run, its measurement window shaded."""
    plt = _pyplot()
    mine = samples[(samples["environment"] == run["environment"]) & (samples["architecture"] == run["architecture"])
                   & (samples["run_id"] == run["run_id"])]
    start_ms = run["start"].value // 1_000_000 if hasattr(run["start"], "value") else int(run["start"])
    seconds = (mine["time_ms"] - start_ms) / 1000
    fig, ax = plt.subplots(figsize=(8, 3.8))
    if "power_W" in mine and mine["power_W"].notna().any():
        for index, part in mine.groupby("gpu_index"):
            ax.plot((part["time_ms"] - start_ms) / 1000, part["power_W"], label=f"GPU {int(index)} power (measured)")
    if "cpu_power_estimated_W" in mine and mine["cpu_power_estimated_W"].notna().any():
        cpu = mine.drop_duplicates("time_ms")
        ax.plot((cpu["time_ms"] - start_ms) / 1000, cpu["cpu_power_estimated_W"], label="CPU power (estimated)")
    ax.axvspan(0, run["duration_s"], color="tab:green", alpha=0.12, label="measurement window")
    ax.set_xlim(min(seconds.min(), 0) if len(seconds) else 0, max(seconds.max(), run["duration_s"]) if len(seconds) else run["duration_s"])
    ax.set_ylim(bottom=0)  # power from zero: the swings keep their true size
    _legend_outside(ax, fontsize=8)
    ax.set(xlabel="time since the window's start (s)", ylabel="power (W)",
           title=f"Power of {run['architecture']} on {run['environment']}, run {run['run_id']}")
    return _save(fig, path)


def training_curves(history: pd.DataFrame, run, path: Path) -> Path:
    """One run's (a RunKey) history.csv: loss, validation quality and (profiled runs) energy per epoch; fine-tuning
    shaded."""
    plt = _pyplot()
    energy = "total_energy_J" in history and history["total_energy_J"].notna().any()
    fig, axes = plt.subplots(1, 3 if energy else 2, figsize=(11 if energy else 8, 3.6))
    epochs = history["epoch"]
    for column in ("loss", "val_loss"):
        if column in history:
            axes[0].plot(epochs, history[column], marker="o", label=column)
    for column in ("val_accuracy", "val_f1"):
        if column in history:
            axes[1].plot(epochs, history[column], marker="o", label=column)
    axes[0].set(xlabel="epoch", ylabel="binary cross-entropy", title="Loss")
    axes[1].set(xlabel="epoch", ylabel="score (0-1)", title="Validation quality")
    if energy:
        axes[2].bar(epochs, history["total_energy_J"] / 1e3, color="tab:red")
        axes[2].set(xlabel="epoch", ylabel="energy (kJ)", title="Energy per epoch")
    fine_tuning = epochs[history["phase"] == "fine_tuning"] if "phase" in history else epochs.iloc[:0]
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if len(fine_tuning):
            ax.axvspan(fine_tuning.min() - 0.5, fine_tuning.max() + 0.5, color="tab:gray", alpha=0.12)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{run.architecture} on {run.environment}, run {run.run_id}"
                 + (" (grey: fine-tuning)" if len(fine_tuning) else ""), fontsize=10)
    return _save(fig, path)


# Each architecture its own colour and marker (tab10 and these ten markers: ten architectures before a repeat).
ARCHITECTURE_MARKERS = ("o", "s", "^", "v", "D", "P", "h", "<", ">", "p")
# The latest point's verdict, drawn small over the architecture's own marker; verdicts not listed are not marked.
VERDICT_MARKERS = {
    "regression": ({"marker": "x", "color": "red", "markersize": 7, "markeredgewidth": 2},
                   "regression (latest DAG run)"),
    "inconclusive": ({"marker": "o", "markerfacecolor": "none", "markeredgecolor": "black", "markersize": 11,
                      "markeredgewidth": 1},
                     "inconclusive (latest DAG run; circled)"),
}


def plot_trend(table: pd.DataFrame, path: Path, regression: dict | None = None) -> Path:
    """One line per architecture of a regression trend_table (J) over the campaigns' start times, in kJ, each with
    its own colour and marker; with a check_regressions result, each architecture's threshold band (baseline median
    to baseline median x (1 + THRESHOLD)) shaded and its latest point marked by verdict. The legend, beside the
    plot, has one entry per architecture and one per verdict shown."""
    from matplotlib.lines import Line2D

    plt = _pyplot()
    starts_utc = pd.to_datetime(table["start"], utc=True).dt.tz_localize(None)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    verdicts = (regression or {}).get("architectures", {})
    threshold = (regression or {}).get("settings", {}).get("threshold")
    colours = plt.get_cmap("tab10").colors
    shown = set()
    for index, architecture in enumerate(c for c in table.columns if c != "start"):
        colour, marker = colours[index % len(colours)], ARCHITECTURE_MARKERS[index % len(ARCHITECTURE_MARKERS)]
        ax.plot(starts_utc, table[architecture] / 1000, marker=marker, markersize=5, color=colour,
                label=str(architecture))
        verdict = verdicts.get(str(architecture), {})
        if verdict.get("baseline_median") and threshold is not None:
            base_kJ = verdict["baseline_median"] / 1000
            ax.axhspan(base_kJ, base_kJ * (1 + threshold), color=colour, alpha=0.12, lw=0)
        status = verdict.get("status")
        if status in VERDICT_MARKERS and table[architecture].notna().any():
            last = table[architecture].last_valid_index()
            ax.plot([starts_utc.loc[last]], [table.at[last, architecture] / 1000], linestyle="none",
                    **VERDICT_MARKERS[status][0])
            shown.add(status)
    handles, labels = ax.get_legend_handles_labels()
    for status in [s for s in VERDICT_MARKERS if s in shown]:
        style, label = VERDICT_MARKERS[status]
        handles.append(Line2D([], [], linestyle="none", **style))
        labels.append(label)
    title = "Median energy per training run over the DAG runs"
    if threshold is not None:
        title += f"\n(shaded: baseline median to +{100 * threshold:g} %, the regression threshold)"
    ax.set(xlabel="DAG run start (UTC)", ylabel="median energy per run (kJ)", title=title)
    _legend_outside(ax, handles, labels, fontsize="small", title="architecture / verdict")
    fig.autofmt_xdate()
    return _save(fig, path)
