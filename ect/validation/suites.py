"""The Great Expectations suites of a batch of runs, and what each failure says.

Three tables a batch, one validation each (a Great Expectations expectation costs about 15 ms whatever the size of
its table, so the checks are rows, not expectations):
- the sample checks: one row per run and per-sample check (ect.validation.facts.SampleCheck: the expectation it stands
  for, its column, how many values offend it), two expectations (errors, warnings) whatever the number of checks;
- the run facts: one row per run (rows, the largest gap, coverage, spacing, sample share, CPU energy read gaps, the
  steady state, the counter against the power), each reported as the expectation it stands for;
- the manifest: one row per run (the window, the hot start), and one row per run and field of manifest.json and
  metrics.json (ect.validation.fields).
"""

from __future__ import annotations

from ect.raw.layout import CPU_FILE, GPU_FILE, HISTORY_FILE
from ect.validation.facts import (COUNTER_POWER_CHECK, COUNTER_POWER_TOLERANCE, COUNTER_POWER_WARNING_SHARE,
                                  COVERAGE_INTERVALS, CPU_ENERGY_COLUMNS, HOT_START_CHECK, INTERVAL_FACTOR,
                                  MIN_SAMPLE_SHARE, STEADY_STATE_CHECK, STEADY_STATE_MIN_S, counter_power_ratio, prefix,
                                  significant)
from ect.energy import NVML_POWER_AVERAGE_S
from ect.validation.fields import BETWEEN, CHECKS, finite_number
from ect.validation.verdicts import ERROR, WARNING, Failure, Limits

OFFENDING = {ERROR: "offending", WARNING: "offending_warning"}  # the sample-check table's count column per level


def sample_expectations() -> list:
    """No value offends a per-sample check: one expectation per level over the rows of every run and check."""
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeBetween(column=column, max_value=0, meta={"level": level})
            for level, column in OFFENDING.items()]


def facts_expectations(files: list[str], present: set) -> list:
    """Run-level facts of each file, reported as the table expectations they stand for."""
    import great_expectations.expectations as gxe

    expectations = []
    for file in files:
        start = prefix(file)
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(column=f"{start}columns_ok", value_set=[True], meta={
                "file": file, "check": "expect_table_columns_to_match_set", "column": None}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{start}rows", column_B=f"{start}min_rows", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": file, "check": "expect_table_row_count_to_be_between", "column": None}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{start}max_gap_s", column_B=f"{start}max_step_s", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": file, "check": "expect_column_max_to_be_between", "column": "timestamp_step_s"}),
        ]
        if f"{start}late_s" in present:  # the window's coverage by every sensor of the file
            expectations += [gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{start}coverage_tolerance_s", column_B=f"{start}{edge}_s", or_equal=True,
                ignore_row_if="either_value_is_missing", meta={"file": file, "check": check, "column": "timestamp"})
                for edge, check in (("late", "expect_column_min_to_be_between"),
                                    ("early", "expect_column_max_to_be_between"))]
        if f"{start}spacing_ratio" in present:  # the declared interval against the observed spacing
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=f"{start}spacing_ratio", max_value=INTERVAL_FACTOR,
                meta={"file": file, "check": "expect_column_median_to_be_between", "column": "timestamp_step_s"}))
        if f"{start}sample_share" in present:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=f"{start}sample_share", min_value=MIN_SAMPLE_SHARE,
                meta={"file": file, "check": "expect_table_row_count_to_be_between", "column": None,
                      "level": WARNING}))
    for column in CPU_ENERGY_COLUMNS:  # an empty value is a missing reading: gaps between a column's readings
        if f"{column}_max_read_step_s" in present and "cpu_max_gap_s" in present:
            expectations.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="cpu_max_gap_s", column_B=f"{column}_max_read_step_s", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": CPU_FILE, "check": "expect_column_max_to_be_between", "column": f"{column}_read_step_s"}))
    if "steady_state_s" in present:
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column="steady_state_s", min_value=STEADY_STATE_MIN_S,
                                                              meta={"file": HISTORY_FILE, "check": STEADY_STATE_CHECK,
                                                                    "column": "duration_s", "level": WARNING}))
    if "gpu_counter_power_ratio" in present:  # the energy counter against the integrated power
        expectations += [
            gxe.ExpectColumnValuesToBeBetween(column="gpu_counter_power_ratio", max_value=1.0, meta={
                "file": GPU_FILE, "check": COUNTER_POWER_CHECK, "column": "energy_counter_mJ"}),
            gxe.ExpectColumnValuesToBeBetween(column="gpu_counter_power_warning_ratio",
                                              max_value=COUNTER_POWER_WARNING_SHARE, meta={
                                                  "file": GPU_FILE, "check": COUNTER_POWER_CHECK,
                                                  "column": "energy_counter_mJ", "level": WARNING})]
    return expectations


