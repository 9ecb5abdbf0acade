"""The environment report's projections while training (history.csv's projection columns beside the measured energy)
and its backtest table, or why there is none."""

import csv
import json

import pytest
from test_predict import history

from ect.config import load_config
from ect.pipeline import report_step
from ect.projection import PROJECTION_COLUMNS
from ect.raw.columns import EPOCH_ENERGY_COLUMNS, HISTORY_COLUMNS


def write_history(folder, measured_J: float) -> None:
    """Six epochs (2 initial, 4 fine-tuning): projected 1.2 x the measured energy after epoch 2, 0.9 x after epoch 3,
    then the measured energy."""
    folder.mkdir(parents=True)
    factors = [None, 1.2, 0.9, 1.0, 1.0, 1.0]
    with open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, HISTORY_COLUMNS + EPOCH_ENERGY_COLUMNS + PROJECTION_COLUMNS, restval="")
        writer.writeheader()
        for epoch, factor in enumerate(factors, start=1):
            projected = measured_J * (factor or 3.0)
            writer.writerow({"epoch": epoch, "phase": "initial" if epoch <= 2 else "fine_tuning", "duration_s": 1.0,
                             "total_energy_J": measured_J / 6, "projected_total_energy_J": projected,
                             "projected_energy_low_80pct_J": projected * 0.9,
                             "projected_energy_high_80pct_J": projected * 1.1, "projected_epochs": 6,
                             "projection_basis": "history (processed/runs.parquet, vgg16 on tensorflow): 3 of 3 "
                                                 "run(s) trained more than 2 epoch(s); initial at its 1 settled epoch(s)"})


def processed_history(seed: int, campaigns: int):
    """test_predict's synthetic history with the columns the rest of the report reads."""
    runs = history(seed=seed, campaigns=campaigns)
    return runs.assign(energy_kWh=runs["total_energy_J"] / 3.6e6, emissions_gCO2e=runs["total_energy_J"] / 3.6e6 * 232,
                       energy_per_image_J=runs["total_energy_J"] / runs["images_seen"], val_f1=0.8,
                       gpu_utilization_mean_pct=60.0, gpu_energy_source="counter", cpu_energy_source="counter",
                       repetition=runs["run_id"].str[-2:].astype(int))


@pytest.fixture
def metrics(project, tmp_path, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    root = tmp_path / "metrics"
    (root / "processed").mkdir(parents=True)
    return root


def test_the_report_shows_the_projections_beside_the_measured_energy_and_the_backtest(project, metrics, tmp_path):
    runs = processed_history(seed=7, campaigns=8)
    runs.to_parquet(metrics / "processed" / "runs.parquet")
    latest = runs[runs["campaign_id"] == runs.sort_values("start")["campaign_id"].iloc[-1]]
    for run in latest.itertuples():
        write_history(metrics / "raw" / "local" / run.architecture / run.run_id, run.total_energy_J)
    out = tmp_path / "out"
    cfg = load_config(project, env={})
    report_step(cfg, "local", processed=metrics / "processed" / "runs.parquet", out=out)

    text = (out / "report.md").read_text()
    section = text.split("### Energy projected while training")[1].split("\n#")[0]
    rows = [line for line in section.splitlines() if line.startswith("| vgg16") or line.startswith("| resnet50")]
    assert len(rows) == len(latest) == 4
    vgg16 = latest[latest["architecture"] == "vgg16"].iloc[-1]
    cells = [c.strip() for c in rows[-1].split("|")[1:-1]]
    assert cells[0] == "vgg16 · rep 1 · local" and cells[1] == "6" and cells[2] == f"{vgg16.total_energy_J / 1e3:.4g}"
    assert cells[3:5] == ["2", f"{1.2 * vgg16.total_energy_J / 1e3:.4g} ({1.08 * vgg16.total_energy_J / 1e3:.4g}–"
                                f"{1.32 * vgg16.total_energy_J / 1e3:.4g})"]
    assert float(cells[5]) == pytest.approx(20.0) and cells[6] == "3" and float(cells[8]) == pytest.approx(-10.0)
    assert cells[9] == "history (processed/runs.parquet, vgg16 on tensorflow): 3 of 3 run(s) trained more than 2 epoch(s)"

    backtest = text.split("### Predicting a run's energy: backtest")[1].split("\n## ")[0]
    for name in ("ect (history + split conformal)", "CarbonTracker rule", "STEP-style projection",
                 "PRE-style ridge regression", "TDP x time"):
        assert f"| {name} |" in backtest
    assert "| predictor | runs | MAPE % | RMSE kJ | 80 % coverage | 95 % coverage |" in backtest
    results = json.loads((out / "results.json").read_text())
    assert results["backtest"]["runs"] == 32 and results["backtest"]["campaigns"] == 8
    assert "Energy projected while training" in (out / "report.html").read_text()


def test_with_one_campaign_the_report_says_the_backtest_was_not_possible_and_why(project, metrics, tmp_path):
    processed_history(seed=8, campaigns=1).to_parquet(metrics / "processed" / "runs.parquet")
    out = tmp_path / "out"
    report_step(load_config(project, env={}), "local", processed=metrics / "processed" / "runs.parquet", out=out)
    text = (out / "report.md").read_text()
    assert ("The backtest was not possible: nothing to backtest: environment 'local' has 1 campaign(s) with a measured "
            "energy; leaving one out needs at least 2.") in text
    assert "No run of the latest campaign recorded a projection" in text
    assert json.loads((out / "results.json").read_text())["backtest"]["reason"].startswith("nothing to backtest")
