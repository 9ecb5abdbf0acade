"""The checks of raw run folders, a batch of runs at a time: files that must parse, then Great Expectations suites.

The CSVs are read as text so that a value such as "119.17 W" is reported as what it is, not silently turned into a
missing number; derived columns (time steps, counter steps, power over the limit) let plain column expectations
express the ordering and gap rules.

A batch is validated in a handful of Great Expectations validations, however many runs it holds: the samples of every
run as one table per file (and column layout), keyed by run (`_run`), as text and typed; one row per run of
run-level facts (rows, the largest gap, the column set); one row per run of the manifest. Each failure is attributed
to its run with the expectation that names it (a fact is reported as the table expectation it stands for, e.g.
expect_table_row_count_to_be_between) and that run's offending values.

Validation is the gate of aggregation: everything the aggregation and the analysis rely on is checked here, so that a
run that passed is always aggregated. Every line parses with the header's fields, as Arrow (the aggregation's reader)
parses it; numbers are finite and physically plausible; timestamps are real times; the manifest's and metrics.json's
fields have their kinds and ranges and the manifest agrees with the folder it is in; the window is ordered and inside
the samples, and every sensor (each GPU, the CPU's energy readings) covers it; energy-counter steps are possible for
the power allowed; the measurements are cross-checked (a GPU's counter against its integrated power, a busy GPU's power
against a floor, the declared sampling interval against the observed spacing, empty energy values as gaps). A failure
is an error (the run is quarantined) or a warning (the run is kept; too few samples, an unusual temperature, a
counter-power disagreement within the tolerance, a steady state shorter than STEADY_STATE_MIN_S). An unexpected error
while checking a run becomes that run's failure ("validator error: ..."): a batch that raises is validated again in
halves until the run that raises is alone.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
import sys
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ect.energy import MILLIJOULES_PER_JOULE, NVML_POWER_AVERAGE_S, counter_delta, edge_power_W, integrate_power_J
from ect.raw.atomic import LinkRefused, is_link, read_bytes, read_json
from ect.raw.columns import (CPU_COLUMNS, CPU_NUMERIC, CPU_POWER_SOURCES, GPU_COLUMNS, GPU_NUMERIC, TIMESTAMP_PATTERN)
from ect.raw.layout import CPU_FILE, GPU_FILE, HISTORY_FILE, MANIFEST_FILE, METRICS_FILE, RUN_FILES, RunKey
from ect.raw.manifest import Manifest
from ect.steady import read_history, steady_state
from ect.validation.fields import BETWEEN, CHECKS, field_rows, finite_number, meaning, offending
from ect.validation.verdicts import ERROR, NOT_A_LINK, WARNING, Failure, Limits, link_failure, linked_files

log = logging.getLogger(__name__)


def _quiet() -> None:
    """Importing Great Expectations logs about 220 INFO lines ("Skipping registering function ...", "Multiple
    declarations of metric ..."), noise in the first validation's task log: its loggers are set to WARNING before it is
    imported. One of its modules sets its own logger to INFO when imported; a filter keeps that one at WARNING too."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    logging.getLogger("great_expectations.data_context.types.base").addFilter(
        lambda record: record.levelno >= logging.WARNING)


_quiet()

# ASCII digits only ([0-9], not \d): Python's \d (Great Expectations' regex) also matches other scripts' digits,
# which no CSV reader takes for numbers.
NUMBER = r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
WHOLE_NUMBER = r"^(?:0|[1-9][0-9]*)$"  # gpu_index, written one way only ("00" would be another GPU's label)
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # TIMESTAMP_PATTERN's, with real dates and times (no 2025-02-30, no 24:00)

# Physical ceilings, whatever a file says (README, Validation): no GPU draws more than GPU_POWER_CEILING_W (the
# largest accelerators draw about 1.2 kW), which bounds power_W, power_limit_W and, where a GPU records no power limit,
# its energy counter's steps; no CPU (RAPL, all packages together, or its estimate) draws more than CPU_POWER_CEILING_W.
GPU_POWER_CEILING_W = 2000.0
CPU_POWER_CEILING_W = 5000.0
# An energy counter is read now and then and updates in steps (NVML about every 100 ms): a step may hold up to this
# much more time's energy than the time between its two reads.
COUNTER_SLACK_S = 1.0
# Every sensor's samples must reach to within this many sampling intervals of each end of the measurement window (the
# profiler samples every sensor at both edges; the energy of what is missing is not measured).
COVERAGE_INTERVALS = 2
MAX_MEMORY_MIB = 2.0 ** 24  # 16 TiB
MAX_COUNTER = 2.0 ** 64  # the largest reading of a 64-bit counter
FINITE = sys.float_info.max  # columns with no physical ceiling: any finite number
# column: (lowest, highest, unit) of the samples' values
GPU_RANGES = {
    "gpu_index": (0, 4095, ""), "power_W": (0, GPU_POWER_CEILING_W, " W"), "energy_counter_mJ": (0, MAX_COUNTER, " mJ"),
    "utilization_gpu_pct": (0, 100, ""), "utilization_memory_pct": (0, 100, ""),
    "memory_used_MiB": (0, MAX_MEMORY_MIB, " MiB"), "memory_total_MiB": (0, MAX_MEMORY_MIB, " MiB"),
    "temperature_C": (-50, 150, " C"), "power_limit_W": (0, GPU_POWER_CEILING_W, " W"),
}
CPU_RANGES = {
    "process_cpu_pct": (0, FINITE, ""), "process_rss_MiB": (0, MAX_MEMORY_MIB, " MiB"), "system_cpu_pct": (0, 100, ""),
    "rapl_package_energy_uJ": (0, MAX_COUNTER, " uJ"), "rapl_dram_energy_uJ": (0, MAX_COUNTER, " uJ"),
    "cpu_power_estimated_W": (0, CPU_POWER_CEILING_W, " W"),
}
CPU_ENERGY_COLUMNS = ("rapl_package_energy_uJ", "rapl_dram_energy_uJ", "cpu_power_estimated_W")

