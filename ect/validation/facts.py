"""A run's facts, computed with Arrow and numpy from its samples: what each per-sample check found (how many values
offend it, and the first few), and the run-level figures (rows, the largest gap, coverage of the window, the spacing
of each sensor's samples against the declared interval, each GPU's energy counter against its integrated power, the
steady state). Great Expectations then validates the facts, not the samples (ect.validation.suites).

The samples are typed a block at a time (ect.validation.reading): the checks of one row are made on the block and the
block let go; only the columns that checks across rows need (times, each GPU's label, power, the energy counters) are
kept for the whole run.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ect.energy import MILLIJOULES_PER_JOULE, NVML_POWER_AVERAGE_S, counter_delta, edge_power_W, integrate_power_J
from ect.raw.atomic import read_bytes
from ect.raw.columns import CPU_COLUMNS, CPU_NUMERIC, CPU_POWER_SOURCES, GPU_COLUMNS, GPU_NUMERIC
from ect.raw.layout import CPU_FILE, GPU_FILE, HISTORY_FILE
from ect.steady import read_history, steady_state
from ect.validation.fields import finite_number
from ect.validation.reading import NUMBER, WHOLE_NUMBER, floats, milliseconds, nan_filled, present
from ect.validation.verdicts import ERROR, WARNING, Failure, Limits

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
RAPL_COLUMNS = ("rapl_package_energy_uJ", "rapl_dram_energy_uJ")
# The never-empty columns of each file.
NOT_NULL = {GPU_FILE: ("timestamp", "gpu_index", "power_W"), CPU_FILE: ("timestamp",)}

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
EXAMPLES = 5  # offending values named per check

REGEX, STRFTIME, NOT_EMPTY, IN_SET, BETWEEN, PAIR = (
    "expect_column_values_to_match_regex", "expect_column_values_to_match_strftime_format",
    "expect_column_values_to_not_be_null", "expect_column_values_to_be_in_set", "expect_column_values_to_be_between",
    "expect_column_pair_values_a_to_be_greater_than_b")


@dataclass
class SampleCheck:
    """What a per-sample check found in one file of a run: the expectation it stands for, the column it names, what
    it expects, and the values that offend it (how many, and the first EXAMPLES of them, in file order)."""

    file: str
    check: str
    column: str
    meaning: str
    level: str = ERROR
    offending: int = 0
    examples: list = field(default_factory=list)

    def add(self, mask: np.ndarray, values=None) -> None:
        """Counts the rows `mask` marks; `values` (an array, a pair of arrays, or None for empty values) gives their
        examples."""
        found = int(np.count_nonzero(mask))
        if not found:
            return
        self.offending += found
        room = EXAMPLES - len(self.examples)
        if room > 0:
            self.examples += [_example(values, k) for k in np.flatnonzero(mask)[:room]]

    def failure(self) -> Failure:
        return Failure(self.file, self.check, self.column, f"expected {self.meaning}: {self.offending} offending "
                                                           f"value(s), e.g. {self.examples}", self.level)


def _example(values, k: int):
    if values is None:
        return None
    if isinstance(values, tuple):
        return tuple(_example(v, k) for v in values)
    return plain(values[int(k)].as_py() if isinstance(values, (pa.Array, pa.ChunkedArray)) else values[k])


def plain(value):
    """numpy scalars (and tuples of them) as plain Python values, NaN as None, for readable messages."""
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def range_meaning(column: str, low: float, high: float, unit: str) -> str:
    if high == FINITE:
        return f"{column} >= {low:g}{unit} and finite"
    return f"{column} within {low:g}-{high:g}{unit}"


class Samples:
    """One CSV of one run, checked a block at a time: each per-sample check's findings, and the columns the checks
    across rows need (times, each GPU's label as a code, power, energy counters) for the whole run."""

    KEPT = {GPU_FILE: ("power_W", "energy_counter_mJ"), CPU_FILE: CPU_ENERGY_COLUMNS}

    def __init__(self, file: str, columns: list[str], limits: Limits):
        self.file, self.columns, self.limits = file, list(columns), limits
        self.rows = 0
        self.checks: dict[tuple, SampleCheck] = {}
        self.labels: dict[str, int] = {}  # a GPU's gpu_index as written: its code
        self.numeric = [c for c in (GPU_NUMERIC if file == GPU_FILE else CPU_NUMERIC) if c in columns]
        self._kept: dict[str, list] = {c: [] for c in self.KEPT[file] + ("_times", "_codes", "_most_W")}
        self.times_ms: np.ndarray | None = None
        self.codes: np.ndarray | None = None  # per row: its GPU's code, -1 where none (the CPU's: all 0)
        self.values: dict[str, np.ndarray] = {}
        self.sensors: list = []  # [(sensor, positions of its rows that have a time, in file order)]
        self.spans: list = []  # [(sensor, first ms, last ms)]: each GPU's samples, or the CPU's energy readings
        self.first_ms = self.last_ms = self.max_step_s = math.nan
        self.gpus = 1

    def _check(self, check: str, column: str, meaning: str, level: str = ERROR) -> SampleCheck:
        key = (check, column, level)
        if key not in self.checks:
            self.checks[key] = SampleCheck(self.file, check, column, meaning, level)
        return self.checks[key]

    def add(self, block: pa.RecordBatch) -> None:
        """The checks of each row of a block of text; keeps what the checks across rows need."""
        text = {name: block.column(name) for name in block.schema.names}
        rows = block.num_rows
        self.rows += rows
        typed = {}
        for column in self.numeric:
            whole = column == "gpu_index"
            typed[column] = floats(text[column], WHOLE_NUMBER if whole else NUMBER)
            self._check(REGEX, column, "gpu_index values are whole numbers" if whole else f"{column} values are numbers") \
                .add(present(text[column]) & np.isnan(typed[column]), text[column])
        times = np.full(rows, np.nan)
        if "timestamp" in text:
            times, unformed, not_a_time = milliseconds(text["timestamp"])
            self._check(REGEX, "timestamp", "UTC ms timestamps").add(unformed, text["timestamp"])
            self._check(STRFTIME, "timestamp", f"timestamps that are real UTC times ({TIMESTAMP_FORMAT})") \
                .add(not_a_time, text["timestamp"])
        if "cpu_power_source" in text and self.file == CPU_FILE:
            source = text["cpu_power_source"]
            self._check(IN_SET, "cpu_power_source", f"cpu_power_source is one of {list(CPU_POWER_SOURCES)}").add(
                present(source) & ~nan_filled(pc.is_in(source, pa.array(CPU_POWER_SOURCES))), source)
        for column in NOT_NULL[self.file]:
            if column in text:
                self._check(NOT_EMPTY, column, f"{column} is never empty").add(~present(text[column]))
        for column, (low, high, unit) in (GPU_RANGES if self.file == GPU_FILE else CPU_RANGES).items():
            if column in typed:
                values = typed[column]
                self._check(BETWEEN, column, range_meaning(column, low, high, unit)).add(
                    (values < low) | (values > high), values)
        if self.file == GPU_FILE:
            self._gpu_rows(typed, text, rows)
        self._kept["_times"].append(times)
        for column in self.KEPT[self.file]:
            if column in typed:
                self._kept[column].append(typed[column])

    def _gpu_rows(self, typed: dict, text: dict, rows: int) -> None:
        nothing = np.full(rows, np.nan)
        power, limit = typed.get("power_W"), typed.get("power_limit_W")
        limit_max = None if limit is None else self.limits.power_limit_factor * limit
        if limit_max is not None and power is not None:
            self._check(PAIR, "power_W", f"power_W at most {self.limits.power_limit_factor} x power_limit_W (pairs: "
                                         f"limit, power)").add(_pair_fails(limit_max, power), (limit_max, power))
        if "utilization_gpu_pct" in typed and power is not None:
            floor = np.where(typed["utilization_gpu_pct"] >= BUSY_UTILIZATION_PCT,
                             np.fmax(POWER_FLOOR_W, POWER_FLOOR_SHARE * (nothing if limit is None else limit)), np.nan)
            self._check(PAIR, "power_floor_W", (
                f"power_W at least max({POWER_FLOOR_W:g} W, {POWER_FLOOR_SHARE:g} x power_limit_W) where "
                f"utilization_gpu_pct >= {BUSY_UTILIZATION_PCT:g} (a busy GPU never draws ~0 W; power in kW?) (pairs: "
                f"power, floor)")).add(_pair_fails(power, floor), (power, floor))
        if "temperature_C" in typed:
            low, high = TEMPERATURE_RANGE_C
            values = typed["temperature_C"]
            self._check(BETWEEN, "temperature_C", f"temperature_C within {low:g}-{high:g} C (a GPU outside it is not "
                                                  f"in its usual operating range)", WARNING).add(
                (values < low) | (values > high), values)
        if "gpu_index" in text:
            labels = pc.dictionary_encode(text["gpu_index"])
            codes = np.array([self.labels.setdefault(label, len(self.labels)) for label in
                              labels.dictionary.to_pylist()] + [-1], dtype=np.int32)
            self._kept["_codes"].append(codes[labels.indices.fill_null(-1).to_numpy(zero_copy_only=False)])
        if "energy_counter_mJ" not in typed:
            return
        most = nothing if limit_max is None else limit_max
        self._kept["_most_W"].append(np.where(np.isnan(most), GPU_POWER_CEILING_W, np.minimum(most,
                                                                                              GPU_POWER_CEILING_W)))

    def finish(self) -> Samples:
        """The checks across rows (order, counter steps), once every block is in; the sensors and their spans."""
        kept = {}
        for name in list(self._kept):  # one column at a time, its blocks let go before the next is joined
            parts = self._kept.pop(name)
            kept[name] = np.concatenate(parts) if parts else np.empty(0)
            del parts
        timed = "timestamp" in self.columns
        self.times_ms = kept["_times"] if timed else None
        self.values = {c: kept[c] for c in self.KEPT[self.file] if c in self.columns}
        if self.file == GPU_FILE:
            self.codes = kept["_codes"] if "gpu_index" in self.columns else None
            self.gpus = len(self.labels) if self.codes is not None else 1
        else:
            self.codes = np.zeros(self.rows, dtype=np.int32)
        if timed and len(kept["_times"]) and not np.all(np.isnan(kept["_times"])):
            self.first_ms, self.last_ms = float(np.nanmin(kept["_times"])), float(np.nanmax(kept["_times"]))
        if self.codes is None:
            return self
        times = self.times_ms
        if timed:
            steps_s = grouped_steps(times, self.codes)[0] / 1000
            self._check(BETWEEN, "timestamp_step_s", "timestamps strictly increase").add(
                ~np.isnan(steps_s) & ~(steps_s > 0), steps_s)
            if not np.all(np.isnan(steps_s)):
                self.max_step_s = float(np.nanmax(steps_s))
        if self.file == GPU_FILE and "energy_counter_mJ" in self.values:
            self._counter_steps("energy_counter_mJ", "energy_counter_step_mJ", kept["_most_W"], times, (
                "the energy counter never decreases",
                f"each energy-counter step at most what min({self.limits.power_limit_factor} x power_limit_W, "
                f"{GPU_POWER_CEILING_W:g} W) ({GPU_POWER_CEILING_W:g} W without a limit) gives in the time since the "
                f"previous read + {COUNTER_SLACK_S:g} s (pairs: allowed mJ, step mJ)"), 1)
        for column in RAPL_COLUMNS if self.file == CPU_FILE else ():
            if column in self.values:
                self._counter_steps(column, column.replace("_energy_uJ", "_step_uJ"),
                                    np.full(self.rows, CPU_POWER_CEILING_W), times, (
                    "RAPL energy never decreases (wrap-around handled)",
                    f"each RAPL step at most what {CPU_POWER_CEILING_W:g} W gives in the time since the previous "
                    f"read + {COUNTER_SLACK_S:g} s (pairs: allowed uJ, step uJ)"), 1000)
        if timed:
            self._sensors()
        return self

    def _counter_steps(self, column: str, step_column: str, most_W: np.ndarray, times, meanings: tuple,
                       per_mJ: float) -> None:
        steps, step_ms = grouped_steps(self.values[column], self.codes, times)
        self._check(BETWEEN, step_column, meanings[0]).add(steps < 0, steps)
        if times is not None:
            allowed = most_W * (np.maximum(step_ms, 0) / 1000 + COUNTER_SLACK_S) * 1000 * per_mJ
            self._check(PAIR, step_column, meanings[1]).add(_pair_fails(allowed, steps), (allowed, steps))

    def _sensors(self) -> None:
        times, codes = self.times_ms, self.codes
        has_time = ~np.isnan(times)
        if self.file == GPU_FILE:
            for label, code in sorted(self.labels.items()):
                rows = np.flatnonzero(has_time & (codes == code))
                if len(rows):
                    self.sensors.append((f"GPU {label}", rows))
                    self.spans.append((f"GPU {label}", float(times[rows].min()), float(times[rows].max())))
            return
        rows = np.flatnonzero(has_time)
        if len(rows):
            self.sensors.append(("CPU", rows))
        energy = [~np.isnan(self.values[c]) for c in CPU_ENERGY_COLUMNS if c in self.values]
        if energy:
            read = np.logical_or.reduce(energy) & has_time
            if read.any():
                self.spans.append(("CPU", float(times[read].min()), float(times[read].max())))


def _pair_fails(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Rows where both values are present and a < b."""
    return ~np.isnan(a) & ~np.isnan(b) & ~(a >= b)


def grouped_steps(values: np.ndarray, codes: np.ndarray, times: np.ndarray | None = None):
    """Each value minus the previous present one of its group (a counter need not be read on every row); NaN on
    the first of a group, where a value is missing, and where a row has no group (code -1). With `times`, also the
    time since that previous value: (value steps, time steps or None)."""
    value_steps = np.full(len(values), np.nan)
    time_steps = None if times is None else np.full(len(values), np.nan)
    present = ~np.isnan(values) & (codes >= 0)
    for code in np.unique(codes[present]):  # one group at a time: a few GPUs, or the CPU
        rows = np.flatnonzero(present & (codes == code))
        value_steps[rows[1:]] = np.diff(values[rows])
        if times is not None:
            time_steps[rows[1:]] = np.diff(times[rows])
    return value_steps, time_steps


def prefix(file: str) -> str:
    return file.split(".")[0] + "_"


def file_facts(file: str, columns: list[str], samples: Samples, interval_s: float, limits: Limits) -> dict:
    """One file's run-level facts: its columns, its rows against the fewest allowed, its largest gap."""
    start, expected = prefix(file), set(GPU_COLUMNS if file == GPU_FILE else CPU_COLUMNS)
    max_step = samples.max_step_s
    return {f"{start}columns_ok": set(columns) == expected, f"{start}columns": sorted(columns),
            f"{start}expected_columns": sorted(expected), f"{start}rows": samples.rows,
            f"{start}min_rows": limits.min_samples * max(samples.gpus, 1),
            f"{start}max_step_s": None if max_step != max_step else float(max_step),
            f"{start}max_gap_s": limits.max_gap_factor * interval_s, f"{start}interval_s": interval_s}


def sensor_facts(file: str, samples: Samples, interval_s: float, window: tuple) -> dict:
    """One file's cross-checks of each sensor (README, Validation): the median spacing of its samples (each GPU's,
    the CPU's energy readings) against the declared interval; the share it has of the samples the window holds at that
    interval; the largest gap between the readings of each CPU energy column (an empty value is a missing reading);
    each GPU's energy counter against its integrated power. A sensor whose times do not increase is left to the order
    check."""
    start_prefix, values, times = prefix(file), samples.values, samples.times_ms
    start, end = window
    edges = (round(start * 1000), round(end * 1000)) if start is not None and end is not None and \
        start < end and abs(start) < MAX_UNIX_S and abs(end) < MAX_UNIX_S else None  # else: the window's checks say
    energy = [column for column in CPU_ENERGY_COLUMNS if column in values] if file == CPU_FILE else []
    spacings, shares, gaps, cross = [], [], {}, []
    for sensor, rows in samples.sensors:
        t = times[rows]
        if len(t) < 2 or not np.all(np.diff(t) > 0):
            continue
        if file == CPU_FILE:
            read = {column: ~np.isnan(values[column][rows]) for column in energy}
            for column, readings in read.items():
                if np.count_nonzero(readings) >= 2:
                    gaps[column] = float(np.max(np.diff(t[readings]))) / 1000
            t = t[np.logical_or.reduce(list(read.values()))] if read else t[:0]
            if len(t) < 2:
                continue
        median_ms, periodic_ms = float(np.median(np.diff(t))), periodic_spacing_ms(t, interval_s * 1000)
        spacings.append((sensor, median_ms / 1000, min(_ratio_either_way(median_ms / 1000, interval_s),
                                                       _ratio_either_way(periodic_ms / 1000, interval_s))))
        if edges is not None:
            inside = int(np.count_nonzero((t >= edges[0]) & (t <= edges[1])))
            shares.append((sensor, inside, round((edges[1] - edges[0]) / 1000 / interval_s, 1)))
        if file == GPU_FILE and "energy_counter_mJ" in values and "power_W" in values:
            check = counter_power(sensor, t, values["power_W"][rows], values["energy_counter_mJ"][rows], edges,
                                  interval_s)
            if check is not None:
                cross.append(check)
    facts: dict = {f"{column}_max_read_step_s": gap for column, gap in gaps.items()}
    if spacings:
        facts[f"{start_prefix}spacings"] = [(sensor, spacing) for sensor, spacing, _ in spacings]
        facts[f"{start_prefix}spacing_ratio"] = min(max(ratio for _, _, ratio in spacings), 1e300)
    if shares:
        facts[f"{start_prefix}shares"] = shares
        facts[f"{start_prefix}sample_share"] = min(inside / max(expected, 1e-9) for _, inside, expected in shares)
    if cross:
        ratios = [counter_power_ratio(check) for check in cross]
        facts["gpu_counter_power"] = cross
        facts["gpu_counter_power_ratio"] = max(ratios)
        facts["gpu_counter_power_warning_ratio"] = max((r for r in ratios if r <= 1), default=None)
    return facts


def _ratio_either_way(observed: float, declared: float) -> float:
    return max(observed / declared, declared / observed) if observed > 0 else math.inf


def periodic_spacing_ms(t: np.ndarray, interval_ms: float) -> float:
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


def counter_power(sensor: str, t: np.ndarray, power: np.ndarray, counter: np.ndarray, edges: tuple | None,
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


def counter_power_ratio(check: tuple) -> float:
    """A counter-power check's disagreement as a share of its tolerance (> 1: outside it)."""
    _, _, counter_J, power_J, tolerance_J = check
    difference = abs(counter_J - power_J)
    return difference / tolerance_J if tolerance_J > 0 else (0.0 if difference == 0 else 1e300)


def coverage_facts(file: str, spans: list, start_s: float, end_s: float, interval_s: float) -> dict:
    """How far after the window's start the latest sensor of the file begins, and how far before its end the
    earliest one stops, against COVERAGE_INTERVALS sampling intervals."""
    start = prefix(file)
    late = [(sensor, round(first / 1000 - start_s, 3)) for sensor, first, _ in spans]
    early = [(sensor, round(end_s - last / 1000, 3)) for sensor, _, last in spans]
    return {f"{start}late_s": max(s for _, s in late), f"{start}early_s": max(s for _, s in early),
            f"{start}late": late, f"{start}early": early,
            f"{start}coverage_tolerance_s": COVERAGE_INTERVALS * interval_s}


def steady_facts(folder: Path) -> dict:
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


def significant(value: float) -> str:
    """A number rounded to 4 significant digits, without an exponent from 1,000 to 1e15 (13820, not 1.382e+04)."""
    rounded = float(f"{value:.4g}")
    return f"{rounded:.0f}" if 1e3 <= abs(rounded) < 1e15 else f"{rounded:g}"
