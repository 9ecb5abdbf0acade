"""`ect predict`: a planned run's energy from the history with split-conformal intervals, the labelled prior, and the
backtest against the field's rules. Synthetic histories whose true model is known."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ect.analysis.predict import (
    ASSUMED_CPU_FLOPS_PER_S,
    PREDICTORS,
    PRIOR_LABEL,
    Planned,
    PriorInputs,
    RunDetails,
    Tally,
    backtest,
    backtest_table,
    calibrate,
    conformal_quantile,
    ect_point,
    fit_model,
    interval,
    predict,
    prediction_table,
    summarise,
    usable_runs,
)
from ect.cli import main
from ect.config import load_config

TRUE_PER_EPOCH_J = {"vgg16": 2000.0, "resnet50": 1200.0}
GFLOPS = {"vgg16": 15.5, "resnet50": 4.1}
SECONDS_PER_JOULE = 0.01
IMAGES_PER_EPOCH = 500
NO_PRIOR = PriorInputs({}, None, 100.0, "test power", False)


def history(seed: int, campaigns: int, repetitions: int = 2, environment: str = "local", noise: float = 0.1,
            epochs=(40, 61)) -> pd.DataFrame:
    """Nightly campaigns of each architecture: energy = true energy per epoch x trained epochs (early stopping: uniform
    in `epochs`) x lognormal noise; duration proportional with its own noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for night in range(campaigns):
        campaign = f"2026-01-{night + 1:02d}T02_00_00"
        for a, (architecture, per_epoch) in enumerate(TRUE_PER_EPOCH_J.items()):
            for repetition in range(repetitions):
                trained = int(rng.integers(*epochs))
                energy = per_epoch * trained * math.exp(rng.normal(0, noise))
                rows.append({
                    "environment": environment, "architecture": architecture, "backend": "tensorflow",
                    "run_id": f"{campaign}-rep{repetition:02d}", "campaign_id": campaign,
                    "start": pd.Timestamp("2026-01-01 02:00", tz="UTC") + pd.Timedelta(days=night, minutes=10 * a
                                                                                       + repetition),
                    "total_energy_J": energy, "duration_s": energy * SECONDS_PER_JOULE * math.exp(rng.normal(0, noise)),
                    "trained_epochs": trained, "gflops": GFLOPS[architecture],
                    "images_seen": IMAGES_PER_EPOCH * trained, "cpu_energy_J": energy,
                })
    return pd.DataFrame(rows)


def test_split_conformal_90_interval_covers_between_85_and_95_percent():
    rng = np.random.default_rng(0)
    hits = []
    for draw in range(200):
        calibrated = calibrate(usable_runs(history(seed=draw, campaigns=30, repetitions=1), "local"))
        quantile = conformal_quantile(calibrated.history.energy, 0.9)
        for architecture, per_epoch in TRUE_PER_EPOCH_J.items():
            predicted = ect_point(calibrated, Planned(architecture, "tensorflow", 1, 1000), NO_PRIOR)
            low, high = interval(predicted.energy_J, quantile)
            new_run = per_epoch * int(rng.integers(40, 61)) * math.exp(rng.normal(0, 0.1))
            hits.append(low <= new_run <= high)
    assert 0.85 <= np.mean(hits) <= 0.95
    assert calibrated.history.runs == 30  # half of the 30 campaigns x 2 architectures calibrate


def test_conformal_quantile_is_the_finite_sample_rank():
    scores = list(range(1, 10))  # n = 9
    assert conformal_quantile(scores, 0.8) == 8  # ceil(10 x 0.8) = 8th smallest
    assert conformal_quantile(scores, 0.9) == 9
    assert math.isinf(conformal_quantile(scores, 0.95))  # ceil(10 x 0.95) = 10 > 9: unbounded


def test_prediction_recovers_the_true_energy_per_epoch():
    runs = history(seed=3, campaigns=20, noise=0.02)
    model = fit_model(usable_runs(runs, "local"))
    for architecture, per_epoch in TRUE_PER_EPOCH_J.items():
        assert model.groups[(architecture, "tensorflow")].energy_per_epoch_J == pytest.approx(per_epoch, rel=0.02)
    env = load_config().environment("local")
    result = predict(runs, env, [Planned("vgg16", "tensorflow", 3, 45), Planned("resnet50", "tensorflow", 3, 1000)],
                     NO_PRIOR)
    assert result["status"] == "calibrated" and result["reason"] is None
    vgg16, resnet50 = result["predictions"]
    assert vgg16["epochs"] == 45  # early stopping's 40..60 clipped at the plan's 45 epochs
    assert vgg16["energy_J"] == pytest.approx(2000 * 45, rel=0.03)
    assert resnet50["epochs"] == pytest.approx(50, abs=3)
    assert resnet50["energy_kWh"] == pytest.approx(resnet50["energy_J"] / 3.6e6)
    assert resnet50["emissions_gCO2e"] == pytest.approx(resnet50["energy_kWh"] * env.pue * 232)
    for level in ("0.8", "0.95"):
        low, high = resnet50["intervals"][level]["energy_J"]
        assert low < resnet50["energy_J"] < high
    assert resnet50["intervals"]["0.8"]["energy_J"][1] < resnet50["intervals"]["0.95"]["energy_J"][1]
    assert resnet50["kind"] == "per-epoch" and "split conformal" in resnet50["label"]
    json.dumps(result, allow_nan=False)