# Cross-checks of the measurements (README, Validation). A GPU's energy counter against its power samples: NVML's
# power_W is a one-second average on recent GPUs (the H200's: README, On a real GPU), the counter is not. The trapezoid
# of the averaged power over a window [a, b] weighs the true power with 0 -> 1 over [a - 1 s, a] and 1 -> 0 over
# [b - 1 s, b] instead of 1 on [a, b]: at each edge up to 0.5 s x the power near it moves across the edge (an exact
# one-second boxcar); NVML_POWER_AVERAGE_S (1 s) per edge also covers the average's shape and update period (100 ms).
# Sampling, the averaging between the edges and the sensor's accuracy add a part proportional to the energy. Hence
#   |counter - trapezoid(power_W)| <= COUNTER_POWER_TOLERANCE x counter + NVML_POWER_AVERAGE_S x (P_a + P_b),
# P_edge the highest power_W within NVML_POWER_AVERAGE_S + one sampling interval of that edge. Beyond it: an error;
# beyond COUNTER_POWER_WARNING_SHARE of it: a warning. Measured on an H200 (README): whole trainings within 1 %; a 10 s
# idle window right after a 650 W load +22 % (285 J, its tolerance 838 J); a counter in J instead of mJ, or five times
# what the power gives, is far outside.
COUNTER_POWER_TOLERANCE = 0.05
COUNTER_POWER_WARNING_SHARE = 0.5
# A powered GPU at work never draws ~0 W: where utilization_gpu_pct >= BUSY_UTILIZATION_PCT, power_W is at least
# max(POWER_FLOOR_W, POWER_FLOOR_SHARE x power_limit_W) (7 W for a 700 W H200, which idles at about 120 W). Power
# written in kW (0.1-1.2 for any GPU) falls below it.
BUSY_UTILIZATION_PCT = 50.0
POWER_FLOOR_W = 1.0
POWER_FLOOR_SHARE = 0.01
# The declared sampling interval sets the gap limit and the coverage tolerance: the median spacing of each sensor's
# samples (each GPU's, the CPU's energy readings) lies within INTERVAL_FACTOR of it either way (a manifest saying 1 s
# for 100 ms sampling would raise the gap limit 10 x). Missed ticks and the extra samples at window edges move single
# steps, not the median; a sample closer than half the interval to the one before is an edge sample, passed over.
INTERVAL_FACTOR = 1.5
# Warnings (kept and aggregated, listed): fewer than MIN_SAMPLE_SHARE of the samples the window holds at the declared
# interval (duration / interval; ML.ENERGY's rule), a GPU temperature outside TEMPERATURE_RANGE_C.
MIN_SAMPLE_SHARE = 0.75
TEMPERATURE_RANGE_C = (20.0, 95.0)
# A warning too: a steady state (ect.steady: the epochs after each phase's first, settled) shorter than
# STEADY_STATE_MIN_S (ML.ENERGY's window), or none, in a history.csv with per-epoch energy: the run's per-epoch figures
# (steady power, energy per epoch and per image) rest on a few seconds. A history without energy is not checked.
STEADY_STATE_MIN_S = 30.0
STEADY_STATE_CHECK = "steady_state_long_enough"
COUNTER_POWER_CHECK = "energy_counter_matches_power"
# A hot start (a warning): the manifest's idle_baseline.hot_start, the run's start temperature or idle power above its
# campaign's first idle baseline by more than the cool-down's tolerance (ect.profiling.thermal).
HOT_START_CHECK = "hot_start"
MAX_UNIX_S = 1e12  # a window beyond this many seconds is no time (its checks say so): no sensor facts of it
VALIDATOR = "(validator)"  # the file of a validator error


def validator_error(error: BaseException) -> Failure:
    """An unexpected error while checking a run, as that run's failure."""
    return Failure(VALIDATOR, "validator_error", None, f"validator error: {type(error).__name__}: {error}")


def read_text_csv(folder: Path, name: str) -> tuple[pa.Table | None, list[Failure]]:
    """A CSV as a table of strings (empty fields null), or the reason it cannot be read. It is parsed by Arrow, as
    the aggregation parses it: what Arrow cannot read is reported. A last line cut while being written is reported
    and left out; so are lines with more or fewer fields than the header (row_field_count)."""
    try:
        data = read_bytes(folder / name)
    except FileNotFoundError:
        return None, [Failure(name, "file_readable", None, "file is missing")]
    except LinkRefused:
        return None, [link_failure(name)]
    except OSError as error:
        return None, [Failure(name, "file_readable", None, f"cannot be read: {error}")]
    if not data:
        return None, [Failure(name, "file_readable", None, "file is empty (0 bytes)")]
    failures = []
    if not data.endswith(b"\n"):
        last = data.rsplit(b"\n", 1)[-1].decode(errors="replace")
        failures.append(Failure(name, "file_complete", None, f"last line is truncated (no line end): {last[:80]!r}"))
        data = data[:data.rfind(b"\n") + 1] or data
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        return None, failures + [Failure(name, "file_readable", None, f"not UTF-8 text: line {line}: "
                                                                      f"{data[error.start:error.start + 4]!r}")]
    try:
        names = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]), [])
    except csv.Error as error:
        return None, failures + [Failure(name, "file_readable", None, f"the header is not a line of CSV: {error}")]
    repeated = sorted({column for column in names if names.count(column) > 1})
    if repeated:
        return None, failures + [Failure(name, "expect_table_columns_to_match_set", None,
                                         f"expected each column of {name} once: {repeated} repeated")]
    invalid = []

    def skip(row) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(io.BytesIO(data), read_options=pacsv.ReadOptions(use_threads=False),
                               parse_options=pacsv.ParseOptions(invalid_row_handler=skip),
                               convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                                    strings_can_be_null=True, null_values=[""]))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        return None, failures + [Failure(name, "file_readable", None, f"cannot be parsed as CSV: {error}")]
    if table.column_names != names or any(not pa.types.is_string(t) for t in table.schema.types):
        return None, failures + [Failure(name, "file_readable", None,
                                         f"cannot be parsed as CSV: its first line {names} is not its header")]
    if invalid:
        lines = "; ".join(f"line {row.number}: {row.actual_columns} field(s) {row.text[:60]!r}" for row in invalid[:5])
        failures.append(Failure(name, "row_field_count", None, f"expected {len(names)} fields on every line (the "
                                                               f"header's): {len(invalid)} line(s) differ, e.g. {lines}"))
    return table, failures


def _cast(values: pa.Array, to: pa.DataType) -> pa.Array:
    """The values cast, null where one cannot be (halves cast apart until the culprits are alone: cheap when few are)."""
    try:
        return pc.cast(values, to)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) > 16:
            half = len(values) // 2
            return pa.concat_arrays([_cast(values.slice(0, half), to), _cast(values.slice(half), to)])
        cast = []
        for k in range(len(values)):
            try:
                cast.append(pc.cast(values.slice(k, 1), to))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                cast.append(pa.nulls(1, to))
        return pa.concat_arrays(cast) if cast else pa.array([], to)


def _floats(values: pa.ChunkedArray, pattern: str = NUMBER) -> np.ndarray:
    """Text as float64, NaN where empty or not a number of the pattern (the regex expectation reports those)."""
    values = values.combine_chunks().cast(pa.string())
    try:  # the usual case, every value a finite number: one conversion in C
        numbers = pc.cast(values, pa.float64())
        if pattern == NUMBER and pc.all(pc.is_finite(numbers)).as_py() is not False:
            return _nan_filled(numbers)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    numbers = pc.if_else(pc.match_substring_regex(values, pattern), values, pa.scalar(None, pa.string()))
    return _nan_filled(_cast(numbers, pa.float64()))


