"""A run that started hot (its manifest's idle_baseline.hot_start) passes validation with a warning that says by how
much; a run that did not, or has no idle baseline, passes without one."""

import json

from conftest import log_lines
from raw_runs import write_run_with_idle_baseline, write_valid_run
from test_validation import describe
from ect.raw.layout import VALIDATION_FILE
from ect.validation import PASSED, Limits, validate_raw
from ect.validation.facts import HOT_START_CHECK
from ect.validation.verdicts import WARNING


def test_a_hot_start_is_a_warning_naming_the_temperatures_and_powers(tmp_path):
    raw = tmp_path / "raw"
    hot = write_run_with_idle_baseline(raw / "local" / "vgg16" / "night-rep01", hot_start=True)
    cool = write_run_with_idle_baseline(raw / "local" / "vgg16" / "night-rep02", hot_start=False)
    legacy = write_valid_run(raw / "local" / "vgg16" / "night-rep03")  # no idle baseline (IDLE_BASELINE 0, older)
    with log_lines():
        results = {r.folder: r for r in validate_raw(raw, Limits(), tmp_path / "validation")}

    for folder in (cool, legacy):
        assert results[folder].status == PASSED and results[folder].warnings == [], describe(results[folder].warnings)
    result = results[hot]
    assert result.status == PASSED and result.failures == [], describe(result.failures)
    (warning,) = result.warnings
    assert (warning.file, warning.check, warning.column, warning.level) == (
        "manifest.json", HOT_START_CHECK, "idle_baseline.hot_start", WARNING)
    assert warning.details == (
        "expected the run to start within the tolerance (+1 C, +2 %) of its campaign's first idle baseline (run "
        "vgg16/night-rep00: 38 C, 95 W): observed start temperature 40 C, idle GPU power 100 W (a cool-down too short "
        "for the GPU to return to idle; the run is kept)")
    record = json.loads((hot / VALIDATION_FILE).read_text())
    assert record["status"] == PASSED and record["failures"] == []
    assert [(w["check"], w["column"]) for w in record["warnings"]] == [(HOT_START_CHECK, "idle_baseline.hot_start")]
    summary = (tmp_path / "validation" / "summary.txt").read_text()
    assert "warning: manifest.json [idle_baseline.hot_start]: hot_start: expected the run to start within" in summary
