"""A DAG run's prediction before it trains (ect.runs.forecast, preflight): the energy budget's sum of upper ends, the
prior-only and no-history cases, the budget's settings, and the duration alert."""

import threading

import pytest

from ect import pipeline
from ect.config import load_config
from ect.errors import BudgetExceeded, ConfigError
from ect.runs.forecast import DurationWatch, budget_check, duration_limits
from histories import history, write_processed


def predicted(architecture, kind, kWh, repetitions=1, upper95=None, upper80=None, duration_s=60.0, duration95=None):
    """One entry of predict()'s result: the point and the upper ends given (an unbounded interval: None)."""
    def level(upper, duration_upper):
        return {"energy_kWh": None if upper is None else [kWh / 2, upper],
                "duration_s": None if duration_upper is None else [duration_s / 2, duration_upper]}
    return {"architecture": architecture, "backend": "tensorflow", "repetitions": repetitions, "kind": kind,
            "energy_kWh": kWh, "duration_s": None if kWh is None else duration_s,
            "intervals": {} if kind in (None, "prior") else {"0.95": level(upper95, duration95),
                                                              "0.8": level(upper80, duration95 and duration95 / 2)}}


def result_of(*predictions, status="calibrated", reason=None):
    return {"environment": "local", "status": status, "reason": reason, "predictions": list(predictions),
            "history": {"runs": 40, "calibration_runs": 20}}


def test_the_budget_sums_each_runs_95_percent_upper_end_times_its_repetitions():
    result = result_of(predicted("vgg16", "per-epoch", 1.0, repetitions=3, upper95=1.5, upper80=1.2),
                       predicted("resnet50", "per-epoch", 2.0, repetitions=2, upper95=2.5, upper80=2.2))
    budget = budget_check(result, 9.0)
    assert budget.upper_kWh == pytest.approx(3 * 1.5 + 2 * 2.5) and budget.exceeded  # 4.5 + 5 > 9
    assert "95 % upper end of 5 run(s)" in budget.source and "40 measured run(s)" in budget.source
    assert "9.5 kWh exceeds the energy budget 9 kWh (ENERGY_BUDGET_KWH)" in budget.message
    assert not budget_check(result, 9.5).exceeded  # at the budget: within


def test_an_unbounded_95_percent_interval_counts_its_80_percent_upper_end_and_says_so():
    result = result_of(predicted("vgg16", "per-epoch", 1.0, repetitions=2, upper95=None, upper80=1.25))
    budget = budget_check(result, 2.0)
    assert budget.upper_kWh == pytest.approx(2.5) and budget.exceeded
    assert "80 % upper end of 2 run(s)" in budget.source


def test_a_prior_only_prediction_counts_the_priors_point_and_names_it():
    result = result_of(predicted("vgg16", "prior", 0.4, repetitions=2), predicted("tiny_cnn", "prior", 0.1),
                       status="prior", reason="too little history: 2 calibration run(s)")
    budget = budget_check(result, 0.8)
    assert budget.upper_kWh == pytest.approx(0.9) and budget.exceeded
    assert "prior point of 3 run(s)" in budget.source and "too little history" in budget.source


def test_runs_without_a_prediction_are_left_out_and_named_and_none_at_all_leaves_the_budget_unchecked():
    result = result_of(predicted("vgg16", "per-epoch", 1.0, upper95=1.5, upper80=1.2), predicted("xception", None, None))
    budget = budget_check(result, 1.0)
    assert budget.exceeded and budget.unpredicted == ("xception · tensorflow",)
    assert "without a prediction, not counted: xception · tensorflow" in budget.message
    nothing = budget_check(result_of(predicted("xception", None, None), status="prior", reason="no FLOPs"), 1.0)
    assert not nothing.exceeded and nothing.upper_kWh is None and "not checked" in nothing.message
    assert not budget_check(None, 1.0).exceeded  # no prediction could be made at all
    assert budget_check(result, None).message == "no energy budget (ENERGY_BUDGET_KWH empty)"


@pytest.fixture
def demo(project, monkeypatch, tmp_path):
    """The demo profile's plan (tiny_cnn and vgg16, 1 + 1 epochs, one repetition) with an empty METRICS_DIR."""
    monkeypatch.setenv("ECT_HOME", str(project))
    monkeypatch.setenv("ECT_METRICS_DIR", str(tmp_path / "metrics"))
    return tmp_path / "metrics"


def test_preflight_without_history_plans_says_no_prediction_and_does_not_fail(demo, caplog):
    caplog.set_level("INFO")
    plan = pipeline.preflight("local", {"profile": "demo", "energy_budget_kwh": 1e-9}, "manual__1")
    assert plan["runs"] and plan["forecast"]["status"] == "prior"
    assert [p["energy_J"] for p in plan["forecast"]["predictions"]] == [None, None]
    assert not plan["budget"]["exceeded"] and "not checked" in plan["budget"]["message"]
    assert plan["duration_alerts_s"] == {}
    assert "no prior: forward GFLOPs of vgg16 unknown" in caplog.text and "energy kJ" in caplog.text