def _milliseconds(values: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps of the contract as ms since the epoch (float64, exact below 2**53), NaN where a value is not one;
    and which values have the contract's form but are no real time (2025-02-30, 24:00, digits of other scripts)."""
    values = values.combine_chunks().cast(pa.string())
    try:
        times = pc.cast(values, pa.timestamp("ms", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        times = _cast(values, pa.timestamp("ms", tz="UTC"))
    milliseconds = _nan_filled(times.cast(pa.int64()).cast(pa.float64()))
    unread = np.flatnonzero(np.isnan(milliseconds) & ~_nan_filled(values.is_null()).astype(bool))
    pattern = re.compile(TIMESTAMP_PATTERN)  # as Great Expectations reads it: what fails it is reported there
    not_a_time = np.zeros(len(values), dtype=bool)
    text = values.take(pa.array(unread, pa.int64())).to_pylist() if len(unread) else []
    not_a_time[unread] = [bool(pattern.match(value)) for value in text]
    return milliseconds, not_a_time


def _nan_filled(values) -> np.ndarray:
    return values.fill_null(np.nan).to_numpy(zero_copy_only=False) if not pa.types.is_boolean(values.type) \
        else values.fill_null(False).to_numpy(zero_copy_only=False)


def _grouped_steps(values: np.ndarray, keys: list, times: np.ndarray | None = None):
    """Each value minus the previous present one of its group (a counter need not be read on every row); NaN on
    the first of a group, where a value is missing, and where a group key is. With `times`, also the time since
    that previous value."""
    present = ~np.isnan(values)
    frame = pd.DataFrame({"value": values[present]})
    if times is not None:
        frame["time"] = times[present]
    steps = frame.groupby([key[present] for key in keys]).diff() if len(frame) else frame
    value_steps = np.full(len(values), np.nan)
    value_steps[present] = steps["value"].to_numpy()
    if times is None:
        return value_steps
    time_steps = np.full(len(values), np.nan)
    time_steps[present] = steps["time"].to_numpy()
    return value_steps, time_steps


def _allowed_mJ(power_W: np.ndarray, step_ms: np.ndarray) -> np.ndarray:
    """The most energy a sensor drawing at most power_W can add to its counter in step_ms (+ COUNTER_SLACK_S), mJ."""
    return power_W * (np.maximum(step_ms, 0) / 1000 + COUNTER_SLACK_S) * 1000


@dataclass
class _Samples:
    """One file's samples of a batch's runs with the same columns: as text, typed with derived columns, and per-run
    figures for the run-level facts."""

    text: pd.DataFrame
    typed: pd.DataFrame
    first_ms: pd.Series  # per run (`_run`): the first and last sample time
    last_ms: pd.Series
    max_step_s: pd.Series
    rows: pd.Series
    gpus: pd.Series
    spans: dict  # run: [(sensor, first ms, last ms)] of each GPU, or of the CPU's energy readings
    times_ms: np.ndarray | None = None  # each row's time (NaN where it is none)
    sensors: dict = field(default_factory=dict)  # run: [(sensor, its rows' positions with a time, in file order)]


def _samples(file: str, tables: dict[int, pa.Table], limits: Limits) -> _Samples:
    """The tables of a batch's runs (by run number) as one table keyed by `_run`, text and typed."""
    table = pa.concat_tables([t.append_column("_run", pa.array(np.full(t.num_rows, n, dtype=np.int64)))
                              for n, t in tables.items()])
    runs = table["_run"].to_numpy()
    numeric = GPU_NUMERIC if file == GPU_FILE else CPU_NUMERIC
    typed = pd.DataFrame({c: _floats(table[c], WHOLE_NUMBER if c == "gpu_index" else NUMBER)
                          for c in table.column_names if c in numeric})
    typed["_run"] = runs
    text = table.to_pandas()
    times = None
    if "timestamp" in table.column_names:
        times, not_a_time = _milliseconds(table["timestamp"])
        text["timestamp_not_a_time"] = np.where(not_a_time, text["timestamp"], None)
    series = [runs]
    if file == GPU_FILE:
        if "gpu_index" not in table.column_names:
            series = None
        else:
            series.append(text["gpu_index"].to_numpy())
        if "power_limit_W" in typed:
            typed["power_limit_max_W"] = limits.power_limit_factor * typed["power_limit_W"]
        if "utilization_gpu_pct" in typed:
            limit = typed["power_limit_W"].to_numpy() if "power_limit_W" in typed else np.full(len(runs), np.nan)
            floor = np.fmax(POWER_FLOOR_W, POWER_FLOOR_SHARE * limit)  # fmax: POWER_FLOOR_W where no limit
            typed["power_floor_W"] = np.where(typed["utilization_gpu_pct"].to_numpy() >= BUSY_UTILIZATION_PCT, floor,
                                              np.nan)
        if "energy_counter_mJ" in typed and series:
            limit = typed["power_limit_max_W"].to_numpy() if "power_limit_max_W" in typed else np.full(len(runs), np.nan)
            most_W = np.where(np.isnan(limit), GPU_POWER_CEILING_W, np.minimum(limit, GPU_POWER_CEILING_W))
            counter = typed["energy_counter_mJ"].to_numpy()
            if times is None:
                typed["energy_counter_step_mJ"] = _grouped_steps(counter, series)
            else:
                steps, step_ms = _grouped_steps(counter, series, times)
                typed["energy_counter_step_mJ"] = steps
                typed["energy_counter_step_max_mJ"] = _allowed_mJ(most_W, step_ms)
    else:
        for column in ("rapl_package_energy_uJ", "rapl_dram_energy_uJ"):
            if column in typed:
                step = column.replace("_energy_uJ", "_step_uJ")
                if times is None:
                    typed[step] = _grouped_steps(typed[column].to_numpy(), series)
                else:
                    typed[step], step_ms = _grouped_steps(typed[column].to_numpy(), series, times)
                    typed[step.replace("_uJ", "_max_uJ")] = _allowed_mJ(np.full(len(runs), CPU_POWER_CEILING_W),
                                                                        step_ms) * 1000
    if times is not None and series:
        typed["timestamp_step_s"] = _grouped_steps(times, series) / 1000
    by_run = typed.groupby("_run")
    present_times = pd.Series(times if times is not None else np.full(len(runs), np.nan)).groupby(runs)
    gpus = (pd.Series(series[1]).groupby(runs).nunique() if file == GPU_FILE and series else by_run.size() * 0 + 1)
    steps = typed["timestamp_step_s"] if "timestamp_step_s" in typed else pd.Series(np.nan, index=typed.index)
    return _Samples(text, typed, present_times.min(), present_times.max(), steps.groupby(runs).max(),
                    pd.Series({n: t.num_rows for n, t in tables.items()}), gpus,
                    _spans(file, typed, times, series), times, _sensor_rows(file, times, series))


def _sensor_rows(file: str, times: np.ndarray | None, series: list | None) -> dict:
    """{run: [(sensor, positions of its rows that have a time)]}: each GPU ("GPU 0"), or the CPU."""
    if times is None or not series:
        return {}
    timed = np.flatnonzero(~np.isnan(times))
    sensor = series[1][timed] if file == GPU_FILE else np.full(len(timed), "CPU", dtype=object)
    frame = pd.DataFrame({"run": series[0][timed], "sensor": sensor, "row": timed})
    rows: dict[int, list] = {}
    for (run, name), group in frame.groupby(["run", "sensor"], sort=True)["row"]:
        rows.setdefault(int(run), []).append((f"GPU {name}" if file == GPU_FILE else name, group.to_numpy()))
    return rows


def _spans(file: str, typed: pd.DataFrame, times: np.ndarray | None, series: list | None) -> dict:
    """{run: [(sensor, first ms, last ms)]}: each GPU's samples, or the CPU's samples with an energy reading."""
    if times is None or not series:
        return {}
    if file == GPU_FILE:
        frame = pd.DataFrame({"run": series[0], "sensor": series[1], "t": times})
    else:
        energy = [typed[c].notna().to_numpy() for c in CPU_ENERGY_COLUMNS if c in typed]
        if not energy:
            return {}
        read = np.logical_or.reduce(energy)
        frame = pd.DataFrame({"run": series[0][read], "sensor": "CPU", "t": times[read]})
    frame = frame[~np.isnan(frame["t"].to_numpy())]
    spans: dict[int, list] = {}
    for (run, sensor), span in frame.groupby(["run", "sensor"])["t"].agg(["min", "max"]).iterrows():
        label = sensor if file == CPU_FILE else f"GPU {sensor}"
        spans.setdefault(int(run), []).append((label, float(span["min"]), float(span["max"])))
    return spans


def _range_meaning(column: str, low: float, high: float, unit: str) -> str:
    if high == FINITE:
        return f"{column} >= {low:g}{unit} and finite"
    return f"{column} within {low:g}-{high:g}{unit}"


def _format_expectations(present: set, file: str, columns: tuple[str, ...], numeric: tuple[str, ...]) -> list:
    """The contract's columns, numbers where numbers belong, and UTC millisecond timestamps that are real times."""
    import great_expectations.expectations as gxe

    expectations = [gxe.ExpectColumnValuesToMatchRegex(column=c, regex=NUMBER, meta={"meaning": f"{c} values are numbers"})
                    for c in numeric if c in present and c != "gpu_index"]
    if "gpu_index" in present:
        expectations.append(gxe.ExpectColumnValuesToMatchRegex(column="gpu_index", regex=WHOLE_NUMBER,
                                                               meta={"meaning": "gpu_index values are whole numbers"}))
    if "timestamp" in present:
        expectations.append(gxe.ExpectColumnValuesToMatchRegex(column="timestamp", regex=TIMESTAMP_PATTERN,
                                                               meta={"meaning": "UTC ms timestamps"}))
        expectations.append(gxe.ExpectColumnValuesToBeNull(column="timestamp_not_a_time", meta={
            "check": "expect_column_values_to_match_strftime_format", "column": "timestamp",
            "meaning": f"timestamps that are real UTC times ({TIMESTAMP_FORMAT})"}))
    return expectations


def _range_expectations(present: set, ranges: dict) -> list:
    """Finite, physically plausible values (README, Validation)."""
    import great_expectations.expectations as gxe

    return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=low, max_value=high,
                                              meta={"meaning": _range_meaning(c, low, high, unit)})
            for c, (low, high, unit) in ranges.items() if c in present]


def gpu_expectations(present: set, limits: Limits) -> tuple[list, list]:
    """(expectations on the text frame, expectations on the typed frame) of gpu.csv samples."""
    import great_expectations.expectations as gxe

    text = _format_expectations(present, "gpu.csv", GPU_COLUMNS, GPU_NUMERIC)
    text += [gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"meaning": f"{c} is never empty"})
             for c in ("timestamp", "gpu_index", "power_W") if c in present]
    typed = _range_expectations(present, GPU_RANGES)
    if "power_limit_max_W" in present and "power_W" in present:
        typed.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="power_limit_max_W", column_B="power_W", or_equal=True, ignore_row_if="either_value_is_missing",
            meta={"meaning": f"power_W at most {limits.power_limit_factor} x power_limit_W (pairs: limit, power)"}))
    if "power_floor_W" in present and "power_W" in present:
        typed.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="power_W", column_B="power_floor_W", or_equal=True, ignore_row_if="either_value_is_missing",
            meta={"meaning": (f"power_W at least max({POWER_FLOOR_W:g} W, {POWER_FLOOR_SHARE:g} x power_limit_W) where "
                              f"utilization_gpu_pct >= {BUSY_UTILIZATION_PCT:g} (a busy GPU never draws ~0 W; power "
                              f"in kW?) (pairs: power, floor)")}))
    if "temperature_C" in present:
        low, high = TEMPERATURE_RANGE_C
        typed.append(gxe.ExpectColumnValuesToBeBetween(column="temperature_C", min_value=low, max_value=high, meta={
            "level": WARNING, "meaning": f"temperature_C within {low:g}-{high:g} C (a GPU outside it is not in its "
                                         f"usual operating range)"}))
    typed += _time_expectations(present)
    if "energy_counter_step_mJ" in present:
        typed.append(gxe.ExpectColumnValuesToBeBetween(column="energy_counter_step_mJ", min_value=0,
                                                       meta={"meaning": "the energy counter never decreases"}))
    if "energy_counter_step_max_mJ" in present:
        typed.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="energy_counter_step_max_mJ", column_B="energy_counter_step_mJ", or_equal=True,
            ignore_row_if="either_value_is_missing", meta={"meaning": (
                f"each energy-counter step at most what min({limits.power_limit_factor} x power_limit_W, "
                f"{GPU_POWER_CEILING_W:g} W) ({GPU_POWER_CEILING_W:g} W without a limit) gives in the time since the "
                f"previous read + {COUNTER_SLACK_S:g} s (pairs: allowed mJ, step mJ)")}))
    return text, typed