def test_an_architecture_without_history_is_predicted_by_the_log_linear_regression():
    runs = history(seed=4, campaigns=20, noise=0.02)
    env = load_config().environment("local")
    prior = PriorInputs({**GFLOPS, "xception": 8.0}, IMAGES_PER_EPOCH, 100.0, "test power", False)
    (xception,) = predict(runs, env, [Planned("xception", "tensorflow", 1, 1000)], prior)["predictions"]
    assert xception["kind"] == "log-linear"
    assert 1200 * 45 < xception["energy_J"] < 2000 * 55  # between the two known architectures' FLOPs and energies
    assert xception["intervals"]["0.8"]["energy_J"] is not None
    assert "log-linear regression" in xception["notes"][0]


def test_too_little_history_gives_the_labelled_prior():
    runs = history(seed=5, campaigns=2, repetitions=1)  # 4 runs: 2 calibrate, 5 are needed
    env = load_config().environment("local")
    prior = PriorInputs(GFLOPS, IMAGES_PER_EPOCH, 85.0, "CPU TDP estimate 85 W (no GPU power limit known)", False)
    result = predict(runs, env, [Planned("vgg16", "tensorflow", 2, 10)], prior)
    assert result["status"] == "prior" and "too little history" in result["reason"] and "local" in result["reason"]
    (vgg16,) = result["predictions"]
    assert vgg16["kind"] == "prior" and vgg16["label"] == PRIOR_LABEL == "prior (not measured, no interval calibration)"
    assert vgg16["intervals"] == {}
    seconds = 3 * 15.5e9 * IMAGES_PER_EPOCH * 10 / ASSUMED_CPU_FLOPS_PER_S  # forward + backward, planned epochs
    assert vgg16["duration_s"] == pytest.approx(seconds) and vgg16["energy_J"] == pytest.approx(85 * seconds)
    header, rows, lines = prediction_table(result)
    assert rows[0][header.index("from")] == "prior*" and rows[0][header.index("80 % kJ")] == "none (prior)"
    assert any(line.startswith(f"* {PRIOR_LABEL}") for line in lines)
    assert any("too little history" in line for line in lines)


def tiny_history() -> pd.DataFrame:
    return pd.DataFrame([
        {"environment": "e", "architecture": "a", "backend": "tensorflow", "run_id": "c1-rep00", "campaign_id": "c1",
         "start": pd.Timestamp("2026-01-01", tz="UTC"), "total_energy_J": 1000.0, "duration_s": 10.0,
         "trained_epochs": 5, "gflops": 1.0, "images_seen": 500},
        {"environment": "e", "architecture": "a", "backend": "tensorflow", "run_id": "c2-rep00", "campaign_id": "c2",
         "start": pd.Timestamp("2026-01-02", tz="UTC"), "total_energy_J": 1500.0, "duration_s": 12.0,
         "trained_epochs": 5, "gflops": 1.0, "images_seen": 500},
    ])


def test_backtest_has_every_predictor_and_the_hand_computed_mape():
    details = {("a", "c1-rep00"): RunDetails(5, first_epoch_J=150.0, setup_J=300.0, setup_epochs=1,
                                             steady_per_epoch_J=200.0),
               ("a", "c2-rep00"): RunDetails(5, first_epoch_J=250.0, setup_J=500.0, setup_epochs=1,
                                             steady_per_epoch_J=250.0),
               ("b", "c1-rep00"): RunDetails(5, first_epoch_J=1e6)}  # another architecture's run of the same id
    prior = PriorInputs({"a": 1.0}, 100.0, 100.0, "test power", False)
    result = backtest(tiny_history(), "e", prior, 99, details, limits={("a", "c1-rep00"): 100.0,
                                                                          ("a", "c2-rep00"): 100.0})
    predictors = result["predictors"]
    assert list(predictors) == list(PREDICTORS) == ["ect", "carbontracker", "step", "pre", "tdp_time"]
    # TDP x time: 100 W x 10 s = 1000 J (0 %), 100 W x 12 s = 1200 J (20 %)
    assert predictors["tdp_time"]["mape_pct"] == pytest.approx(10.0)
    assert predictors["tdp_time"]["rmse_J"] == pytest.approx(math.sqrt(300 ** 2 / 2))
    # CarbonTracker: 150 J x 5 = 750 J (25 %), 250 J x 5 = 1250 J (16.7 %)
    assert predictors["carbontracker"]["mape_pct"] == pytest.approx((25 + 100 / 6) / 2)
    # STEP: 300 J + 200 J x 4 = 1100 J (10 %), 500 J + 250 J x 4 = 1500 J (0 %)
    assert predictors["step"]["mape_pct"] == pytest.approx(5.0)
    # ect: one run of history is too little: the prior, 3 x 1 GFLOP x 100 images x 5 epochs at 50 GFLOP/s x 100 W
    assert result["ect_kinds"] == {"prior": 2}
    assert predictors["ect"]["mape_pct"] == pytest.approx((200 + 100) / 2)
    assert predictors["ect"]["coverage"]["0.8"]["status"] == "no bounded interval"
    # PRE: one run to regress on is too few
    assert (predictors["pre"]["runs"], predictors["pre"]["missing"], predictors["pre"]["mape_pct"]) == (0, 2, None)
    for name in ("carbontracker", "step", "pre", "tdp_time"):
        assert predictors[name]["coverage"]["0.95"] == {"status": "no interval"}
    header, rows, _ = backtest_table(result)
    assert [row[0] for row in rows] == [predictors[name]["name"] for name in PREDICTORS]
    json.dumps(result, allow_nan=False)


