"""Reading a run folder for the checks: its manifest and metrics.json, and its CSVs as blocks of text.

A CSV is parsed by Arrow, as the aggregation parses it, every field as text (so that "119.17 W" is reported as what it
is, not silently turned into a missing number), and handed over a block at a time: the checks type each block, keep
the few columns that whole-run checks need and let the rest go, so that memory follows the run's typed columns, not
its text. A file that is not plain (cut last line, lines with a wrong number of fields, not UTF-8, a repeated or
unreadable header) is read again whole, the slow way (read_text_csv), so that each flaw is named with its line.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ect.raw.atomic import LinkRefused, open_regular, read_bytes, read_json
from ect.raw.columns import TIMESTAMP_PATTERN
from ect.raw.layout import CPU_FILE, GPU_FILE, MANIFEST_FILE, METRICS_FILE
from ect.raw.manifest import Manifest
from ect.validation.fields import finite_number
from ect.validation.verdicts import Failure, link_failure, linked_files

# ASCII digits only ([0-9], not \d): Python's \d (Great Expectations' regex) also matches other scripts' digits,
# which no CSV reader takes for numbers.
NUMBER = r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$"
WHOLE_NUMBER = r"^(?:0|[1-9][0-9]*)$"  # gpu_index, written one way only ("00" would be another GPU's label)
BLOCK_BYTES = 4 << 20  # the text of a CSV held at once while its blocks are typed


@dataclass
class RunFiles:
    """One run folder as read for the checks: its manifest, metrics.json, which CSVs it should have, and the failures
    of reading them so far."""

    folder: Path
    failures: list[Failure]
    manifest: Manifest | None = None
    data: dict = field(default_factory=dict)  # manifest.json as read
    metrics: dict | None = None  # metrics.json as read, when there is one
    csv_files: list[str] = field(default_factory=list)  # the CSVs to check (expected by the manifest, or present)

    @property
    def interval_s(self) -> float:
        value = finite_number(self.manifest.sensors.sampling_interval_s) if self.manifest.sensors else None
        return value if value is not None and value > 0 else 1.0

    @property
    def window_s(self) -> tuple[float | None, float | None]:
        window = self.data.get("window")
        window = window if isinstance(window, dict) else {}
        return finite_number(window.get("start_unix_s")), finite_number(window.get("end_unix_s"))

    def energy_file(self, read: set[str]) -> str | None:
        """The file (of those read) whose samples carry the energy: the window must lie inside them."""
        sensors = self.manifest.sensors
        if GPU_FILE in read:
            return GPU_FILE
        cpu_energy = (sensors.cpu_energy_source if sensors else None) != "unavailable"
        return CPU_FILE if CPU_FILE in read and cpu_energy else None


def read_run(folder: Path) -> RunFiles:
    """The manifest and metrics.json of a run and the CSVs it should have, with the failures of reading them; none of
    them when a run file is a symbolic link (not_a_link: nothing of the run is read)."""
    linked = linked_files(folder)
    if linked:
        return RunFiles(folder, linked)
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        return RunFiles(folder, [Failure(MANIFEST_FILE, "file_readable", None, "file is missing")])
    data = read_json(manifest_path)
    if data is None:
        return RunFiles(folder, [Failure(MANIFEST_FILE, "file_readable", None, "not a valid JSON object")])
    run = RunFiles(folder, [], Manifest.from_dict(data), data)
    if (folder / METRICS_FILE).exists():
        run.metrics = read_json(folder / METRICS_FILE)
        if run.metrics is None:
            run.failures.append(Failure(METRICS_FILE, "file_readable", None, "not a valid JSON object"))
    sensors = run.manifest.sensors
    gpu_expected = sensors is not None and isinstance(sensors.gpu_energy_source, str) and \
        sensors.gpu_energy_source != "unavailable"
    used = sensors.used if sensors is not None and isinstance(sensors.used, list) else []
    cpu_expected = any(name in ("process", "psutil", "rapl", "estimate") for name in used if isinstance(name, str))
    run.csv_files = [name for name, expected in ((CPU_FILE, cpu_expected), (GPU_FILE, gpu_expected))
                     if expected or (folder / name).exists()]
    return run


class NotPlain(Exception):
    """A CSV that the block reader does not take as it is: read whole, the slow way, to name its flaws."""


# What a plain read may raise for a file that is not plain: it is then read the slow way.
NOT_PLAIN = (NotPlain, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError, LinkRefused,
             UnicodeDecodeError, csv.Error)


def plain_header(path: Path) -> list[str]:
    """The header of a CSV that ends with a line end and names each column once (NotPlain otherwise)."""
    with open_regular(path) as handle:
        head = handle.read(1 << 16)
        if not head or b"\n" not in head:
            raise NotPlain()
        handle.seek(-1, io.SEEK_END)
        if handle.read(1) != b"\n":
            raise NotPlain()  # a last line cut while being written
    names = next(csv.reader([head.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]), [])
    if not names or len(set(names)) != len(names):
        raise NotPlain()
    return names


def text_blocks(path: Path, names: list[str]) -> Iterator[pa.RecordBatch]:
    """A plain CSV's blocks of text (BLOCK_BYTES each), streamed from the file; pyarrow's ArrowInvalid (a line with
    more or fewer fields than the header, text that is not UTF-8) or NotPlain, possibly after blocks were handed over."""
    with open_regular(path) as handle:
        reader = pacsv.open_csv(handle, read_options=pacsv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES),
                                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                                     strings_can_be_null=True, null_values=[""]))
        if reader.schema.names != names:
            raise NotPlain()
        yield from reader


def read_text_csv(folder: Path, name: str) -> tuple[pa.Table | None, list[Failure]]:
    """A CSV as a table of strings (empty fields null), or the reason it cannot be read. What Arrow cannot read is
    reported. A last line cut while being written is reported and left out; so are lines with more or fewer fields
    than the header (row_field_count)."""
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


def floats(values: pa.Array, pattern: str = NUMBER) -> np.ndarray:
    """Text as float64, NaN where empty or not a number of the pattern."""
    try:  # the usual case, every value a finite number: one conversion in C
        numbers = pc.cast(values, pa.float64()).to_numpy(zero_copy_only=False)  # empty: NaN
        if pattern == NUMBER and np.count_nonzero(~np.isfinite(numbers)) == values.null_count:
            return numbers
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    numbers = pc.if_else(pc.match_substring_regex(values, pattern), values, pa.scalar(None, pa.string()))
    return nan_filled(_cast(numbers, pa.float64()))


_PATTERN = re.compile(TIMESTAMP_PATTERN)


def milliseconds(values: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Timestamps of the contract as ms since the epoch (float64, exact below 2**53), NaN where a value is not one;
    which values do not have the contract's form (as Python's re reads its pattern, digits of other scripts
    included); and which have it but are no real time (2025-02-30, 24:00, digits of other scripts)."""
    try:
        times = pc.cast(values, pa.timestamp("ms", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        times = _cast(values, pa.timestamp("ms", tz="UTC"))
    ms = nan_filled(times.cast(pa.int64()).cast(pa.float64()))
    given = present(values)
    formed = nan_filled(pc.match_substring_regex(values, TIMESTAMP_PATTERN))
    unread = np.flatnonzero(given & (np.isnan(ms) | ~formed))
    text = values.take(pa.array(unread, pa.int64())).to_pylist() if len(unread) else []
    formed[unread] = [bool(_PATTERN.match(value)) for value in text]  # other scripts' digits: Python's \d, not RE2's
    not_a_time = formed & np.isnan(ms) & given
    return ms, given & ~formed, not_a_time


def present(values: pa.Array) -> np.ndarray:
    """Which values are not empty."""
    return np.ones(len(values), dtype=bool) if values.null_count == 0 else ~nan_filled(values.is_null())


def nan_filled(values) -> np.ndarray:
    return values.fill_null(np.nan).to_numpy(zero_copy_only=False) if not pa.types.is_boolean(values.type) \
        else values.fill_null(False).to_numpy(zero_copy_only=False)