def cpu_expectations(present: set, limits: Limits) -> tuple[list, list]:
    import great_expectations.expectations as gxe

    text = _format_expectations(present, "cpu.csv", CPU_COLUMNS, CPU_NUMERIC)
    if "cpu_power_source" in present:
        text.append(gxe.ExpectColumnValuesToBeInSet(column="cpu_power_source", value_set=list(CPU_POWER_SOURCES),
                                                    meta={"meaning": f"cpu_power_source is one of {list(CPU_POWER_SOURCES)}"}))
    if "timestamp" in present:
        text.append(gxe.ExpectColumnValuesToNotBeNull(column="timestamp", meta={"meaning": "timestamp is never empty"}))
    typed = _range_expectations(present, CPU_RANGES)
    typed += _time_expectations(present)
    for column in ("rapl_package_step_uJ", "rapl_dram_step_uJ"):
        if column in present:
            typed.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0,
                                                           meta={"meaning": "RAPL energy never decreases (wrap-around handled)"}))
        if column.replace("_uJ", "_max_uJ") in present:
            typed.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=column.replace("_uJ", "_max_uJ"), column_B=column, or_equal=True,
                ignore_row_if="either_value_is_missing", meta={"meaning": (
                    f"each RAPL step at most what {CPU_POWER_CEILING_W:g} W gives in the time since the previous "
                    f"read + {COUNTER_SLACK_S:g} s (pairs: allowed uJ, step uJ)")}))
    return text, typed


def _time_expectations(present: set) -> list:
    """The order of the samples (a file with fewer than two samples has no steps: nothing to say; the largest gap
    is a run-level fact)."""
    import great_expectations.expectations as gxe

    if "timestamp_step_s" not in present:
        return []
    return [gxe.ExpectColumnValuesToBeBetween(column="timestamp_step_s", min_value=0, strict_min=True,
                                              meta={"meaning": "timestamps strictly increase"})]


def manifest_row(data: dict, first_ms: float | None, last_ms: float | None) -> dict:
    """The manifest's window as one row, measured against the first and last time of the samples that carry the
    energy (its other fields: ect.validation.fields)."""
    window = data.get("window") if isinstance(data.get("window"), dict) else {}
    start, end = finite_number(window.get("start_unix_s")), finite_number(window.get("end_unix_s"))
    row = {"window_start_unix_s": start, "window_end_unix_s": end}
    if start is not None and first_ms is not None:
        row["window_start_after_first_sample_ms"] = round(start * 1000) - first_ms
    if end is not None and last_ms is not None:
        row["window_end_before_last_sample_ms"] = last_ms - round(end * 1000)
    idle = data.get("idle_baseline") if isinstance(data.get("idle_baseline"), dict) else {}
    if isinstance(idle.get("hot_start"), bool):
        row["hot_start"] = idle["hot_start"]
    return row