def test_preflight_stops_a_run_over_its_budget_naming_the_budget_the_figure_and_its_source(demo):
    write_processed(demo, history(campaigns=12))  # 24 calibration runs: bounded 95 % intervals
    with pytest.raises(BudgetExceeded) as raised:
        pipeline.preflight("local", {"profile": "demo", "energy_budget_kwh": 0.004}, "manual__1")
    message = str(raised.value)
    assert "energy budget 0.004 kWh (trigger parameter 'energy_budget_kwh')" in message
    assert "predicted upper bound 0.006" in message and "95 % upper end of 2 run(s)" in message
    assert "48 measured run(s) of environment local" in message and "before any training" in message


def test_with_budget_approval_preflight_returns_the_plan_asking_for_approval(demo, monkeypatch):
    write_processed(demo, history(campaigns=12))
    monkeypatch.setenv("ECT_ENERGY_BUDGET_KWH", "0.004")
    monkeypatch.setenv("ECT_BUDGET_APPROVAL", "true")
    plan = pipeline.preflight("local", {"profile": "demo"}, "manual__1")
    budget = plan["budget"]
    assert budget["exceeded"] and budget["approval_needed"] and budget["budget_kWh"] == 0.004
    assert "ENERGY_BUDGET_KWH of the configuration" in budget["message"]
    assert "vgg16" in plan["forecast"]["table"] and plan["forecast"]["status"] == "calibrated"
    # Duration alerts: DURATION_ALERT_FACTOR (2) x the 95 % upper end + start-up, idle baseline and cool-down.
    cfg = load_config(env={"ECT_HOME": str(demo.parent / "project")}, profile="demo")
    allowance = 120 + cfg.experiment.idle_baseline + 60 * cfg.experiment.cooldown
    vgg16 = next(p for p in plan["forecast"]["predictions"] if p["architecture"] == "vgg16")
    assert plan["duration_alerts_s"]["vgg16/tensorflow"] == pytest.approx(
        2 * vgg16["intervals"]["0.95"]["duration_s"][1] + allowance)
    monkeypatch.setenv("ECT_ENERGY_BUDGET_KWH", "1")
    assert not pipeline.preflight("local", {"profile": "demo"}, "manual__2")["budget"]["approval_needed"]


@pytest.mark.parametrize("key, value, expected", [
    ("ENERGY_BUDGET_KWH", "-1", "a finite number > 0"),
    ("ENERGY_BUDGET_KWH", "lots", "a finite number > 0"),
    ("BUDGET_APPROVAL", "maybe", "true or false"),
    ("DURATION_ALERT_FACTOR", "0.5", "0 (off) or a finite number >= 1"),
])
def test_a_bad_budget_setting_is_an_error_naming_the_key(project, key, value, expected):
    with pytest.raises(ConfigError) as raised:
        load_config(project, env={f"ECT_{key}": value})
    assert key in str(raised.value) and expected in str(raised.value)


def test_the_budget_settings_parse():
    cfg = load_config(env={"ECT_ENERGY_BUDGET_KWH": "2.5", "ECT_BUDGET_APPROVAL": "true",
                           "ECT_DURATION_ALERT_FACTOR": "0"})
    assert (cfg.experiment.energy_budget_kwh, cfg.experiment.budget_approval,
            cfg.experiment.duration_alert_factor) == (2.5, True, 0)
    assert load_config(env={}).experiment.energy_budget_kwh is None


def test_duration_limits_are_none_for_a_prior_and_off_at_factor_zero():
    result = result_of(predicted("vgg16", "per-epoch", 1.0, upper95=1.5, upper80=1.2, duration95=100.0),
                       predicted("tiny_cnn", "prior", 0.1))
    assert duration_limits(result, 3, 10) == {"vgg16/tensorflow": 310.0}
    assert duration_limits(result, 0, 10) == {} and duration_limits(None, 3, 10) == {}


def test_the_duration_watch_alerts_once_when_the_block_runs_past_its_limit_and_not_when_it_ends_in_time():
    alerts, fired = [], threading.Event()

    def alert(message):
        alerts.append(message)
        fired.set()

    with DurationWatch(0.01, "vgg16 · tensorflow · rep 0", alert) as watch:
        assert fired.wait(timeout=60)
    assert watch.fired and len(alerts) == 1 and "vgg16 · tensorflow · rep 0 is still running" in alerts[0]
    with DurationWatch(3600, "tiny_cnn · tensorflow · rep 0", alert) as watch:
        pass
    assert not watch.fired and len(alerts) == 1
    with DurationWatch(None, "no limit", alert) as watch:
        pass
    assert watch._timer is None