def manifest_expectations(present: set) -> list:
    """The window: ordered, and inside the samples that carry the energy."""
    import great_expectations.expectations as gxe

    expectations = [gxe.ExpectColumnPairValuesAToBeGreaterThanB(
        column_A="window_end_unix_s", column_B="window_start_unix_s", or_equal=False,
        ignore_row_if="either_value_is_missing",
        meta={"column": "window_end_unix_s", "meaning": "the measurement window ends after it starts (pairs: end, start)"})]
    for column, meaning_ in (("window_start_after_first_sample_ms", "the measurement window starts inside the samples"),
                             ("window_end_before_last_sample_ms", "the measurement window ends inside the samples")):
        if column in present:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, meta={"meaning": meaning_}))
    if "hot_start" in present:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(column="hot_start", value_set=[False], meta={
            "check": HOT_START_CHECK, "column": "idle_baseline.hot_start", "level": WARNING,
            "meaning": "the run to start at its campaign's first idle baseline"}))
    return expectations


def field_expectations() -> list:
    """The fields of manifest.json and metrics.json, one row per run and field (ect.validation.fields): of their kind,
    present where required, within their range, in their set, the same as the folder's name."""
    import great_expectations.expectations as gxe

    expectations = [gxe.ExpectColumnValuesToBeInSet(column=column, value_set=[True], meta={"check": check})
                    for column, check in CHECKS]
    expectations += [gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A=a, column_B=b, or_equal=True,
                                                                 ignore_row_if="either_value_is_missing",
                                                                 meta={"check": BETWEEN})
                     for a, b in (("number", "low"), ("high", "number"))]
    return expectations


def hot_start_details(data: dict) -> str:
    """What a hot start's warning says: the run's start temperature and idle GPU power against its campaign's first
    idle baseline and the tolerance."""
    idle = data.get("idle_baseline") if isinstance(data.get("idle_baseline"), dict) else {}
    reference = idle.get("reference") if isinstance(idle.get("reference"), dict) else {}
    tolerance = idle.get("tolerance") if isinstance(idle.get("tolerance"), dict) else {}

    def shown(value, unit: str) -> str:
        number = finite_number(value)
        return "?" if number is None else f"{significant(number)}{unit}"

    return (f"expected the run to start within the tolerance (+{shown(tolerance.get('temperature_C'), ' C')}, "
            f"+{shown(tolerance.get('power_pct'), ' %')}) of its campaign's first idle baseline (run "
            f"{reference.get('run')}: {shown(reference.get('temperature_C'), ' C')}, "
            f"{shown(reference.get('gpu_power_W'), ' W')}): observed start temperature "
            f"{shown(idle.get('start_temperature_C'), ' C')}, idle GPU power "
            f"{shown(idle.get('gpu_power_W_total'), ' W')} (a cool-down too short for the GPU to return to idle; the "
            "run is kept)")


def _counter_power_details(checks: list, level: str) -> str:
    """The GPUs whose counter and integrated power disagree beyond the tolerance (an error) or beyond the warning
    share of it (a warning), with both energies."""
    share = 1.0 if level == ERROR else COUNTER_POWER_WARNING_SHARE
    named = []
    for sensor, span_s, counter_J, power_J, tolerance_J in checks:
        ratio = counter_power_ratio((sensor, span_s, counter_J, power_J, tolerance_J))
        if ratio > share and (level == ERROR or ratio <= 1):
            if not counter_J:
                difference = "the counter did not count"
            elif abs(power_J / counter_J - 1) >= 10:
                difference = f"{power_J / counter_J:.4g} x the counter"
            else:
                difference = f"{100 * (power_J / counter_J - 1):+.3g} % of the counter"
            named.append(f"{sensor} over {span_s:g} s: counter {significant(counter_J)} J, integrated power_W "
                         f"{significant(power_J)} J ({difference}), difference "
                         f"{significant(abs(power_J - counter_J))} J, tolerance {significant(tolerance_J)} J")
    what = "the tolerance" if level == ERROR else f"{COUNTER_POWER_WARNING_SHARE:g} x the tolerance"
    return (f"expected the energy counter's increase and the trapezoid of power_W over the window to differ by at "
            f"most {what}, {COUNTER_POWER_TOLERANCE:g} x the counter + {NVML_POWER_AVERAGE_S:g} s x the highest "
            f"power_W within {NVML_POWER_AVERAGE_S:g} s + one interval of each edge (NVML's power is a one-second "
            f"average; a counter in J or kJ, or power in kW or mW, is far outside): observed {'; '.join(named)}")