def hot_start_details(data: dict) -> str:
    """What a hot start's warning says: the run's start temperature and idle GPU power against its campaign's first
    idle baseline and the tolerance."""
    idle = data.get("idle_baseline") if isinstance(data.get("idle_baseline"), dict) else {}
    reference = idle.get("reference") if isinstance(idle.get("reference"), dict) else {}
    tolerance = idle.get("tolerance") if isinstance(idle.get("tolerance"), dict) else {}

    def shown(value, unit: str) -> str:
        number = finite_number(value)
        return "?" if number is None else f"{_significant(number)}{unit}"

    return (f"expected the run to start within the tolerance (+{shown(tolerance.get('temperature_C'), ' C')}, "
            f"+{shown(tolerance.get('power_pct'), ' %')}) of its campaign's first idle baseline (run "
            f"{reference.get('run')}: {shown(reference.get('temperature_C'), ' C')}, "
            f"{shown(reference.get('gpu_power_W'), ' W')}): observed start temperature "
            f"{shown(idle.get('start_temperature_C'), ' C')}, idle GPU power "
            f"{shown(idle.get('gpu_power_W_total'), ' W')} (a cool-down too short for the GPU to return to idle; the "
            "run is kept)")


def manifest_expectations(frame: pd.DataFrame) -> list:
    """The window: ordered, and inside the samples that carry the energy."""
    import great_expectations.expectations as gxe

    present = set(frame.columns)
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


def _quiet_and_unhashed() -> None:
    """Great Expectations' INFO lines are noise in task logs; and it fingerprints every batch by hashing all its
    values (a batch marker ect never reads), which costs more than validating a batch of runs' samples."""
    from great_expectations.execution_engine import pandas_execution_engine

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    pandas_execution_engine.HASH_THRESHOLD = 0


@lru_cache(maxsize=1)
def _batch_definition():
    """One ephemeral Great Expectations context per process, made on first use (no network, no files)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_and_unhashed()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("ect").add_dataframe_asset("raw")
    return asset.add_batch_definition_whole_dataframe("whole")


class DataDocs:
    """Validations through a file-backed Great Expectations project, so that its Data Docs (HTML) show them.

    Slower than the ephemeral context (every validation is stored): used only when asked for.
    """

    def __init__(self, project_dir: Path):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _quiet_and_unhashed()
        self.context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_or_update_pandas("ect")
        asset = source.get_asset("raw") if "raw" in [a.name for a in source.assets] else source.add_dataframe_asset("raw")
        names = [b.name for b in asset.batch_definitions]
        self.batch = asset.get_batch_definition("whole") if "whole" in names else \
            asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, frame: pd.DataFrame, suite, name: str):
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction

        key = re.sub(r"[^A-Za-z0-9_.-]+", "__", name)  # stores reject "/" in names
        for store in (self.context.checkpoints, self.context.validation_definitions, self.context.suites):
            try:
                store.delete(key)
            except Exception:  # not there yet
                pass
        suite.name = key
        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(name=key, data=self.batch, suite=suite))
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(name=key, validation_definitions=[definition],
                                                                actions=[UpdateDataDocsAction(name="data_docs")],
                                                                result_format="COMPLETE"))
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        return next(iter(result.run_results.values()))

    def index(self) -> str:
        return self.context.get_docs_sites_urls()[0]["site_url"]


def facts_expectations(files: list[str], present: set) -> list:
    """Run-level facts of each file, reported as the table expectations they stand for."""
    import great_expectations.expectations as gxe

    expectations = []
    for file in files:
        prefix = _prefix(file)
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(column=f"{prefix}columns_ok", value_set=[True], meta={
                "file": file, "check": "expect_table_columns_to_match_set", "column": None}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{prefix}rows", column_B=f"{prefix}min_rows", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": file, "check": "expect_table_row_count_to_be_between", "column": None}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{prefix}max_gap_s", column_B=f"{prefix}max_step_s", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": file, "check": "expect_column_max_to_be_between", "column": "timestamp_step_s"}),
        ]
        if f"{prefix}late_s" in present:  # the window's coverage by every sensor of the file
            expectations += [gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{prefix}coverage_tolerance_s", column_B=f"{prefix}{edge}_s", or_equal=True,
                ignore_row_if="either_value_is_missing", meta={"file": file, "check": check, "column": "timestamp"})
                for edge, check in (("late", "expect_column_min_to_be_between"),
                                    ("early", "expect_column_max_to_be_between"))]
        if f"{prefix}spacing_ratio" in present:  # the declared interval against the observed spacing
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=f"{prefix}spacing_ratio", max_value=INTERVAL_FACTOR,
                meta={"file": file, "check": "expect_column_median_to_be_between", "column": "timestamp_step_s"}))
        if f"{prefix}sample_share" in present:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(
                column=f"{prefix}sample_share", min_value=MIN_SAMPLE_SHARE,
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


def _counter_power_details(checks: list, level: str) -> str:
    """The GPUs whose counter and integrated power disagree beyond the tolerance (an error) or beyond the warning
    share of it (a warning), with both energies."""
    share = 1.0 if level == ERROR else COUNTER_POWER_WARNING_SHARE
    named = []
    for sensor, span_s, counter_J, power_J, tolerance_J in checks:
        ratio = _ratio((sensor, span_s, counter_J, power_J, tolerance_J))
        if ratio > share and (level == ERROR or ratio <= 1):
            if not counter_J:
                difference = "the counter did not count"
            elif abs(power_J / counter_J - 1) >= 10:
                difference = f"{power_J / counter_J:.4g} x the counter"
            else:
                difference = f"{100 * (power_J / counter_J - 1):+.3g} % of the counter"
            named.append(f"{sensor} over {span_s:g} s: counter {_significant(counter_J)} J, integrated power_W "
                         f"{_significant(power_J)} J ({difference}), difference "
                         f"{_significant(abs(power_J - counter_J))} J, tolerance {_significant(tolerance_J)} J")
    what = "the tolerance" if level == ERROR else f"{COUNTER_POWER_WARNING_SHARE:g} x the tolerance"
    return (f"expected the energy counter's increase and the trapezoid of power_W over the window to differ by at "
            f"most {what}, {COUNTER_POWER_TOLERANCE:g} x the counter + {NVML_POWER_AVERAGE_S:g} s x the highest "
            f"power_W within {NVML_POWER_AVERAGE_S:g} s + one interval of each edge (NVML's power is a one-second "
            f"average; a counter in J or kJ, or power in kW or mW, is far outside): observed {'; '.join(named)}")


def _significant(value: float) -> str:
    """A number rounded to 4 significant digits, without an exponent from 1,000 to 1e15 (13820, not 1.382e+04)."""
    rounded = float(f"{value:.4g}")
    return f"{rounded:.0f}" if 1e3 <= abs(rounded) < 1e15 else f"{rounded:g}"


def _prefix(file: str) -> str:
    return file.split(".")[0] + "_"


def _facts(file: str, columns: list[str], samples: _Samples, run: int, interval_s: float, limits: Limits) -> dict:
    """One file's run-level facts: its columns, its rows against the fewest allowed, its largest gap."""
    prefix, expected = _prefix(file), set(GPU_COLUMNS if file == GPU_FILE else CPU_COLUMNS)
    max_step = samples.max_step_s.get(run, np.nan)
    return {f"{prefix}columns_ok": set(columns) == expected, f"{prefix}columns": sorted(columns),
            f"{prefix}expected_columns": sorted(expected), f"{prefix}rows": int(samples.rows[run]),
            f"{prefix}min_rows": limits.min_samples * max(int(samples.gpus.get(run, 1)), 1),
            f"{prefix}max_step_s": None if max_step != max_step else float(max_step),
            f"{prefix}max_gap_s": limits.max_gap_factor * interval_s, f"{prefix}interval_s": interval_s}


