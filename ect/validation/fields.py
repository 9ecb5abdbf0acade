"""The fields of manifest.json and metrics.json that the aggregation relies on (ect.aggregate.runs puts them in the
processed row), as rows for the checks: one row per run and field, with its value, whether it is of its kind, present
where required, within its range, in its set, and the same as the run folder's name.

One row per (run, field) lets a handful of expectations check every field of every run of a batch (a Great
Expectations expectation costs about 15 ms, whatever the size of its table), each failure still named by its field.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ect.raw.columns import VALIDATION_METRICS
from ect.raw.layout import MANIFEST_FILE, METRICS_FILE, RunKey
from ect.raw.manifest import FIELD_KINDS, INTEGER, LIST, NUMBER, OBJECT, TEXT, field_value, is_kind

# A measurement window in plausible Unix seconds: 2000-01-01 to 2100-01-01 UTC. Outside is a unit mistake
# (milliseconds given as seconds) or a corrupt value.
EARLIEST_UNIX_S, LATEST_UNIX_S = 946_684_800, 4_102_444_800
# The longest sampling interval that still measures a training (ect samples every 0.1 s, the original every 1 s).
MAX_SAMPLING_INTERVAL_S = 60.0
# Counts above this are corrupt values (and would not fit the processed dataset's 64-bit columns).
MAX_COUNT = 10**15

# The field's name in the checks: its dotted path, but for the names validation has always used.
MANIFEST_NAMES = {"sensors.sampling_interval_s": "sampling_interval_s", "window.start_unix_s": "window_start_unix_s",
                  "window.end_unix_s": "window_end_unix_s"}
REQUIRED = ("run_id", "environment", "architecture", "status", "sampling_interval_s", "window_start_unix_s",
            "window_end_unix_s")
# name: (lowest, highest or None, lowest excluded)
MANIFEST_RANGES = {
    "repetition": (0, 10_000, False), "attempt": (1, 10_000, False), "host.cpu_count": (1, 1_000_000, False),
    "sampling_interval_s": (0, MAX_SAMPLING_INTERVAL_S, True),
    "window_start_unix_s": (EARLIEST_UNIX_S, LATEST_UNIX_S, False),
    "window_end_unix_s": (EARLIEST_UNIX_S, LATEST_UNIX_S, False),
}
MANIFEST_SETS = {
    "status": ["completed"],
    "source": ["ect", "legacy-import"],
    "sensors.gpu_energy_source": ["counter", "integrated", "unavailable"],
    "sensors.cpu_energy_source": ["counter", "estimated", "unavailable"],
}
FOLDER_FIELDS = ("environment", "architecture", "run_id")  # the run folder is <environment>/<architecture>/<run_id>

METRICS_KINDS = {**{name: NUMBER for name in VALIDATION_METRICS}, "gflops": NUMBER, "params_total": INTEGER,
                 "trained_epochs": INTEGER, "images_seen": INTEGER}
METRICS_RANGES = {  # NaN is allowed for the quality metrics: a training that diverged still measured its energy
    "val_loss": (0, None, False),
    **{name: (0, 1, False) for name in VALIDATION_METRICS if name != "val_loss"},
    "gflops": (0, 1e9, False), "params_total": (0, MAX_COUNT, False), "trained_epochs": (0, 1_000_000, False),
    "images_seen": (0, MAX_COUNT, False),
}

KIND_WORDS = {TEXT: "a string", INTEGER: "an integer", NUMBER: "a number", OBJECT: "an object", LIST: "a list"}
# The checks of the field rows: (the row's column that says whether the field passed, the expectation it stands for)
CHECKS = (("kind_ok", "expect_column_values_to_be_of_type"), ("present_ok", "expect_column_values_to_not_be_null"),
          ("set_ok", "expect_column_values_to_be_in_set"), ("same_ok", "expect_column_pair_values_to_be_equal"))
BETWEEN = "expect_column_values_to_be_between"


def _number(value) -> float:
    try:
        return float(value)
    except OverflowError:  # an integer beyond float: out of every range
        return math.inf if value > 0 else -math.inf


def _shown(value: Any):
    """A value as it is reported: scalars as they are, objects and lists as (short) JSON."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"{str(value)[:12]}... ({len(str(value))} digits)"
    if value is None or isinstance(value, (str, int, float, bool)):
        return value if not isinstance(value, str) or len(value) <= 80 else value[:77] + "..."
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def finite_number(value) -> float | None:
    """A JSON number as a finite float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = _number(value)
    return number if math.isfinite(number) else None


def _rows(file: str, document: dict, kinds: dict, names: dict, ranges: dict, sets: dict, folder: RunKey | None):
    for path, kind in kinds.items():
        name = names.get(path, path)
        value = field_value(document, path)
        kind_ok = value is None or is_kind(value, kind)
        number = _number(value) if kind_ok and value is not None and kind in (INTEGER, NUMBER) else math.nan
        low, high, strict = ranges.get(name, (None, None, False))
        same = getattr(folder, name) if folder is not None and name in FOLDER_FIELDS else None
        yield {
            "file": file, "field": name, "kind": kind, "value": _shown(value), "number": number,
            "low": math.nan if low is None else math.nextafter(low, math.inf) if strict else float(low),
            "high": math.nan if high is None else float(high),
            "kind_ok": kind_ok,
            "present_ok": name not in REQUIRED or not (value is None or (isinstance(value, float) and math.isnan(value))),
            "set_ok": value in sets[name] if name in sets and isinstance(value, str) else None,
            "same_ok": value == same if same is not None and isinstance(value, str) else None,
            "folder": same,
        }


def field_rows(folder, manifest: dict, metrics: dict | None) -> list[dict]:
    """One row per field of the run's manifest.json and metrics.json (when it has one) that validation checks."""
    key = RunKey.of_folder(folder)
    rows = list(_rows(MANIFEST_FILE, manifest, FIELD_KINDS, MANIFEST_NAMES, MANIFEST_RANGES, MANIFEST_SETS, key))
    if metrics is not None:
        rows += _rows(METRICS_FILE, metrics, METRICS_KINDS, {}, METRICS_RANGES, {}, None)
    return rows


def meaning(check: str, row: dict) -> str:
    """What a failed check of a field row expected."""
    name, file = row["field"], row["file"]
    if check == "expect_column_values_to_be_of_type":
        return f"{name} to be {KIND_WORDS[row['kind']]} (or missing)"
    if check == "expect_column_values_to_not_be_null":
        return f"the manifest has {name}"
    if check == "expect_column_values_to_be_in_set":
        allowed = MANIFEST_SETS[name]
        return "the run completed" if name == "status" else f"{name} is one of {allowed}"
    if check == "expect_column_pair_values_to_be_equal":
        return f"the manifest's {name} is its folder's (pairs: manifest, folder)"
    low, high, strict = (MANIFEST_RANGES if file == MANIFEST_FILE else METRICS_RANGES)[name]
    return f"{name} {'>' if strict else '>='} {low:g}" + ("" if high is None else f" and <= {high:g}")


def offending(check: str, row: dict):
    """The value a failed check of a field row reports."""
    if check == "expect_column_pair_values_to_be_equal":
        return row["value"], row["folder"]
    return row["value"]  # as written (an integer as an integer)
