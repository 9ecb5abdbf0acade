"""The projection of a running training's total energy (ect.projection) on synthetic runs whose true model is known:
3 initial epochs (warm-up 500 J, then 50 J), then fine-tuning (warm-up 900 J, then 120 J, 5 % noise) stopped by
early stopping after a number of epochs drawn from a known distribution, which the history samples too."""

import random
import statistics

import pytest

from ect.projection import LEVEL, NO_HISTORY, PROJECTION_COLUMNS, History, Plan, order_statistics, project

PLAN = Plan(3, 200)
RATES = {"initial": 50.0, "fine_tuning": 120.0}
WARM_UP = {"initial": 500.0, "fine_tuning": 900.0}


def stopping_epochs(rng) -> int:
    """The fine-tuning epochs early stopping runs: about 80 +/- 20."""
    return min(PLAN.ft_epochs, max(5, round(rng.gauss(80, 20))))


def synthetic_run(rng, fine_tuning_epochs: int, noise: float = 0.05) -> list[dict]:
    rows = []
    for phase, count in (("initial", PLAN.initial_epochs), ("fine_tuning", fine_tuning_epochs)):
        for i in range(count):
            energy = WARM_UP[phase] if i == 0 else RATES[phase] * (1 + rng.gauss(0, noise))
            rows.append({"epoch": len(rows) + 1, "phase": phase, "duration_s": 1.0, "total_energy_J": energy})
    return rows


def synthetic_history(rng, runs: int = 40) -> History:
    return History(tuple(PLAN.initial_epochs + stopping_epochs(rng) for _ in range(runs)), dict(RATES), "synthetic")


def projection_at(rows: list[dict], epoch: int, history: History | None):
    """What the run projects after `epoch` (the recorder's phase_ended: the initial phase's plan done, or the end)."""
    return project(rows[:epoch], PLAN, history, epoch == PLAN.initial_epochs or epoch == len(rows))


def test_at_the_last_epoch_the_projection_is_the_measured_total():
    rng = random.Random(3)
    rows = synthetic_run(rng, 37)
    final = projection_at(rows, len(rows), synthetic_history(rng))
    truth = sum(r["total_energy_J"] for r in rows)
    assert (final.total_energy_J, final.low_J, final.high_J, final.epochs) == (truth, truth, truth, len(rows))
    assert final.basis == "measured (training ended)"
    assert final.text() == f"total {truth / 1000:.4g} kJ in {len(rows)} epochs; measured (training ended)"


def test_the_projection_converges_to_the_truth_as_epochs_pass():
    rng = random.Random(7)
    errors = {epoch: [] for epoch in (5, 40, 60, 80)}
    for _ in range(300):
        rows = synthetic_run(rng, stopping_epochs(rng))
        history = synthetic_history(rng)
        truth = sum(r["total_energy_J"] for r in rows)
        for epoch in errors:
            if epoch < len(rows):  # the runs that got there
                errors[epoch].append(abs(projection_at(rows, epoch, history).total_energy_J - truth) / truth)
    mean_errors = [statistics.fmean(errors[epoch]) for epoch in sorted(errors)]
    assert mean_errors == sorted(mean_errors, reverse=True) and len(set(mean_errors)) == len(mean_errors), mean_errors
    assert mean_errors[-1] < mean_errors[0] / 2


def test_an_exact_history_and_noiseless_epochs_give_the_truth_once_fine_tuning_has_settled():
    rng = random.Random(1)
    rows = synthetic_run(rng, 30, noise=0.0)
    truth = sum(r["total_energy_J"] for r in rows)
    exact = History((PLAN.initial_epochs + 30,) * 10, dict(RATES), "synthetic")
    # Before fine-tuning's second epoch its warm-up epoch is counted at the steady rate: low by the warm-up's extra.
    assert projection_at(rows, 2, exact).total_energy_J == pytest.approx(truth - (900 - 120))
    for epoch in range(PLAN.initial_epochs + 2, len(rows) + 1):
        projection = projection_at(rows, epoch, exact)
        assert projection.total_energy_J == pytest.approx(truth, rel=1e-12) and projection.epochs == len(rows)