def _sensor_facts(file: str, samples: _Samples, run: int, interval_s: float, window: tuple) -> dict:
    """One file's cross-checks of each sensor (README, Validation): the median spacing of its samples (each GPU's,
    the CPU's energy readings) against the declared interval; the share it has of the samples the window holds at that
    interval; the largest gap between the readings of each CPU energy column (an empty value is a missing reading);
    each GPU's energy counter against its integrated power. A sensor whose times do not increase is left to the order
    check."""
    prefix, typed, times = _prefix(file), samples.typed, samples.times_ms
    start, end = window
    edges = (round(start * 1000), round(end * 1000)) if start is not None and end is not None and \
        start < end and abs(start) < MAX_UNIX_S and abs(end) < MAX_UNIX_S else None  # else: the window's checks say
    energy = [column for column in CPU_ENERGY_COLUMNS if column in typed] if file == CPU_FILE else []
    spacings, shares, gaps, cross = [], [], {}, []
    for sensor, rows in samples.sensors.get(run, []):
        t = times[rows]
        if len(t) < 2 or not np.all(np.diff(t) > 0):
            continue
        if file == CPU_FILE:
            read = {column: ~np.isnan(typed[column].to_numpy()[rows]) for column in energy}
            for column, present in read.items():
                if np.count_nonzero(present) >= 2:
                    gaps[column] = float(np.max(np.diff(t[present]))) / 1000
            t = t[np.logical_or.reduce(list(read.values()))] if read else t[:0]
            if len(t) < 2:
                continue
        median_ms, periodic_ms = float(np.median(np.diff(t))), _periodic_spacing_ms(t, interval_s * 1000)
        spacings.append((sensor, median_ms / 1000, min(_ratio_either_way(median_ms / 1000, interval_s),
                                                       _ratio_either_way(periodic_ms / 1000, interval_s))))
        if edges is not None:
            inside = int(np.count_nonzero((t >= edges[0]) & (t <= edges[1])))
            shares.append((sensor, inside, round((edges[1] - edges[0]) / 1000 / interval_s, 1)))
        if file == GPU_FILE and "energy_counter_mJ" in typed and "power_W" in typed:
            check = _counter_power(sensor, t, typed["power_W"].to_numpy()[rows],
                                   typed["energy_counter_mJ"].to_numpy()[rows], edges, interval_s)
            if check is not None:
                cross.append(check)
    facts: dict = {f"{column}_max_read_step_s": gap for column, gap in gaps.items()}
    if spacings:
        facts[f"{prefix}spacings"] = [(sensor, spacing) for sensor, spacing, _ in spacings]
        facts[f"{prefix}spacing_ratio"] = min(max(ratio for _, _, ratio in spacings), 1e300)
    if shares:
        facts[f"{prefix}shares"] = shares
        facts[f"{prefix}sample_share"] = min(inside / max(expected, 1e-9) for _, inside, expected in shares)
    if cross:
        ratios = [_ratio(check) for check in cross]
        facts["gpu_counter_power"] = cross
        facts["gpu_counter_power_ratio"] = max(ratios)
        facts["gpu_counter_power_warning_ratio"] = max((r for r in ratios if r <= 1), default=None)
    return facts


def _ratio_either_way(observed: float, declared: float) -> float:
    return max(observed / declared, declared / observed) if observed > 0 else math.inf


def _periodic_spacing_ms(t: np.ndarray, interval_ms: float) -> float:
    """The median spacing of the periodic samples: a sample closer than half the declared interval to the last one
    kept is an extra (window-edge) sample and is passed over. A run of a few seconds holds nearly as many edge samples
    as periodic ones (phases, epochs), which pull the plain median down; the check passes where either median fits
    the declaration, and a wrong one still shows in both (declared 10 x too long: every fifth or sixth sample kept,
    about half the declaration apart)."""
    steps = np.diff(t)
    if np.all(steps >= interval_ms / 2):
        return float(np.median(steps))
    kept = [t[0]]
    for time_ms in t[1:]:
        if time_ms - kept[-1] >= interval_ms / 2:
            kept.append(time_ms)
    return float(np.median(np.diff(kept))) if len(kept) > 1 else float(np.median(steps))


def _counter_power(sensor: str, t: np.ndarray, power: np.ndarray, counter: np.ndarray, edges: tuple | None,
                   interval_s: float) -> tuple | None:
    """(sensor, span s, counter J, integrated power J, tolerance J) of a GPU over the window (cut to the counter's
    reads; all of them without a window), or None where there is nothing to compare."""
    read, powered = ~np.isnan(counter), ~np.isnan(power)
    if np.count_nonzero(read) < 2 or np.count_nonzero(powered) < 2:
        return None
    first, last = t[read][0], t[read][-1]
    if edges is not None:
        first, last = max(first, edges[0]), min(last, edges[1])
    if last <= first:
        return None
    seconds, span = (t - first) / 1000, (last - first) / 1000
    counter_J = counter_delta(seconds, counter, 0.0, span) / MILLIJOULES_PER_JOULE
    power_J = integrate_power_J(seconds, power, 0.0, span)
    edge_W = edge_power_W(t, power, (first, last), reach=(NVML_POWER_AVERAGE_S + interval_s) * 1000)
    tolerance_J = COUNTER_POWER_TOLERANCE * abs(counter_J) + NVML_POWER_AVERAGE_S * sum(max(w, 0.0) for w in edge_W)
    if not all(np.isfinite([counter_J, power_J, tolerance_J])):
        return None  # an infinite or unreadable value: the range checks name it
    return sensor, round(span, 3), counter_J, power_J, tolerance_J


def _ratio(check: tuple) -> float:
    """A counter-power check's disagreement as a share of its tolerance (> 1: outside it)."""
    _, _, counter_J, power_J, tolerance_J = check
    difference = abs(counter_J - power_J)
    return difference / tolerance_J if tolerance_J > 0 else (0.0 if difference == 0 else 1e300)


def _coverage_facts(file: str, spans: list, start_s: float, end_s: float, interval_s: float) -> dict:
    """How far after the window's start the latest sensor of the file begins, and how far before its end the
    earliest one stops, against COVERAGE_INTERVALS sampling intervals."""
    prefix = _prefix(file)
    late = [(sensor, round(first / 1000 - start_s, 3)) for sensor, first, _ in spans]
    early = [(sensor, round(end_s - last / 1000, 3)) for sensor, _, last in spans]
    return {f"{prefix}late_s": max(s for _, s in late), f"{prefix}early_s": max(s for _, s in early),
            f"{prefix}late": late, f"{prefix}early": early,
            f"{prefix}coverage_tolerance_s": COVERAGE_INTERVALS * interval_s}


def _steady_facts(folder: Path) -> dict:
    """The steady state of the run's history.csv (ect.steady): its duration and epochs, or why there is none; nothing
    when history.csv is missing, unreadable or has no per-epoch energy (then there is nothing to warn of)."""
    try:
        steady = steady_state(read_history(read_bytes(folder / HISTORY_FILE).decode()))
    except (OSError, UnicodeDecodeError, csv.Error):
        return {}
    if not steady.has_energy:
        return {}
    return {"steady_state_s": steady.duration_s, "steady_state_reason": steady.reason,
            "steady_state_epochs": list(steady.overall.epochs) if steady.overall else []}