def test_backtest_of_a_larger_history_covers_near_nominal():
    result = backtest(history(seed=6, campaigns=30, repetitions=1), "local", NO_PRIOR, 1000)
    ect = result["predictors"]["ect"]
    assert ect["runs"] == 60 and result["ect_kinds"] == {"per-epoch": 60}
    for level in ("0.8", "0.95"):
        assert not ect["coverage"][level]["flagged"], ect["coverage"][level]
    # without history.csv the online rules fall back to named approximations
    assert any("approximation" in how for how in result["predictors"]["carbontracker"]["how"])
    assert result["predictors"]["step"]["runs"] == 0  # no steady state anywhere
    assert result["predictors"]["pre"]["runs"] == 60


def test_a_coverage_far_from_nominal_is_flagged():
    tally = Tally(predicted=[1.0] * 100, actual=[1.0] * 100, covered={"0.8": [True] * 50 + [False] * 50,
                                                                      "0.95": [True] * 93 + [False] * 7})
    coverage = summarise(tally, (0.8, 0.95))["coverage"]
    assert coverage["0.8"]["flagged"] and "far from nominal" in coverage["0.8"]["status"]
    assert not coverage["0.95"]["flagged"] and coverage["0.95"]["status"] == "within tolerance"


@pytest.fixture
def processed(project, monkeypatch, tmp_path):
    monkeypatch.setenv("ECT_HOME", str(project))
    path = tmp_path / "metrics" / "processed" / "runs.parquet"
    path.parent.mkdir(parents=True)
    history(seed=7, campaigns=8).to_parquet(path)
    return path


def test_cli_predict_prints_a_table_and_json(processed, capsys):
    assert main(["predict", "local", "--processed", str(processed), "--architectures", "vgg16,resnet50"]) == 0
    out = capsys.readouterr().out
    assert "vgg16" in out and "80 % kJ" in out and "split conformal" in out
    assert main(["predict", "local", "--processed", str(processed), "--architectures", "resnet50", "--epochs", "45",
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    (resnet50,) = result["predictions"]
    assert resnet50["max_epochs"] == 45 and resnet50["epochs"] == 45 and resnet50["intervals"]["0.8"]["energy_J"]
    assert result["history"]["runs"] == 32


def test_cli_backtest_prints_a_table_and_json(processed, capsys):
    assert main(["predict", "local", "--processed", str(processed), "--backtest"]) == 0
    out = capsys.readouterr().out
    assert "CarbonTracker rule" in out and "MAPE %" in out and "80 % coverage" in out
    assert main(["predict", "local", "--processed", str(processed), "--backtest", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["predictors"]) == set(PREDICTORS)


@pytest.mark.parametrize("args, says", [
    (["predict", "mars"], ["unknown environment 'mars'"]),
    (["predict", "local", "--architectures", "vgg16,alexnet"], ["unknown architecture(s) 'alexnet'"]),
    (["predict", "local", "--epochs", "0"], ["--epochs 0"]),
])
def test_cli_bad_input_is_named(processed, capsys, args, says):
    assert main([*args, "--processed", str(processed)]) == 2
    err = capsys.readouterr().err
    for fragment in says:
        assert fragment in err


def test_cli_missing_processed_dataset_is_named(project, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ECT_HOME", str(project))
    missing = tmp_path / "nowhere" / "runs.parquet"
    assert main(["predict", "local", "--processed", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err


def test_cli_backtest_of_one_campaign_says_there_is_nothing_to_backtest(project, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ECT_HOME", str(project))
    path = tmp_path / "runs.parquet"
    history(seed=8, campaigns=1).to_parquet(path)
    assert main(["predict", "local", "--processed", str(path), "--backtest"]) == 2
    assert "nothing to backtest" in capsys.readouterr().err
