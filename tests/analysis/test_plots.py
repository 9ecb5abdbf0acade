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