def _fact_details(failure: Failure, facts: dict, limits: Limits) -> str:
    check, file = failure.check, failure.file
    prefix = _prefix(file)
    if check == STEADY_STATE_CHECK:
        if not facts["steady_state_epochs"]:
            return (f"no steady state ({facts['steady_state_reason']}), expected at least {STEADY_STATE_MIN_S:g} s: "
                    "no per-epoch figures")
        return (f"steady state {_significant(facts['steady_state_s'])} s (epochs "
                f"{', '.join(map(str, facts['steady_state_epochs']))}) shorter than {STEADY_STATE_MIN_S:g} s: "
                "per-epoch figures are rough")
    if check == COUNTER_POWER_CHECK:
        return _counter_power_details(facts["gpu_counter_power"], failure.level)
    if check == "expect_column_median_to_be_between":
        interval_s = facts[f"{prefix}interval_s"]
        low, high = interval_s / INTERVAL_FACTOR, interval_s * INTERVAL_FACTOR
        offending = [f"{sensor}: {_significant(spacing)} s" for sensor, spacing in facts[f"{prefix}spacings"]
                     if not low <= spacing <= high]
        return (f"expected the median spacing of each sensor's samples within {INTERVAL_FACTOR:g} x of the manifest's "
                f"sampling_interval_s ({interval_s:g} s: {_significant(low)}-{_significant(high)} s): observed "
                f"{', '.join(offending)}")
    if check == "expect_table_row_count_to_be_between" and failure.level == WARNING:
        interval_s = facts[f"{prefix}interval_s"]
        offending = [f"{sensor}: {inside} of {expected:g} ({100 * inside / max(expected, 1e-9):.0f} %)"
                     for sensor, inside, expected in facts[f"{prefix}shares"] if inside < MIN_SAMPLE_SHARE * expected]
        return (f"expected at least {100 * MIN_SAMPLE_SHARE:g} % of the samples the window holds at "
                f"{interval_s:g} s (duration / interval): observed {', '.join(offending)}")
    if failure.column and failure.column.endswith("_read_step_s"):
        column = failure.column[:-len("_read_step_s")]
        max_gap_s, interval_s = facts[f"{prefix}max_gap_s"], facts[f"{prefix}interval_s"]
        return (f"expected no gap between the readings of {column} longer than {max_gap_s:g} s "
                f"({limits.max_gap_factor:g} x {interval_s:g} s; an empty value is a missing reading): observed "
                f"{_significant(facts[f'{column}_max_read_step_s'])} s")
    if check == "expect_table_columns_to_match_set":
        expected, seen = set(facts[f"{prefix}expected_columns"]), set(facts[f"{prefix}columns"])
        return f"expected the columns of {file}: missing {sorted(expected - seen)}, unexpected {sorted(seen - expected)}"
    if check == "expect_table_row_count_to_be_between":
        per = " per GPU" if file == GPU_FILE else ""
        return f"expected at least {limits.min_samples} samples{per}: observed {facts[f'{prefix}rows']}"
    interval_s = facts[f"{prefix}interval_s"]
    if failure.column == "timestamp":
        tolerance, sensors = facts[f"{prefix}coverage_tolerance_s"], "every GPU's samples" if file == GPU_FILE else \
            "the CPU's energy readings"
        edge, what = ("late", "begin at most {} s after the window starts") if check == "expect_column_min_to_be_between" \
            else ("early", "end at most {} s before the window ends")
        offending = [f"{sensor}: {offset:g} s" for sensor, offset in facts[f"{prefix}{edge}"] if offset > tolerance]
        return (f"expected {sensors} to {what.format(f'{tolerance:g}')} ({COVERAGE_INTERVALS} x {interval_s:g} s): "
                f"observed {', '.join(offending)}")
    max_gap_s = facts[f"{prefix}max_gap_s"]
    return (f"expected no gap between samples longer than {max_gap_s:g} s ({limits.max_gap_factor:g} x "
            f"{interval_s:g} s): observed {_plain(facts[f'{prefix}max_step_s'])}")


@dataclass
class _Run:
    """One run of a batch: what could be read of it, and the failures so far."""

    folder: Path
    failures: list[Failure]
    manifest: Manifest | None = None
    data: dict = field(default_factory=dict)  # manifest.json as read
    metrics: dict | None = None  # metrics.json as read, when there is one
    tables: dict[str, pa.Table] = field(default_factory=dict)  # file: its samples as text
    facts: dict = field(default_factory=dict)
    spans: dict[str, list] = field(default_factory=dict)  # file: [(sensor, first ms, last ms)]
    manifest_row: dict | None = None
    field_rows: list[dict] = field(default_factory=list)

    @property
    def interval_s(self) -> float:
        value = finite_number(self.manifest.sensors.sampling_interval_s) if self.manifest.sensors else None
        return value if value is not None and value > 0 else 1.0

    @property
    def window_s(self) -> tuple[float | None, float | None]:
        window = self.data.get("window")
        window = window if isinstance(window, dict) else {}
        return finite_number(window.get("start_unix_s")), finite_number(window.get("end_unix_s"))

    @property
    def energy_file(self) -> str | None:
        """The file whose samples carry the energy (the window must lie inside them)."""
        sensors = self.manifest.sensors
        if GPU_FILE in self.tables:
            return GPU_FILE
        cpu_energy = (sensors.cpu_energy_source if sensors else None) != "unavailable"
        return CPU_FILE if CPU_FILE in self.tables and cpu_energy else None


def _read_run(folder: Path) -> _Run:
    """The manifest, metrics.json and the CSVs of a run, with the failures of reading them; none of them when a run
    file is a symbolic link (not_a_link: nothing of the run is read)."""
    linked = linked_files(folder)
    if linked:
        return _Run(folder, linked)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        return _Run(folder, [Failure(MANIFEST_FILE, "file_readable", None, "file is missing")])
    data = read_json(manifest_path)
    if data is None:
        return _Run(folder, [Failure(MANIFEST_FILE, "file_readable", None, "not a valid JSON object")])
    run = _Run(folder, [], Manifest.from_dict(data), data)
    if (folder / METRICS_FILE).exists():
        run.metrics = read_json(folder / METRICS_FILE)
        if run.metrics is None:
            run.failures.append(Failure(METRICS_FILE, "file_readable", None, "not a valid JSON object"))
    sensors = run.manifest.sensors
    gpu_expected = sensors is not None and isinstance(sensors.gpu_energy_source, str) and \
        sensors.gpu_energy_source != "unavailable"
    used = sensors.used if sensors is not None and isinstance(sensors.used, list) else []
    cpu_expected = any(name in ("process", "psutil", "rapl", "estimate") for name in used if isinstance(name, str))
    for name, expected in ((CPU_FILE, cpu_expected), (GPU_FILE, gpu_expected)):
        if not expected and not (folder / name).exists():
            continue
        table, read_failures = read_text_csv(folder, name)
        run.failures += read_failures
        if table is not None:
            run.tables[name] = table
    if not run.tables and not any(f.file in (CPU_FILE, GPU_FILE) for f in run.failures):
        run.failures.append(Failure(CPU_FILE, "file_readable", None, "file is missing, and so is gpu.csv: the run has "
                                                                      "no samples (the manifest names no sensor)"))
    return run


