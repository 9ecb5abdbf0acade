"""Imports the raw measurements of the original replication package (seaa2023_ect) into ect's raw run folders.

Source: SRC/<environment>/<architecture>/gpu-power-<YYYYmmddTHHMMSS>.csv and cpu-mem-usage-<same stamp>.csv (the
original's psutil process sampler). Each pair becomes one run folder DEST/<environment>/<architecture>/legacy-<stamp>/
with gpu.csv, cpu.csv and manifest.json, in the columns and units of ect's own sampler, so that the published data
can be re-analysed with ect.

The GPU file is what `nvidia-smi --query-gpu=... --format=csv[,nounits][,noheader] -l N` writes, or the same with
the original's renamed header (timestamp,gpu_name,gpu_usage,...): fields in any order and any subset, recognised by
the name in the header (units in brackets ignored: "power.draw [W]"), values with or without units ("119.17 W",
"119.17"), "[N/A]", "[Not Supported]", "[Unknown Error]" as missing, timestamps such as "2023/03/08 21:29:56.373",
several GPUs in one file (the `index` field). A file without a header has the original's query order
(timestamp, name, utilization.gpu, utilization.memory, memory.total, memory.used, power.draw, power.max_limit,
temperature.gpu). timestamp and a power field are required; fields ect has no column for are ignored and noted.

- Runs are numbered 0..n-1 per environment and architecture in the order of the stamps of ALL gpu files;
  a run skipped for having too few samples leaves a gap, so the numbers match the original's run index.
- Timestamps: both samplers wrote local wall-clock time without a zone; it is written as if it were UTC.
  Resolution is milliseconds, the contract's: nvidia-smi has ms; the CPU sampler's microseconds are truncated.
- Power keeps full precision (the original parsed whole watts). "[N/A]", "[Not Supported]", "None" and
  empty fields become empty fields.
- trim_samples drops the first and last lines of samples of each GPU file, as the original did
  (skiprows/skipfooter=3): a last line cut mid-write, even right after its timestamp, is one of the trailing ones.
- A truncated last line (a crash or kill while writing) is dropped and noted; a malformed line anywhere
  else fails that run (naming the file and line), never the import of the others.
- Plain files are read with pyarrow as whole columns, and written from them, two runs at a time; a file with
  anything unusual (quotes, a ragged or cut line, a value of another form, time going backwards) is read by the
  line-by-line parser, which gives the same values and names the line of an error.
- Idempotent: a run folder whose manifest says completed is skipped, never overwritten. A folder without a manifest
  that holds nothing but what an import writes before it (gpu.csv, cpu.csv) was left by an interrupted import: it is
  removed and imported again. Any other existing run folder is an error. One import at a time per DEST (a lock).
- Symbolic links are never followed, in SRC or DEST: a linked source file or folder, or a linked folder where a run
  folder goes, fails that run (named), and nothing is read or written through it.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import partial
from itertools import compress
from pathlib import Path
from typing import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ect.aggregate.model_metrics import attach_model_metrics, read_model_metrics
from ect.errors import LegacyImportError
from ect.processes import ordered_map, worker_count
from ect.raw.atomic import FolderInUse, LinkRefused, exclusive, is_link, read_bytes
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms, now_utc
from ect.raw.layout import CPU_FILE, GPU_FILE, MANIFEST_FILE, RunKey
from ect.raw.manifest import COMPLETED, Host, Manifest, Sensors, Window, read_manifest, write_manifest

log = logging.getLogger(__name__)

# The contract's GPU columns and the nvidia-smi query fields (or the original's renamed ones) that give them; where a
# file has several, the first listed is taken.
GPU_FIELDS = {
    "timestamp": ("timestamp",),
    "gpu_index": ("index",),
    "name": ("name", "gpu_name"),
    "power_W": ("power.draw", "gpu_power_draw", "power.draw.average", "power.draw.instant"),
    "utilization_gpu_pct": ("utilization.gpu", "gpu_usage"),
    "utilization_memory_pct": ("utilization.memory", "gpu_memory_usage"),
    "memory_used_MiB": ("memory.used", "gpu_memory_used"),
    "memory_total_MiB": ("memory.total", "gpu_total_memory"),
    "temperature_C": ("temperature.gpu", "gpu_temperature"),
    "power_limit_W": ("enforced.power.limit", "power.limit", "power.max_limit", "gpu_max_power"),
}
# The fields of a file written with --format=csv,noheader: the original's query.
ORIGINAL_QUERY = ("timestamp", "name", "utilization.gpu", "utilization.memory", "memory.total", "memory.used",
                  "power.draw", "power.max_limit", "temperature.gpu")
CPU_HEADER = ("timestamp", "cpu usage (%)", "memory usage (MB)", "temperature (Celsius)")
CPU_HEADERS = (CPU_HEADER, CPU_HEADER[:3])  # the original's Windows sampler wrote no temperature column
MISSING = {"", "[N/A]", "[Not Supported]", "[Unknown Error]", "[GPU is lost]", "N/A", "None"}
MISSING_VALUES = pa.array(sorted(MISSING))
NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:[A-Za-z%/]+)?")
# What the pyarrow reader accepts as is; anything else goes to the line-by-line parser, which decides and names the line.
PLAIN_TIMESTAMP = r"^\d{4}(?:-\d\d-\d\d|/\d\d/\d\d)[ T](?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?$"
UNIT_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz%/"  # a unit after a number, as NUMBER reads it
UNIT_SPACE = "\t\n\f\r "  # what may stand between a number and its unit
Values = list | pa.Array | pa.ChunkedArray  # a column: lists from the line parser, Arrow arrays from pyarrow
LEGACY_GPU_NAME = re.compile(r"gpu-power-(\d{8}T\d{6})\.csv")
EPOCH = datetime(1970, 1, 1)
TIMEZONE = "unknown: nvidia-smi local time written as UTC"
ASSUMPTIONS = [
    "timestamps are the measuring machine's local time (zone unknown), written as if UTC",
    "process_rss_MiB: the source's 'memory usage (MB)' is psutil rss / 2**20, i.e. MiB",
    "process_cpu_pct: the source's process cpu percent divided by the CPU count (0..100 for the whole machine)",
]


def _ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO timestamp ('T' or space, any fraction; nvidia-smi's 2023/03/08 too),
    zone-less read as UTC."""
    text = text.strip()
    moment = datetime.fromisoformat(text.replace("/", "-", 2) if text[4:5] == "/" else text)
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return (moment - EPOCH) // timedelta(milliseconds=1)  # truncates sub-millisecond digits


