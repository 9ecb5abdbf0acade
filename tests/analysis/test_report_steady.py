"""The report's steady state per architecture and its trimmed summary, best and worst run dropped (issue 26, parts 5
and 7)."""

import pandas as pd
import pytest

from ect.analysis.report import steady_frame, trimmed_frame, write_report


def runs_of(energies: dict, steady: dict | None = None, backend="tensorflow") -> pd.DataFrame:
    """Processed runs: {architecture: [total energy J]}, the steady-state columns of each architecture (or none)."""
    rows = []
    for architecture, values in energies.items():
        for repetition, energy in enumerate(values):
            rows.append({
                "environment": "local", "architecture": architecture, "backend": backend,
                "run_id": f"night-rep{repetition:02d}", "campaign_id": "night", "repetition": repetition,
                "start": pd.Timestamp("2026-12-01", tz="UTC") + pd.Timedelta(hours=repetition),
                "duration_s": energy / 200, "total_energy_J": energy, "energy_kWh": energy / 3.6e6,
                "emissions_gCO2e": energy / 3.6e6 * 300, "energy_per_image_J": energy / 1e4, "val_f1": 0.8,
                "gpu_utilization_mean_pct": 70.0, "gflops": 1.0, "gpu_energy_source": "counter",
                "cpu_energy_source": "estimated",
                **(steady or {}).get(architecture, {"steady_power_W": None, "steady_energy_per_epoch_J": None,
                                                    "steady_energy_per_image_J": None, "steady_duration_s": None}),
            })
    return pd.DataFrame(rows)


STEADY = {"vgg16": {"steady_power_W": 132.3, "steady_energy_per_epoch_J": 466.6, "steady_energy_per_image_J": 0.2278,
                    "steady_duration_s": 7.055}}


def test_the_trimmed_mean_drops_the_best_and_the_worst_run():
    frame = trimmed_frame(runs_of({"vgg16": [1000.0, 1100.0, 1050.0, 5000.0, 900.0], "tiny_cnn": [10.0, 12.0]}))
    assert "Backend" not in frame  # TensorFlow only
    vgg16 = frame.set_index("Architecture").loc["vgg16"]
    assert vgg16["Runs"] == 5 and vgg16["Mean energy (kJ)"] == pytest.approx(9050 / 5 / 1e3)
    assert vgg16["Trimmed mean energy (kJ)"] == pytest.approx((1000 + 1050 + 1100) / 3 / 1e3)
    assert vgg16["Spread of the runs kept (%)"] == pytest.approx(100 * 100 / 1050) and vgg16["Note"] == ""
    tiny = frame.set_index("Architecture").loc["tiny_cnn"]
    assert pd.isna(tiny["Trimmed mean energy (kJ)"]) and tiny["Note"] == "not trimmed: 2 run(s), needs >= 3"


def test_the_steady_state_table_gives_medians_and_counts_runs_with_one():
    runs = runs_of({"vgg16": [1000.0, 1100.0, 1050.0], "tiny_cnn": [10.0, 12.0]}, STEADY)
    runs.loc[2, "steady_power_W"] = 140.0  # medians over the runs
    frame = steady_frame(runs).set_index("Architecture")
    assert frame.loc["vgg16", "Runs with a steady state"] == "3 of 3"
    assert frame.loc["vgg16", "Power (W)"] == pytest.approx(132.3)
    assert frame.loc["vgg16", "Energy per image (J)"] == pytest.approx(0.2278)
    assert frame.loc["tiny_cnn", "Runs with a steady state"] == "0 of 2" and pd.isna(frame.loc["tiny_cnn", "Power (W)"])


def test_processed_runs_of_before_the_steady_state_have_none():
    runs = runs_of({"vgg16": [1000.0, 1100.0]}).drop(columns=["steady_power_W", "steady_energy_per_epoch_J",
                                                                "steady_energy_per_image_J", "steady_duration_s"])
    assert steady_frame(runs).iloc[0]["Runs with a steady state"] == "0 of 2"


def test_the_report_has_the_steady_state_and_the_trimmed_summary(tmp_path):
    runs = runs_of({"vgg16": [1000.0, 1100.0, 1050.0, 5000.0], "tiny_cnn": [10.0, 12.0]}, STEADY)
    write_report(runs, tmp_path, "Steady")
    markdown = (tmp_path / "report.md").read_text()
    assert "## Steady state" in markdown and "### Trimmed (best and worst run dropped)" in markdown
    assert "| local | vgg16 | 4 of 4 | 132.3 | 466.6 | 0.2278 | 7.055 |" in markdown
    assert "No steady state for tiny_cnn on local: too few epochs" in markdown
    assert "| local | vgg16 | 4 | 2.038 | 1.075 | 4.651 |  |" in markdown
    assert "not trimmed: 2 run(s), needs >= 3" in markdown
    page = (tmp_path / "report.html").read_text()
    assert "Steady state" in page and "Trimmed (best and worst run dropped)" in page
