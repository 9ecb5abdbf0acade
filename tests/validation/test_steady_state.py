"""The steady state in validation and aggregation (issue 26, parts 5 and 6): a run whose steady state is shorter than
30 s, or has none, passes with a warning naming its duration and epochs; a history without per-epoch energy (runs
measured before it was recorded) is not warned of; the processed runs carry the steady-state columns, computed from
history.csv, and None where it has no per-epoch energy."""

import csv

import pandas as pd
import pytest

from conftest import REPO, log_lines
from raw_runs import write_valid_run
from ect.aggregate.aggregate import aggregate
from ect.config import load_config
from ect.validation import PASSED, Limits, validate_raw
from ect.validation.facts import STEADY_STATE_CHECK, STEADY_STATE_MIN_S
from ect.validation.verdicts import WARNING

H200_HISTORY = REPO / "tests" / "fixtures" / "steady" / "h200_mobilenet_v2_jax_history.csv"
ENVIRONMENTS = load_config(REPO, env={}).environments


def write_history(folder, epochs, energy=True):
    """history.csv of (phase, duration s, total energy J) per epoch, with or without the energy columns."""
    columns = ["epoch", "phase", "duration_s", "loss"] + (["gpu_energy_J", "gpu_energy_source", "cpu_energy_J",
                                                           "cpu_energy_source", "total_energy_J"] if energy else [])
    with open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        for n, (phase, duration, total) in enumerate(epochs, start=1):
            row = {"epoch": n, "phase": phase, "duration_s": duration, "loss": 0.5}
            if energy:
                row.update(gpu_energy_J=0.9 * total, gpu_energy_source="counter", cpu_energy_J=0.1 * total,
                           cpu_energy_source="estimated", total_energy_J=total)
            writer.writerow(row)


LONG = [("initial", 20, 4000), ("initial", 20, 3000), ("fine_tuning", 20, 4000), ("fine_tuning", 20, 3100)]
RUNS = {
    "h200": None,  # the H200's history.csv: 3.4 + 3.6 s of steady state
    "long": LONG,  # 40 s of steady state
    "first_epochs_only": [("initial", 20, 4000), ("fine_tuning", 20, 4000)],
    "no_energy": LONG,  # written without the energy columns
    "no_history": None,
}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    root = tmp_path_factory.mktemp("steady")
    raw = root / "metrics" / "raw"
    folders = {}
    for number, (name, epochs) in enumerate(RUNS.items()):
        folder = write_valid_run(raw / "local" / "vgg16" / f"{name}-rep{number:02d}")
        if name == "h200":
            (folder / "history.csv").write_text(H200_HISTORY.read_text())
        elif epochs is not None:
            write_history(folder, epochs, energy=name != "no_energy")
        folders[name] = folder
    validated = validate_raw(raw, Limits(), root / "metrics" / "validation")
    results = {r.folder.name.rsplit("-rep", 1)[0]: r for r in validated}
    with log_lines():
        aggregated = aggregate(raw, root / "metrics", ENVIRONMENTS, Limits())
    runs = pd.read_parquet(aggregated.processed).set_index("run_id")
    return results, {name: runs.loc[folder.name] for name, folder in folders.items()}


def steady_warnings(result):
    return [w for w in result.warnings if w.check == STEADY_STATE_CHECK]


def test_a_short_steady_state_is_a_warning_with_its_duration_and_epochs(checked):
    results, _ = checked
    result = results["h200"]
    assert result.status == PASSED and result.failures == []
    (warning,) = steady_warnings(result)
    assert warning.level == WARNING and warning.file == "history.csv" and warning.column == "duration_s"
    assert warning.details == ("steady state 7.055 s (epochs 2, 4) shorter than 30 s: per-epoch figures are rough")


def test_no_steady_state_is_a_warning_that_says_why(checked):
    results, _ = checked
    (warning,) = steady_warnings(results["first_epochs_only"])
    assert results["first_epochs_only"].status == PASSED
    assert warning.details.startswith("no steady state (no epoch after the first of its phase")
    assert f"at least {STEADY_STATE_MIN_S:g} s" in warning.details


@pytest.mark.parametrize("name", ["long", "no_energy", "no_history"])
def test_a_long_steady_state_or_a_history_without_energy_is_not_warned_of(checked, name):
    results, _ = checked
    assert results[name].status == PASSED and (results[name].failures, results[name].warnings) == ([], [])


def test_the_processed_runs_carry_the_steady_state_from_history_csv(checked):
    _, runs = checked
    h200 = runs["h200"]  # metrics.json of write_valid_run: 1000 images over 2 epochs
    duration, energy = 3.4203367939999794 + 3.6348360819999925, 452.83769578125 + 480.32893328125004
    assert h200["steady_duration_s"] == pytest.approx(duration, rel=1e-12)
    assert h200["steady_power_W"] == pytest.approx(energy / duration, rel=1e-12)
    assert h200["steady_energy_per_epoch_J"] == pytest.approx(energy / 2, rel=1e-12)
    assert h200["steady_energy_per_image_J"] == pytest.approx(energy / 2 / 500, rel=1e-12)
    assert h200["initial_steady_energy_per_epoch_J"] == pytest.approx(452.83769578125, rel=1e-12)
    assert h200["fine_tuning_steady_energy_per_epoch_J"] == pytest.approx(480.32893328125004, rel=1e-12)
    assert h200["fine_tuning_steady_power_W"] == pytest.approx(480.32893328125004 / 3.6348360819999925, rel=1e-12)
    long = runs["long"]
    assert long["steady_duration_s"] == 40 and long["steady_energy_per_epoch_J"] == pytest.approx(3050)
    assert long["steady_power_W"] == pytest.approx(6100 / 40)


@pytest.mark.parametrize("name", ["first_epochs_only", "no_energy", "no_history"])
def test_without_a_steady_state_the_columns_are_empty(checked, name):
    _, runs = checked
    row = runs[name]
    for column in ("steady_power_W", "steady_energy_per_epoch_J", "steady_energy_per_image_J", "steady_duration_s",
                   "initial_steady_energy_per_epoch_J", "fine_tuning_steady_power_W"):
        assert pd.isna(row[column]), column
    assert row["total_energy_J"] > 0  # the run itself is aggregated