def _number(text: str) -> float | None:
    """A number with or without its unit ("119.17 W", "45 %", "119.17"); None where nvidia-smi wrote none."""
    text = text.strip()
    if text in MISSING:
        return None
    match = NUMBER.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a number")
    return float(match.group(1))


def _temperature(text: str) -> int | float | None:
    text = text.strip()
    return int(text) if text.isdigit() else _number(text)


def _field_name(header_field: str) -> str:
    """nvidia-smi's header field without its unit: "power.draw [W]" -> "power.draw"."""
    return re.sub(r"\s*\[[^\]]*\]$", "", header_field.strip())


def gpu_format(names: list[str]) -> tuple[dict[str, int], dict[str, str], list[str]]:
    """Where each contract column is in a GPU file's fields: ({column: position}, {column: source field}, the fields
    that have no column). timestamp and a power field are required."""
    positions, sources = {}, {}
    for column, candidates in GPU_FIELDS.items():
        for field in candidates:
            if field in names:
                positions[column], sources[column] = names.index(field), field
                break
    missing = [column for column in ("timestamp", "power_W") if column not in positions]
    if missing:
        expected = " or ".join(GPU_FIELDS[missing[0]])
        raise ValueError(f"no {expected} field (fields: {', '.join(names)})")
    used = set(sources.values())
    return positions, sources, [name for name in names if name not in used]


def _gpu_parser(positions: dict[str, int]):
    index, name = positions.get("gpu_index"), positions.get("name")
    numbers = [(c, p) for c, p in positions.items() if c not in ("timestamp", "gpu_index", "name", "temperature_C")]

    def parse(f: list[str]) -> dict:
        t_ms = _ms(f[positions["timestamp"]])
        row = {"t_ms": t_ms, "timestamp": iso_utc_ms(t_ms), "energy_counter_mJ": None,
               "gpu_index": 0 if index is None else int(f[index].strip()),
               "name": "" if name is None else f[name].strip(),
               **{column: _number(f[position]) for column, position in numbers}}
        if "temperature_C" in positions:
            row["temperature_C"] = _temperature(f[positions["temperature_C"]])
        return row

    return parse