def _unexpected(frame: pd.DataFrame, expectations: list, file: str, suite_name: str, docs):
    """Validates a batch's table; (file, check, column, meta, [(row position, offending value)]) of each failed
    expectation. An expectation that cannot be evaluated raises (check_runs then looks for the run at fault)."""
    import great_expectations as gx

    if not expectations or frame.empty:
        return
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    if docs is None:
        result = _batch_definition().get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="COMPLETE")
    else:
        result = docs.validate(frame, suite, suite_name)
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        meta = config.meta or {}
        column = meta.get("column", config.kwargs.get("column") or config.kwargs.get("column_B"))
        check, failed_file = meta.get("check", config.type), meta.get("file", file)
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise RuntimeError(f"{failed_file} {check} [{column}] could not be evaluated: "
                               f"{item.exception_info.get('exception_message')}")
        yield failed_file, check, column, meta, list(zip(item.result.get("unexpected_index_list") or [],
                                                         item.result.get("unexpected_list") or []))


def _failures(frame: pd.DataFrame, expectations: list, file: str, suite_name: str, docs) -> dict[int, list[Failure]]:
    """Validates a batch's table (its `_run` column names each row's run); the failures of each run, with its own
    offending values."""
    runs = frame["_run"].to_numpy() if "_run" in frame else None
    found: dict[int, list[Failure]] = {}
    for failed_file, check, column, meta, unexpected in _unexpected(frame, expectations, file, suite_name, docs):
        by_run: dict[int, list] = {}
        for position, value in unexpected:
            by_run.setdefault(int(runs[position]), []).append(_plain(value))
        for run, values in by_run.items():
            detail = None if "meaning" not in meta else \
                f"expected {meta['meaning']}: {len(values)} offending value(s), e.g. {values[:5]}"
            found.setdefault(run, []).append(Failure(failed_file, check, column, detail, meta.get("level", ERROR)))
    return found


def _field_failures(frame: pd.DataFrame, suite_name: str, docs) -> dict[int, list[Failure]]:
    """Validates the field rows of a batch (ect.validation.fields); each failure named by its row's file and field."""
    rows = frame.to_dict("records")
    found: dict[int, list[Failure]] = {}
    for _, check, _, _, unexpected in _unexpected(frame, field_expectations(), MANIFEST_FILE, suite_name, docs):
        for position, _ in unexpected:
            row = rows[position]
            value = _plain(offending(check, row))
            found.setdefault(int(row["_run"]), []).append(Failure(
                row["file"], check, row["field"],
                f"expected {meaning(check, row)}: 1 offending value(s), e.g. {[value]}"))
    return found


def _plain(value):
    """numpy scalars (and tuples of them) as plain Python values, NaN as None, for readable messages."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def check_runs(folders: list[Path], limits: Limits, docs: DataDocs | None = None) -> dict[Path, list[Failure]]:
    """Every failed check of each run folder of a batch (empty for a valid run), in a handful of validations.

    Never raises for a run: a batch that raises is checked again in halves, and a run that raises alone gets the
    error as its failure ("validator error: <type>: <message>"); the other runs get their verdicts."""
    try:
        return _check_batch(folders, limits, docs)
    except Exception as error:  # noqa: BLE001 - whatever a run's files do to the checks, the others get verdicts
        if len(folders) == 1:
            log.warning(f"{RunKey.of_folder(folders[0]).name}: validator error: {type(error).__name__}: {error}")
            return {folders[0]: [validator_error(error)]}
        log.warning(f"validating a batch of {len(folders)} runs raised {type(error).__name__}: {error}; "
                    f"validating its halves apart")
        half = len(folders) // 2
        return {**check_runs(folders[:half], limits, docs), **check_runs(folders[half:], limits, docs)}


def _read_safely(folder: Path) -> _Run:
    try:
        return _read_run(folder)
    except Exception as error:  # noqa: BLE001 - one run's error is its own failure
        return _Run(folder, [validator_error(error)])


def _check_batch(folders: list[Path], limits: Limits, docs: DataDocs | None) -> dict[Path, list[Failure]]:
    runs = [_read_safely(folder) for folder in folders]
    label = RunKey.of_folder(folders[0]).name if len(folders) == 1 else f"batch of {len(folders)} runs"
    found: list[dict[int, list[Failure]]] = []
    times: dict[tuple[int, str], tuple] = {}  # (run, file): its first and last sample time
    for file, expectations_of in ((CPU_FILE, cpu_expectations), (GPU_FILE, gpu_expectations)):
        layouts: dict[tuple, list[int]] = {}
        for number, run in enumerate(runs):
            if file in run.tables:
                layouts.setdefault(tuple(run.tables[file].column_names), []).append(number)
        for layout, members in layouts.items():
            samples = _samples(file, {n: runs[n].tables[file] for n in members}, limits)
            for n in members:
                runs[n].facts.update(_facts(file, list(layout), samples, n, runs[n].interval_s, limits))
                runs[n].facts.update(_sensor_facts(file, samples, n, runs[n].interval_s, runs[n].window_s))
                first, last = samples.first_ms.get(n, np.nan), samples.last_ms.get(n, np.nan)
                times[n, file] = (None, None) if first != first else (float(first), float(last))
                if samples.spans.get(n):
                    runs[n].spans[file] = samples.spans[n]
            text_checks, typed_checks = expectations_of(set(samples.typed.columns) | set(layout), limits)
            text_checks = [e for e in text_checks if e.column in samples.text]
            found.append(_failures(samples.text, text_checks, file, f"{label} {file} text", docs))
            found.append(_failures(samples.typed, typed_checks, file, f"{label} {file} values", docs))
    for n, run in enumerate(runs):
        if run.manifest is None:
            continue
        run.manifest_row = manifest_row(run.data, *times.get((n, run.energy_file), (None, None)))
        run.field_rows = field_rows(run.folder, run.data, run.metrics)
        if run.facts:
            run.facts.update(_steady_facts(run.folder))
        start, end = run.window_s
        if start is not None and end is not None and run.facts:
            for file, spans in run.spans.items():
                run.facts.update(_coverage_facts(file, spans, start, end, run.interval_s))
    with_facts = [n for n, run in enumerate(runs) if run.facts]
    if with_facts:
        facts = pd.DataFrame([{**runs[n].facts, "_run": n} for n in with_facts])
        present = [file for file in (CPU_FILE, GPU_FILE) if f"{_prefix(file)}rows" in facts]
        for run, failures in _failures(facts, facts_expectations(present, set(facts.columns)), "",
                                       f"{label} facts", docs).items():
            found.append({run: [Failure(f.file, f.check, f.column, _fact_details(f, runs[run].facts, limits), f.level)
                                for f in failures]})
    with_manifest = [n for n, run in enumerate(runs) if run.manifest_row is not None]
    if with_manifest:
        manifests = pd.DataFrame([{**runs[n].manifest_row, "_run": n} for n in with_manifest])
        for n, failures in _failures(manifests, manifest_expectations(manifests), MANIFEST_FILE, f"{label} manifest",
                                     docs).items():
            found.append({n: [replace(f, details=hot_start_details(runs[n].data)) if f.check == HOT_START_CHECK else f
                              for f in failures]})
        fields = pd.DataFrame([{**row, "_run": n} for n in with_manifest for row in runs[n].field_rows])
        found.append(_field_failures(fields, f"{label} manifest fields", docs))
    for failures in found:
        for run, items in failures.items():
            runs[run].failures += items
    return {run.folder: run.failures for run in runs}