@pytest.mark.parametrize("epoch", [5, 20])
def test_the_interval_covers_the_truth_at_about_its_nominal_rate(epoch):
    rng = random.Random(11 + epoch)
    hits = []
    for _ in range(1000):
        rows = synthetic_run(rng, stopping_epochs(rng))
        projection = projection_at(rows, epoch, synthetic_history(rng))
        hits.append(projection.low_J <= sum(r["total_energy_J"] for r in rows) <= projection.high_J)
    assert LEVEL - 0.05 <= statistics.fmean(hits) <= LEVEL + 0.07  # the combination of the two spreads is conservative


def test_warm_up_epochs_are_left_out_of_the_energy_per_epoch():
    rows = [{"epoch": 1, "phase": "initial", "duration_s": 9.0, "total_energy_J": 1000.0},
            {"epoch": 2, "phase": "initial", "duration_s": 1.0, "total_energy_J": 100.0},
            {"epoch": 3, "phase": "initial", "duration_s": 1.0, "total_energy_J": 110.0}]
    projection = project(rows, Plan(10, 0), None)
    assert projection.total_energy_J == pytest.approx(1210 + 7 * 105)  # 105 J: the settled epochs' mean
    assert "initial at its 2 settled epoch(s)" in projection.basis
    first = project(rows[:1], Plan(10, 0), None)  # only the warm-up epoch so far: it, and it says so
    assert first.total_energy_J == pytest.approx(10 * 1000) and "warm-up epoch" in first.basis


def test_without_history_the_plan_s_maximum_is_projected_and_labelled():
    rows = synthetic_run(random.Random(2), 10, noise=0.0)
    projection = projection_at(rows, 5, None)
    assert projection.basis.startswith(NO_HISTORY)
    assert projection.epochs == PLAN.initial_epochs + PLAN.ft_epochs and projection.low_J is projection.high_J is None
    assert projection.total_energy_J == pytest.approx(500 + 2 * 50 + 900 + 120 + (PLAN.ft_epochs - 2) * 120)
    sooner = History((4, 5), dict(RATES), "synthetic")  # no history run trained more than 5 epochs
    assert projection_at(rows, 5, sooner).basis.startswith("plan only (no history run of 2 trained more than 5")
    assert projection_at(rows, 5, History((), {}, "")).basis.startswith(NO_HISTORY)


def test_the_columns_and_the_log_line():
    rows = synthetic_run(random.Random(5), 10)
    projection = projection_at(rows, 5, History((13, 14, 15, 16, 17, 18, 19, 20, 21), dict(RATES), "synthetic"))
    columns = projection.columns()
    assert tuple(columns) == PROJECTION_COLUMNS == ("projected_total_energy_J", "projected_energy_low_80pct_J",
                                                    "projected_energy_high_80pct_J", "projected_epochs",
                                                    "projection_basis")
    assert columns["projected_energy_low_80pct_J"] <= columns["projected_total_energy_J"] \
        <= columns["projected_energy_high_80pct_J"]
    assert columns["projection_basis"].startswith("history (synthetic): 9 of 9 run(s) trained more than 5 epoch(s)")
    text = projection.text()
    assert text.startswith("projected ") and " kJ (80 % " in text and "epochs; history" in text
    assert project([{"epoch": 1, "phase": "initial", "duration_s": 1.0}], PLAN, None) is None  # no energy measured


def test_order_statistics_are_the_split_conformal_ranks():
    values = list(range(1, 20))  # n = 19: ranks floor(20 * 0.1) = 2 and ceil(20 * 0.9) = 18
    assert order_statistics(values, 0.8) == (2, 18)
    assert order_statistics([5, 6], 0.8) == (None, None)  # too few for either end
