"""A training's steady state from its per-epoch energy (issue 26, part 5): each phase's first epoch left out, then
from where the energy settles; power, energy per epoch and per image, duration; per phase and for the run."""

import pytest

from conftest import REPO
from ect.steady import images_per_epoch, read_history, steady_state

# mobilenet_v2 on JAX on an H200 (README, On a real GPU): 8192 images seen over 4 epochs.
H200 = REPO / "tests" / "fixtures" / "steady" / "h200_mobilenet_v2_jax_history.csv"


def history(*epochs):
    """(phase, duration s, total energy J) per epoch, numbered from 1."""
    return [{"epoch": n, "phase": phase, "duration_s": duration, "total_energy_J": energy}
            for n, (phase, duration, energy) in enumerate(epochs, start=1)]


def test_the_h200_run_leaves_out_each_phases_compiling_first_epoch():
    steady = steady_state(read_history(H200.read_text()), images_per_epoch({"images_seen": 8192, "trained_epochs": 4}))
    assert steady.overall.epochs == (2, 4)
    initial, fine_tuning = steady.phases["initial"], steady.phases["fine_tuning"]
    assert initial.epochs == (2,) and fine_tuning.epochs == (4,)
    assert initial.energy_per_epoch_J == pytest.approx(452.83769578125, rel=1e-12)
    assert fine_tuning.energy_per_epoch_J == pytest.approx(480.32893328125004, rel=1e-12)
    duration = 3.4203367939999794 + 3.6348360819999925
    energy = 452.83769578125 + 480.32893328125004
    assert steady.overall.duration_s == pytest.approx(duration, rel=1e-12)
    assert steady.overall.power_W == pytest.approx(energy / duration, rel=1e-12)  # ~132 W
    assert steady.overall.energy_per_epoch_J == pytest.approx(energy / 2, rel=1e-12)
    assert steady.overall.energy_per_image_J == pytest.approx(energy / 2 / 2048, rel=1e-12)
    assert initial.energy_per_image_J == pytest.approx(452.83769578125 / 2048, rel=1e-12)
    # The compiling epochs (7152 J and 7313 J) are nowhere in it.
    assert steady.overall.energy_J < 1000


def test_the_steady_state_starts_where_the_epoch_energy_settles():
    # Phase 1: 1000 J set-up, then 300 J still warming (median of the later epochs 100 J), then ~100 J.
    steady = steady_state(history(("initial", 10, 1000), ("initial", 3, 300), ("initial", 1, 105), ("initial", 1, 100),
                                  ("initial", 1, 95), ("fine_tuning", 10, 900), ("fine_tuning", 2, 200),
                                  ("fine_tuning", 2, 190)), images_per_epoch=50)
    assert steady.phases["initial"].epochs == (3, 4, 5)
    assert steady.phases["initial"].energy_per_epoch_J == pytest.approx(100.0)
    assert steady.phases["initial"].power_W == pytest.approx(100.0)
    assert steady.phases["fine_tuning"].epochs == (7, 8)
    assert steady.phases["fine_tuning"].energy_per_image_J == pytest.approx(195.0 / 50)
    overall = steady.overall
    assert overall.epochs == (3, 4, 5, 7, 8) and overall.duration_s == pytest.approx(7.0)
    assert overall.energy_J == pytest.approx(690.0) and overall.power_W == pytest.approx(690.0 / 7)
    assert overall.energy_per_epoch_J == pytest.approx(138.0)
    assert overall.energy_per_image_J == pytest.approx(138.0 / 50)


def test_two_later_epochs_far_apart_are_both_kept():
    """With an even count the lower median is an epoch's own energy: the steady state always has an epoch."""
    steady = steady_state(history(("initial", 5, 500), ("initial", 1, 100), ("initial", 1, 300)))
    assert steady.overall.epochs == (2, 3)


def test_a_history_without_an_epoch_after_the_first_of_its_phase_has_no_steady_state():
    steady = steady_state(history(("initial", 5, 500), ("fine_tuning", 6, 600)))
    assert steady.overall is None and steady.phases == {} and steady.duration_s == 0
    assert "more epochs are needed" in steady.reason and steady.has_energy
    record = steady.to_dict()
    assert record["epochs"] == [] and record["energy_per_epoch_J"] is None and record["reason"] == steady.reason


def test_a_phase_with_one_epoch_is_left_out_and_the_other_phase_counts():
    steady = steady_state(history(("initial", 5, 500), ("fine_tuning", 6, 600), ("fine_tuning", 2, 200)))
    assert set(steady.phases) == {"fine_tuning"} and steady.overall.epochs == (3,)


def test_a_history_without_energy_columns_is_no_steady_state_and_says_so():
    rows = [{"epoch": "1", "phase": "initial", "duration_s": "5.0", "loss": "0.7"},
            {"epoch": "2", "phase": "initial", "duration_s": "4.0", "loss": "0.6"}]
    steady = steady_state(rows)
    assert steady.overall is None and not steady.has_energy


def test_the_manifest_record_keeps_the_older_keys_and_adds_the_phases():
    record = steady_state(history(("initial", 10, 1000), ("initial", 2, 200)), images_per_epoch=0).to_dict()
    assert record["epochs"] == [2] and record["energy_per_epoch_J"] == 200 and record["duration_per_epoch_s"] == 2
    assert record["power_W"] == 100 and record["energy_per_image_J"] is None
    assert record["phases"]["initial"]["epochs"] == [2] and "first epoch left out" in record["rule"]


@pytest.mark.parametrize("metrics, expected", [
    ({"images_seen": 8192, "trained_epochs": 4}, 2048.0),
    ({"images_seen": 8192}, None), ({"images_seen": 0, "trained_epochs": 4}, None), (None, None),
    ({"images_seen": "8192", "trained_epochs": 4}, 2048.0),
])
def test_images_per_epoch(metrics, expected):
    assert images_per_epoch(metrics) == expected