def fact_details(failure: Failure, facts: dict, limits: Limits) -> str:
    """What a failed run-level fact says: what was expected, and what the run's files hold."""
    check, file = failure.check, failure.file
    start = prefix(file)
    if check == STEADY_STATE_CHECK:
        if not facts["steady_state_epochs"]:
            return (f"no steady state ({facts['steady_state_reason']}), expected at least {STEADY_STATE_MIN_S:g} s: "
                    "no per-epoch figures")
        return (f"steady state {significant(facts['steady_state_s'])} s (epochs "
                f"{', '.join(map(str, facts['steady_state_epochs']))}) shorter than {STEADY_STATE_MIN_S:g} s: "
                "per-epoch figures are rough")
    if check == COUNTER_POWER_CHECK:
        return _counter_power_details(facts["gpu_counter_power"], failure.level)
    if check == "expect_column_median_to_be_between":
        interval_s = facts[f"{start}interval_s"]
        low, high = interval_s / INTERVAL_FACTOR, interval_s * INTERVAL_FACTOR
        offending = [f"{sensor}: {significant(spacing)} s" for sensor, spacing in facts[f"{start}spacings"]
                     if not low <= spacing <= high]
        return (f"expected the median spacing of each sensor's samples within {INTERVAL_FACTOR:g} x of the manifest's "
                f"sampling_interval_s ({interval_s:g} s: {significant(low)}-{significant(high)} s): observed "
                f"{', '.join(offending)}")
    if check == "expect_table_row_count_to_be_between" and failure.level == WARNING:
        interval_s = facts[f"{start}interval_s"]
        offending = [f"{sensor}: {inside} of {expected:g} ({100 * inside / max(expected, 1e-9):.0f} %)"
                     for sensor, inside, expected in facts[f"{start}shares"] if inside < MIN_SAMPLE_SHARE * expected]
        return (f"expected at least {100 * MIN_SAMPLE_SHARE:g} % of the samples the window holds at "
                f"{interval_s:g} s (duration / interval): observed {', '.join(offending)}")
    if failure.column and failure.column.endswith("_read_step_s"):
        column = failure.column[:-len("_read_step_s")]
        max_gap_s, interval_s = facts[f"{start}max_gap_s"], facts[f"{start}interval_s"]
        return (f"expected no gap between the readings of {column} longer than {max_gap_s:g} s "
                f"({limits.max_gap_factor:g} x {interval_s:g} s; an empty value is a missing reading): observed "
                f"{significant(facts[f'{column}_max_read_step_s'])} s")
    if check == "expect_table_columns_to_match_set":
        expected, seen = set(facts[f"{start}expected_columns"]), set(facts[f"{start}columns"])
        return f"expected the columns of {file}: missing {sorted(expected - seen)}, unexpected {sorted(seen - expected)}"
    if check == "expect_table_row_count_to_be_between":
        per = " per GPU" if file == GPU_FILE else ""
        return f"expected at least {limits.min_samples} samples{per}: observed {facts[f'{start}rows']}"
    interval_s = facts[f"{start}interval_s"]
    if failure.column == "timestamp":
        tolerance, sensors = facts[f"{start}coverage_tolerance_s"], "every GPU's samples" if file == GPU_FILE else \
            "the CPU's energy readings"
        edge, what = ("late", "begin at most {} s after the window starts") if check == "expect_column_min_to_be_between" \
            else ("early", "end at most {} s before the window ends")
        offending = [f"{sensor}: {offset:g} s" for sensor, offset in facts[f"{start}{edge}"] if offset > tolerance]
        return (f"expected {sensors} to {what.format(f'{tolerance:g}')} ({COVERAGE_INTERVALS} x {interval_s:g} s): "
                f"observed {', '.join(offending)}")
    max_gap_s = facts[f"{start}max_gap_s"]
    max_step_s = facts[f"{start}max_step_s"]
    return (f"expected no gap between samples longer than {max_gap_s:g} s ({limits.max_gap_factor:g} x "
            f"{interval_s:g} s): observed {max_step_s}")
