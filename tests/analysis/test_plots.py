"""The report's figures: what each draws, read off the matplotlib figure before it is saved."""

import pandas as pd

from ect.analysis import plots


def drawn(monkeypatch, plot, *args):
    """The axes a plot function drew (it saves and closes its figure: kept here instead)."""
    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    plot(*args)
    (figure,) = figures
    return figure.axes[0]


def runs(groups):
    return pd.DataFrame([{"environment": environment, "architecture": architecture, "total_energy_J": 1000.0 + k}
                         for environment, architecture, count in groups for k in range(count)])


def test_energy_per_run_shows_every_run_and_boxes_only_where_a_group_has_enough_runs(monkeypatch, tmp_path):
    from matplotlib.patches import PathPatch

    ax = drawn(monkeypatch, plots.energy_boxplot, runs([("local", "vgg16", plots.BOX_MIN_RUNS),
                                                        ("local", "tiny_cnn", 1), ("cloud", "vgg16", 2)]), tmp_path / "a.png")
    boxes = [p for p in ax.patches if isinstance(p, PathPatch)]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert len(boxes) == 1 and points == plots.BOX_MIN_RUNS + 3
    assert ax.get_ylabel() == "energy per training run (kJ)"

    ax = drawn(monkeypatch, plots.energy_boxplot, runs([("local", "vgg16", 1), ("local", "tiny_cnn", 1)]), tmp_path / "b.png")
    assert not [p for p in ax.patches if isinstance(p, PathPatch)]  # one run is no box: a point
    assert sum(len(c.get_offsets()) for c in ax.collections) == 2
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["local"]  # the points carry the legend


def test_the_power_timeline_starts_at_zero_watts_and_spans_the_window(monkeypatch, tmp_path):
    samples = pd.DataFrame({"environment": "local", "architecture": "vgg16", "run_id": "r1", "gpu_index": 0,
                            "time_ms": [1_000_100, 1_000_200, 1_000_300], "power_W": [250.0, 260.0, 255.0],
                            "cpu_power_estimated_W": [40.0, 42.0, 41.0]})
    run = pd.Series({"environment": "local", "architecture": "vgg16", "run_id": "r1", "start": 1_000_000,
                     "duration_s": 0.4})
    ax = drawn(monkeypatch, plots.power_timeline, samples, run, tmp_path / "p.png")
    assert ax.get_ylim()[0] == 0 and ax.get_ylim()[1] > 260 and ax.get_xlim() == (0, 0.4)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "GPU 0 power (measured)", "CPU power (estimated)", "measurement window"]


def legend_is_beside_the_axes(ax) -> bool:
    """The legend lies right of the plotting area, where it can hide no point."""
    ax.figure.canvas.draw()
    return ax.get_legend().get_window_extent().x0 >= ax.get_window_extent().x1


def trend(architectures, campaigns=4):
    starts = pd.date_range("2026-11-01 02:00", periods=campaigns, freq="D", tz="UTC")
    table = pd.DataFrame({"start": starts}, index=[f"night{k}" for k in range(campaigns)])
    for index, architecture in enumerate(architectures):
        table[architecture] = [1000.0 * (index + 1) + k for k in range(campaigns)]
    return table


def test_the_trend_has_one_legend_entry_per_architecture_and_per_verdict(monkeypatch, tmp_path):
    from matplotlib.lines import Line2D

    architectures = ["mobilenet_v2", "resnet50", "tiny_cnn", "vgg16"]
    verdict = lambda status: {"status": status, "baseline_median": 1000.0}  # noqa: E731
    regression = {"settings": {"threshold": 0.05}, "architectures": {
        "mobilenet_v2": verdict("inconclusive"), "resnet50": verdict("inconclusive"), "tiny_cnn": verdict("regression"),
        "vgg16": verdict("no regression")}}
    ax = drawn(monkeypatch, plots.plot_trend, trend(architectures), tmp_path / "t.png", regression)
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [
        *architectures, "regression (latest DAG run)", "inconclusive (latest DAG run; circled)"]
    lines = {line.get_label(): line for line in ax.get_lines() if line.get_label() in architectures}
    assert len(lines) == 4 and all(len(line.get_xdata()) == 4 for line in lines.values())
    # Each architecture its own colour and marker: no two share a legend entry's look.
    assert len({(str(line.get_color()), line.get_marker()) for line in lines.values()}) == 4
    assert len({str(line.get_color()) for line in lines.values()}) == 4
    assert len({line.get_marker() for line in lines.values()}) == 4
    # Verdicts: a small mark on each flagged architecture's latest point (3 of them), distinct from every line's.
    marks = [line for line in ax.get_lines() if line.get_label().startswith("_") and len(line.get_xdata()) == 1]
    assert len(marks) == 3 and all(mark.get_markersize() <= 11 for mark in marks)
    assert {mark.get_marker() for mark in marks} == {"x", "o"}
    handles = legend.legend_handles
    assert all(isinstance(h, Line2D) for h in handles)
    assert {h.get_marker() for h in handles[4:]} == {"x", "o"} and handles[5].get_markerfacecolor() == "none"
    assert legend_is_beside_the_axes(ax)

    plain = drawn(monkeypatch, plots.plot_trend, trend(architectures[:2]), tmp_path / "p.png")
    assert [t.get_text() for t in plain.get_legend().get_texts()] == architectures[:2]  # no verdict, no verdict entry


def test_the_legends_of_the_cross_environment_plots_hide_no_point(monkeypatch, tmp_path):
    rows = runs([("local", "vgg16", 6), ("cloud", "vgg16", 6), ("local", "tiny_cnn", 6), ("cloud", "tiny_cnn", 6)])
    rows = rows.assign(gflops=rows["architecture"].map({"vgg16": 15.5, "tiny_cnn": 0.1}),
                       energy_per_image_J=rows["total_energy_J"] / 100, val_f1=0.8)
    for plot in (plots.energy_boxplot, plots.median_bars, plots.energy_vs_gflops):
        ax = drawn(monkeypatch, plot, rows, tmp_path / "x.png")
        assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["cloud", "local"], plot.__name__
        assert legend_is_beside_the_axes(ax), plot.__name__
    front = [{"median_total_energy_J": 1002.5, "median_val_f1": 0.8}]
    assert legend_is_beside_the_axes(drawn(monkeypatch, plots.pareto_scatter, rows, front, tmp_path / "p.png"))