def _cpu_row(f: list[str]) -> dict:
    if len(f) > 3:
        _number(f[3])  # the CPU temperature is not part of ect's contract: parsed (a cut line must fail), dropped
    t_ms = _ms(f[0])
    return {"t_ms": t_ms, "timestamp": iso_utc_ms(t_ms), "process_cpu_pct": _number(f[1]),
            "process_rss_MiB": _number(f[2]), "system_cpu_pct": None, "rapl_package_energy_uJ": None,
            "rapl_dram_energy_uJ": None, "cpu_power_estimated_W": None, "cpu_power_source": "none"}


def _cut_short(fields: list[str], width: int, parse) -> bool:
    """Whether a line that does not parse looks cut while being written: too few fields, or only its final field bad."""
    if len(fields) != width:
        return len(fields) < width
    try:
        parse(fields[:-1] + [""])  # every column's final field may be missing
    except ValueError:
        return False
    return True


def _lines(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty line."""
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    return [(reader.line_num, fields) for fields in reader if fields]


def _first_line(text: str) -> list[str]:
    reader = csv.reader(io.StringIO(text, newline=""), skipinitialspace=True)
    return next((fields for fields in reader if fields), [])


def _parse(path: Path, lines: list[tuple[int, list[str]]], width: int, parse: Callable[[list[str]], dict],
           notes: list[str]) -> tuple[list[dict], bool]:
    """The rows of the lines of samples, and whether the last line was cut while being written (then dropped)."""
    rows: list[dict] = []
    previous: dict[int, int] = {}  # the last time of each GPU (one series for a CPU file)
    for number, fields in lines:
        try:
            if len(fields) != width:
                raise ValueError(f"{len(fields)} fields where the header has {width}")
            row = parse(fields)
        except ValueError as error:
            if number == lines[-1][0] and _cut_short(fields, width, parse):
                notes.append(f"dropped a truncated last line of {path.name} (line {number}: {error})")
                return rows, True
            raise LegacyImportError(f"{path}, line {number}: malformed line ({error})") from None
        series = row.get("gpu_index", 0)
        if series in previous and row["t_ms"] <= previous[series]:
            raise LegacyImportError(f"{path}, line {number}: timestamp {fields[0].strip()} is not after the "
                                    f"previous sample's (local time, e.g. a clock change?)")
        previous[series] = row["t_ms"]
        rows.append(row)
    return rows, False


def _as_columns(rows: list[dict], columns: tuple[str, ...]) -> dict[str, list]:
    return {column: [row.get(column) for row in rows] for column in columns}


# The pyarrow path: a file of plain lines (no quotes, every line complete, every value of the forms below, times
# increasing) read as whole columns, to the same values the line parser gives. Anything else returns None, and the
# line parser reads the file: it decides, and names the line of any error.

def _plain_table(text: str, names: list[str], header: bool) -> pa.Table | None:
    """Every line of samples as strings, or None."""
    if '"' in text or "\x00" in text or text[:1] in ("", "\r", "\n") or len(set(names)) != len(names):
        return None
    try:
        return pa_csv.read_csv(
            io.BytesIO(text.encode()),
            read_options=pa_csv.ReadOptions(column_names=names, skip_rows=int(header), use_threads=False),
            convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                  strings_can_be_null=False))
    except pa.ArrowInvalid:  # a line with another number of fields, bad UTF-8
        return None


def _plain_ms(values: pa.ChunkedArray) -> np.ndarray | None:
    """Milliseconds since the epoch, sub-millisecond digits truncated as _ms does."""
    values = pc.ascii_trim_whitespace(values)
    if not pc.all(pc.match_substring_regex(values, PLAIN_TIMESTAMP)).as_py():
        return None
    try:
        ns = pc.cast(pc.replace_substring(values, "/", "-"), pa.timestamp("ns"))
    except pa.ArrowInvalid:  # no such day
        return None
    return ns.cast(pa.int64()).to_numpy() // 1_000_000


def _plain_numbers(values: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """_number of each value: floats, null where missing. Each value without its unit is cast by Arrow, which also
    takes what _number does not ("nan", "inf"): a value that is not finite goes to the line parser too."""
    values = pc.ascii_trim_whitespace(values)  # so UNIT_SPACE can only be trimmed where it precedes a unit
    numbers = pc.ascii_rtrim(pc.ascii_rtrim(values, characters=UNIT_LETTERS), characters=UNIT_SPACE)
    missing = pc.is_in(values, value_set=MISSING_VALUES)
    if pc.any(missing).as_py():
        numbers = pc.if_else(missing, pa.scalar(None, pa.string()), numbers)
    try:
        numbers = pc.cast(numbers, pa.float64())
    except pa.ArrowInvalid:
        return None
    return numbers if pc.all(pc.is_finite(numbers)).as_py() is not False else None


def _plain_integers(values: pa.ChunkedArray) -> pa.ChunkedArray | None:
    try:
        return pc.cast(pc.ascii_trim_whitespace(values), pa.int64())
    except pa.ArrowInvalid:
        return None


def _plain_temperatures(values: pa.ChunkedArray) -> pa.ChunkedArray | list | None:
    """_temperature of each value: ints where only digits, else as _number. One Arrow column where all are ints or
    none is; where both occur, the list the line parser gives."""
    values = pc.ascii_trim_whitespace(values)
    numbers = _plain_numbers(values)
    if numbers is None:
        return None
    digits = pc.ascii_is_decimal(values)  # only 0-9, at least one
    if not pc.any(digits).as_py():
        return numbers
    try:
        integers = pc.cast(pc.if_else(digits, values, None), pa.int64())
    except pa.ArrowInvalid:  # beyond 64 bits: the line parser's Python ints
        return None
    if integers.null_count == numbers.null_count:  # every value that is there has only digits
        return integers
    return [number if integer is None else integer
            for integer, number in zip(integers.to_pylist(), numbers.to_pylist())]


def _stripped(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """str.strip of each value (Python's whitespace, as the line parser strips), once per distinct value."""
    distinct = pc.unique(values)
    return pa.array([value.strip() for value in distinct.to_pylist()], pa.string()).take(
        pc.index_in(values, value_set=distinct))


def _increasing(t_ms: np.ndarray, series: pa.ChunkedArray | None) -> bool:
    if series is None:
        return bool(np.all(np.diff(t_ms) > 0))
    series = np.asarray(series)
    return all(np.all(np.diff(t_ms[series == s]) > 0) for s in np.unique(series))


def _plain_gpu(text: str, names: list[str], header: bool, positions: dict[str, int],
               arrays: bool = False) -> dict[str, Values] | None:
    """The columns as the line parser gives them; with arrays, as Arrow arrays (the temperatures a list where they mix
    ints and floats), which the import writes without making Python objects of them."""
    table = _plain_table(text, names, header)
    if table is None:
        return None
    field = {column: table.column(position) for column, position in positions.items()}
    t_ms = _plain_ms(field["timestamp"])
    columns = {column: (_plain_temperatures if column == "temperature_C" else _plain_numbers)(values)
               for column, values in field.items() if column not in ("timestamp", "gpu_index", "name")}
    index = _plain_integers(field["gpu_index"]) if "gpu_index" in field else None
    if t_ms is None or any(values is None for values in columns.values()) \
            or ("gpu_index" in field and index is None) or not _increasing(t_ms, index):
        return None
    rows = table.num_rows
    columns = {"t_ms": pa.array(t_ms), "timestamp": _iso(t_ms), "energy_counter_mJ": pa.nulls(rows),
               "gpu_index": pa.repeat(0, rows) if index is None else index,
               "name": _stripped(field["name"]) if "name" in field else pa.repeat("", rows), **columns}
    return columns if arrays else _lists(columns)


def _plain_cpu(text: str, header: tuple[str, ...], arrays: bool = False) -> dict[str, Values] | None:
    """The columns as the line parser gives them; with arrays, as Arrow arrays."""
    table = _plain_table(text, list(header), True)
    if table is None:
        return None
    t_ms = _plain_ms(table.column(0))
    cpu, rss = _plain_numbers(table.column(1)), _plain_numbers(table.column(2))
    temperature_ok = len(header) < 4 or _plain_numbers(table.column(3)) is not None
    if t_ms is None or cpu is None or rss is None or not temperature_ok or not _increasing(t_ms, None):
        return None
    rows = table.num_rows
    columns = {"t_ms": pa.array(t_ms), "timestamp": _iso(t_ms), "process_cpu_pct": cpu, "process_rss_MiB": rss,
               **dict.fromkeys(CPU_COLUMNS[3:-1], pa.nulls(rows)), "cpu_power_source": pa.repeat("none", rows)}
    return columns if arrays else _lists(columns)


def _iso(t_ms: np.ndarray) -> pa.Array:
    """iso_utc_ms of each time: Arrow's text of a timestamp[ms] ("2023-03-08 21:29:56.373"), with T and Z."""
    text = pc.cast(pa.array(t_ms, pa.timestamp("ms")), pa.string())
    return pc.binary_join_element_wise(pc.binary_replace_slice(text, 10, 11, "T"), "Z", "")


def _lists(columns: dict[str, Values]) -> dict[str, list]:
    return {column: _list(values) for column, values in columns.items()}


def _list(values: Values) -> list:
    return values if isinstance(values, list) else values.to_pylist()


def _is_timestamp(text: str) -> bool:
    try:
        _ms(text)
    except ValueError:
        return False
    return True


def read_gpu_file(path: Path, notes: list[str],
                  arrays: bool = False) -> tuple[dict[str, Values], bool, dict[str, str]]:
    """An nvidia-smi log: ({column: values}, whether its last line was cut, {contract column: the field it came
    from}). The values are lists; with arrays, a plain file's are Arrow arrays (see _plain_gpu)."""
    text = read_bytes(path).decode("utf-8-sig")
    first = _first_line(text)
    if not first:
        raise LegacyImportError(f"{path}: empty file (expected nvidia-smi's CSV)")
    header = not _is_timestamp(first[0])
    if not header:  # --format=csv,noheader
        if len(first) != len(ORIGINAL_QUERY):
            raise LegacyImportError(f"{path}: no header line, and {len(first)} fields where a file without a "
                                    f"header must have the original's {len(ORIGINAL_QUERY)} ({','.join(ORIGINAL_QUERY)})")
        names = list(ORIGINAL_QUERY)
        notes.append(f"no header: read as the original's query ({','.join(ORIGINAL_QUERY)})")
    else:
        names = [_field_name(field) for field in first]
    try:
        positions, sources, ignored = gpu_format(names)
    except ValueError as error:
        raise LegacyImportError(f"{path}: unexpected header {','.join(first)!r}: {error}; expected "
                                "nvidia-smi's --query-gpu fields (see README, import-legacy)") from None
    if ignored:
        notes.append(f"fields without a column in gpu.csv, not imported: {', '.join(ignored)}")
    columns = _plain_gpu(text, names, header, positions, arrays)
    if columns is not None:
        return columns, False, sources
    lines = _lines(text)
    rows, cut = _parse(path, lines[1:] if header else lines, len(names), _gpu_parser(positions), notes)
    return _as_columns(rows, ("t_ms",) + GPU_COLUMNS), cut, sources


def read_cpu_file(path: Path, notes: list[str], arrays: bool = False) -> tuple[dict[str, Values], bool]:
    """The original's psutil sampler log: ({column: values}, whether its last line was cut). The values are lists;
    with arrays, a plain file's are Arrow arrays."""
    text = read_bytes(path).decode("utf-8-sig")
    header = tuple(field.strip() for field in _first_line(text))
    if header not in CPU_HEADERS:
        expected = " or ".join(",".join(h) for h in CPU_HEADERS)
        raise LegacyImportError(f"{path}: unexpected header {','.join(header)!r}; expected {expected!r}")
    columns = _plain_cpu(text, header, arrays)
    if columns is not None:
        return columns, False
    rows, cut = _parse(path, _lines(text)[1:], len(header), _cpu_row, notes)
    return _as_columns(rows, ("t_ms",) + CPU_COLUMNS), cut


def _selected(samples: dict[str, Values], rows: slice | pa.Array | pa.ChunkedArray) -> dict[str, Values]:
    """The rows, a slice or an Arrow mask of booleans, of each column."""
    if isinstance(rows, slice):
        return {column: values[rows] for column, values in samples.items()}
    keep = rows.to_pylist() if any(isinstance(values, list) for values in samples.values()) else None
    return {column: list(compress(values, keep)) if isinstance(values, list) else values.filter(rows)
            for column, values in samples.items()}


def _present(values: Values) -> int:
    """How many values are not missing."""
    return sum(value is not None for value in values) if isinstance(values, list) else len(values) - values.null_count


def _span(t_ms: Values) -> tuple[int, int]:
    if isinstance(t_ms, list):
        return min(t_ms), max(t_ms)
    bounds = pc.min_max(t_ms)
    return bounds["min"].as_py(), bounds["max"].as_py()


def _gpu_names(index: Values, names: Values) -> dict[int, str]:
    """The name of each GPU, from its last sample."""
    if not isinstance(names, list) and len(distinct := pc.unique(names)) == 1:
        return dict.fromkeys(pc.unique(index).to_pylist(), distinct[0].as_py())
    return dict(zip(_list(index), _list(names)))


def _write_csv(path: Path, columns: tuple[str, ...], samples: dict[str, Values]) -> None:
    """The samples in the contract's columns, with csv's line ends (\r\n) as ect's sampler writes them, each float as
    text that reads back the same ("350" from Arrow, "350.0" from the csv module), empty where missing.
    Arrow writes them, or, for a value it would have to quote (a GPU name with a comma), the csv module."""
    rows = len(samples["t_ms"])
    try:
        table = pa.table({column: _arrow(samples[column]) if column in samples else pa.nulls(rows)
                          for column in columns})
        text = io.BytesIO()
        pa_csv.write_csv(table, text, pa_csv.WriteOptions(include_header=False, quoting_style="none",
                                                          batch_size=max(rows, 1)))  # one batch: faster
        path.write_bytes((",".join(columns) + "\r\n").encode() + text.getvalue().replace(b"\n", b"\r\n"))
        return
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # OverflowError: an int beyond 64 bits
        pass
    blank = [None] * rows
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)  # floats as repr: full precision
        writer.writerow(columns)
        writer.writerows(zip(*(_list(samples[column]) if column in samples else blank for column in columns)))


def _arrow(values: Values) -> pa.Array | pa.ChunkedArray:
    return pa.array(values) if isinstance(values, list) else values


def _assumptions(sources: dict[str, str]) -> list[str]:
    """What this run's GPU file left open, and how it was read."""
    notes = list(ASSUMPTIONS)
    if "gpu_index" not in sources:
        notes.append("gpu_index 0: the file has no index field (nvidia-smi -l without -i on a single-GPU machine)")
    notes.append(f"power_W is nvidia-smi's {_nvidia_smi_name(sources['power_W'])}")
    limit = sources.get("power_limit_W")
    if limit in ("power.max_limit", "gpu_max_power"):
        notes.append(f"power_limit_W holds nvidia-smi's power.max_limit{_as_named(limit)} (the maximum settable "
                     "limit, not the enforced one)")
    elif limit:
        notes.append(f"power_limit_W is nvidia-smi's {limit}")
    return notes


def _nvidia_smi_name(field: str) -> str:
    """A field by nvidia-smi's name, and by the file's where the original renamed it."""
    for candidates in GPU_FIELDS.values():
        if field in candidates and field != candidates[0] and not field.startswith(("power.", "enforced.")):
            return f"{candidates[0]}{_as_named(field)}"
    return field


def _as_named(field: str) -> str:
    return f" ({field} in the file)" if "." not in field and field not in ("timestamp", "index", "name") else ""


def _interrupted(folder: Path) -> bool:
    """Whether `folder` is what an interrupted import leaves: no manifest (written last), and nothing but the files an
    import writes before it (regular files, not links)."""
    entries = list(os.scandir(folder))
    return all(entry.name in (GPU_FILE, CPU_FILE) and entry.is_file(follow_symlinks=False) for entry in entries)


def _import_run(src: Path, gpu_file: Path, stamp: str, repetition: int, dest: Path,
                trim_samples: int) -> tuple[str, Path | None]:
    key = RunKey(gpu_file.parent.parent.name, gpu_file.parent.name, f"legacy-{stamp}")
    folder = key.folder(dest)
    label = f"{key.environment}/{key.architecture} run {repetition} ({key.run_id})"
    for part in (folder.parent.parent, folder.parent, folder):
        if is_link(part):
            raise LegacyImportError(f"{part} is a symbolic link: not followed (nothing read or written through it); "
                                    f"{gpu_file} not imported")
    if folder.exists() and not os.path.lexists(folder / MANIFEST_FILE) and _interrupted(folder):
        log.info(f"{folder} has no {MANIFEST_FILE}: an interrupted import left it; removed and imported again")
        shutil.rmtree(folder)
    if folder.exists():
        existing = read_manifest(folder)
        if existing is not None and existing.completed:
            log.info(f"already imported {label}: {folder}; skipped")
            return "done", None
        raise LegacyImportError(f"{folder} exists without a completed manifest; not overwriting it "
                                f"(remove it to import {gpu_file} again)")
    notes: list[str] = []
    gpu, cut, sources = read_gpu_file(gpu_file, notes, arrays=True)
    # The original's skipfooter counted lines: a last line cut while written is one of the trailing ones.
    trailing = trim_samples - 1 if cut and trim_samples > 0 else trim_samples
    lines_in_file = len(gpu["t_ms"]) + cut
    kept = _selected(gpu, slice(trim_samples, len(gpu["t_ms"]) - trailing))
    powered = _present(kept["power_W"])
    if powered < 2:
        log.warning(f"{gpu_file}: {lines_in_file} lines of samples, fewer than 2 left after dropping "
                    f"{trim_samples} at each end; run skipped")
        return "short", None
    notes.append(f"dropped the first and last {trim_samples} lines of samples (the original's skiprows/skipfooter"
                 + (", the cut last line counted as one of them" if cut and trim_samples else "")
                 + f"); kept {len(kept['t_ms'])} of {lines_in_file}")
    unpowered = len(kept["power_W"]) - powered
    if unpowered:  # a sample without power measures nothing: the energy bridges it, as for any missing sample
        kept = _selected(kept, pc.is_valid(_arrow(kept["power_W"])))
        notes.append(f"dropped {unpowered} sample(s) without a power reading ([N/A] or empty power)")
    cpu_file = gpu_file.with_name(f"cpu-mem-usage-{stamp}.csv")
    cpu = read_cpu_file(cpu_file, notes, arrays=True)[0] if cpu_file.exists() else None
    if cpu is None:
        notes.append(f"no {cpu_file.name}: GPU side only, no cpu.csv")
        log.warning(f"{gpu_file} has no cpu partner {cpu_file.name}: importing the GPU side only")
    else:
        notes.append("CPU temperature column dropped (not part of ect's cpu.csv); CPU samples not trimmed")

    folder.mkdir(parents=True)
    _write_csv(folder / GPU_FILE, GPU_COLUMNS, kept)
    if cpu is not None:
        _write_csv(folder / CPU_FILE, CPU_COLUMNS, cpu)
    first, last = _span(kept["t_ms"])
    window = Window(first / 1000, last / 1000)
    with os.scandir(gpu_file.parent) as entries:  # names first: a folder of thousands of runs, stat only the others
        others = sorted(entry.name for entry in entries if not entry.name.startswith(("gpu-power-", "cpu-mem-usage-"))
                        and (gpu_file.parent / entry.name).is_file())
    gpus = _gpu_names(kept["gpu_index"], kept["name"])
    manifest = Manifest(
        key.run_id, key.environment, key.architecture, repetition=repetition, attempt=1, status=COMPLETED,
        source="legacy-import", created=now_utc(), host=Host(gpus=[gpus[i] for i in sorted(gpus)]), window=window,
        training=window.to_dict(),
        sensors=Sensors(sampling_interval_s=1.0, used=["nvidia-smi"] + (["psutil"] if cpu is not None else []),
                        gpu_energy_source="integrated", cpu_energy_source="unavailable"),
        legacy={"gpu_file": gpu_file.relative_to(src).as_posix(),
                "cpu_file": cpu_file.relative_to(src).as_posix() if cpu is not None else None,
                "stamp": stamp, "trim_samples": trim_samples, "timezone": TIMEZONE,
                "gpu_samples_in_file": lines_in_file, "gpu_samples_kept": len(kept["t_ms"]),
                "gpu_fields": sources, "cpu_samples": None if cpu is None else len(cpu["t_ms"]),
                "other_files_in_folder": others, "notes": notes, "assumptions": _assumptions(sources)},
    )
    write_manifest(folder, manifest)  # last: only a finished folder looks complete
    log.info(f"imported {label}: {len(kept['t_ms'])} GPU samples")
    return "imported", folder


@dataclass(frozen=True)
class LegacyImport:
    imported: list[Path]  # run folders this call imported
    failed: list[str]  # one line per file that could not be imported: the file, the line and why


def import_legacy(src: Path, dest: Path, trim_samples: int = 3, model_metrics: Path | None = None) -> LegacyImport:
    """Imports every run under SRC into DEST (ect's raw layout), each bad file reported and skipped; with
    model_metrics, attaches the original's per-run model quality to the imported runs."""
    src, dest = Path(src), Path(dest)
    if trim_samples < 0:
        raise LegacyImportError(f"--trim-samples must be >= 0, got {trim_samples}")
    if not src.is_dir():
        raise LegacyImportError(f"{src}: no such folder (expected <environment>/<architecture>/gpu-power-*.csv)")
    folders, linked = _source_folders(src)
    gpu_files = sorted(path for folder in folders for path in folder.glob("gpu-power-*.csv"))
    if not gpu_files and not linked:
        raise LegacyImportError(f"{src}: no gpu-power-*.csv files under <environment>/<architecture>/")
    metrics = read_model_metrics(model_metrics) if model_metrics else None  # a bad file fails before any import
    try:  # one import at a time: another one's folder without a manifest is not an interrupted import
        with exclusive(dest / ".import-legacy.lock", f"ect import-legacy {src}"):
            return _import_all(src, dest, gpu_files, linked, trim_samples, metrics, model_metrics)
    except FolderInUse as error:
        raise LegacyImportError(f"another import into {dest} is running ({error}); try again when it has ended") \
            from None
    except LinkRefused as error:
        raise LegacyImportError(str(error)) from None


def _source_folders(src: Path) -> tuple[list[Path], list[str]]:
    """SRC's <environment>/<architecture> folders, and a failure line for each symbolic link where one of them
    belongs (not followed)."""
    folders, linked = [src], []
    for _ in range(2):
        below = []
        for folder in folders:
            for entry in sorted(os.scandir(folder), key=lambda e: e.name):
                if entry.is_symlink():
                    linked.append(f"{entry.path} is a symbolic link: not followed (nothing read through it)")
                elif entry.is_dir(follow_symlinks=False) and not entry.name.startswith("."):
                    below.append(Path(entry.path))
        folders = below
    return folders, linked


# GPU files from which runs are imported in worker processes rather than two threads (bench/legacy_speed.py, 2 CPUs:
# 3,000 one-hour runs import in 18.8 s instead of 22.5 s; 300 runs, about 100 MB, in 2.9 s instead of 2.4 s).
PROCESS_MIN_BYTES = 300_000_000


def _import_job(job: tuple[Path, str, int], src: Path, dest: Path, trim_samples: int) -> tuple[str, Path | str | None]:
    """One run imported: ("imported", its folder), ("done" | "short", None) or ("failed", why)."""
    path, stamp, repetition = job
    try:
        return _import_run(src, path, stamp, repetition, dest, trim_samples)
    except (LegacyImportError, OSError, UnicodeDecodeError) as error:
        reason = str(error) if isinstance(error, LegacyImportError) else f"{path}: cannot be read ({error})"
        log.error(f"not imported: {reason}")
        return "failed", reason


def _import_all(src: Path, dest: Path, gpu_files: list[Path], linked: list[str], trim_samples: int, metrics,
                model_metrics: Path | None) -> LegacyImport:
    for line in linked:
        log.error(f"not imported: {line}")
    jobs = []  # (gpu file, stamp, repetition) of every run, in order
    for folder in sorted({path.parent for path in gpu_files}):
        runs = []
        for path in sorted(folder.glob("gpu-power-*.csv")):
            match = LEGACY_GPU_NAME.fullmatch(path.name)
            if match:
                runs.append((match.group(1), path))
            else:
                log.warning(f"{path}: no YYYYmmddTHHMMSS stamp in the name; ignored")
        stamps = {stamp for stamp, _ in runs}
        for cpu_file in sorted(folder.glob("cpu-mem-usage-*.csv")):
            if cpu_file.stem.removeprefix("cpu-mem-usage-") not in stamps:
                log.warning(f"{cpu_file} has no gpu-power partner; ignored")
        jobs += [(path, stamp, repetition) for repetition, (stamp, path) in enumerate(sorted(runs))]

    # Only the runs to import count: a rerun over a history imported before skips them in this process.
    work = sum(os.path.getsize(path) for path, stamp, _ in jobs if not os.path.lexists(
        os.path.join(dest, path.parent.parent.name, path.parent.name, f"legacy-{stamp}")))
    job = partial(_import_job, src=src, dest=dest, trim_samples=trim_samples)
    if (workers := worker_count(work, PROCESS_MIN_BYTES)) > 1:
        log.info(f"importing {len(jobs)} runs in {workers} processes")
        outcomes = list(ordered_map(job, jobs, workers))
    else:  # Arrow parses with the GIL released: a second thread keeps the other core busy
        with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
            outcomes = list(pool.map(job, jobs))
    counts = {outcome: sum(o == outcome for o, _ in outcomes) for outcome in ("imported", "done", "short")}
    imported = [folder for outcome, folder in outcomes if outcome == "imported"]
    failed = linked + [reason for outcome, reason in outcomes if outcome == "failed"]
    log.info(f"legacy import {src} -> {dest}: {counts['imported']} runs imported, {counts['done']} already "
             f"imported, {counts['short']} skipped as too short, {len(failed)} failed")
    if metrics is not None:
        attach_model_metrics(metrics, dest, model_metrics)
    return LegacyImport(imported, failed)
