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
- Idempotent: a run folder whose manifest says completed is skipped, never overwritten; any other existing
  run folder is an error.
"""

from __future__ import annotations

import csv
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from ect.aggregate.model_metrics import attach_model_metrics, read_model_metrics
from ect.errors import LegacyImportError
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms, now_utc
from ect.raw.layout import CPU_FILE, GPU_FILE, RunKey
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
NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?:[A-Za-z%/]+)?")
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


def _lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, fields) of every non-empty line."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        return [(reader.line_num, fields) for fields in reader if fields]


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


def _is_timestamp(text: str) -> bool:
    try:
        _ms(text)
    except ValueError:
        return False
    return True


def read_gpu_file(path: Path, notes: list[str]) -> tuple[list[dict], bool, dict[str, str]]:
    """An nvidia-smi log: (rows, whether its last line was cut, {contract column: the field it came from})."""
    lines = _lines(path)
    if not lines:
        raise LegacyImportError(f"{path}: empty file (expected nvidia-smi's CSV)")
    if _is_timestamp(lines[0][1][0]):  # --format=csv,noheader
        if len(lines[0][1]) != len(ORIGINAL_QUERY):
            raise LegacyImportError(f"{path}: no header line, and {len(lines[0][1])} fields where a file without a "
                                    f"header must have the original's {len(ORIGINAL_QUERY)} ({','.join(ORIGINAL_QUERY)})")
        names, data = list(ORIGINAL_QUERY), lines
        notes.append(f"no header: read as the original's query ({','.join(ORIGINAL_QUERY)})")
    else:
        names, data = [_field_name(field) for field in lines[0][1]], lines[1:]
    try:
        positions, sources, ignored = gpu_format(names)
    except ValueError as error:
        raise LegacyImportError(f"{path}: unexpected header {','.join(lines[0][1])!r}: {error}; expected "
                                "nvidia-smi's --query-gpu fields (see README, import-legacy)") from None
    if ignored:
        notes.append(f"fields without a column in gpu.csv, not imported: {', '.join(ignored)}")
    rows, cut = _parse(path, data, len(names), _gpu_parser(positions), notes)
    return rows, cut, sources


def read_cpu_file(path: Path, notes: list[str]) -> tuple[list[dict], bool]:
    """The original's psutil sampler log: (rows, whether its last line was cut)."""
    lines = _lines(path)
    header = tuple(field.strip() for field in lines[0][1]) if lines else ()
    if header not in CPU_HEADERS:
        expected = " or ".join(",".join(h) for h in CPU_HEADERS)
        raise LegacyImportError(f"{path}: unexpected header {','.join(header)!r}; expected {expected!r}")
    return _parse(path, lines[1:], len(header), _cpu_row, notes)


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")  # floats as repr: full precision
        writer.writeheader()
        writer.writerows(rows)


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


def _import_run(src: Path, gpu_file: Path, stamp: str, repetition: int, dest: Path,
                trim_samples: int) -> tuple[str, Path | None]:
    key = RunKey(gpu_file.parent.parent.name, gpu_file.parent.name, f"legacy-{stamp}")
    folder = key.folder(dest)
    label = f"{key.environment}/{key.architecture} run {repetition} ({key.run_id})"
    if folder.exists():
        existing = read_manifest(folder)
        if existing is not None and existing.completed:
            log.info(f"already imported {label}: {folder}; skipped")
            return "done", None
        raise LegacyImportError(f"{folder} exists without a completed manifest; not overwriting it "
                                f"(remove it to import {gpu_file} again)")
    notes: list[str] = []
    gpu_rows, cut, sources = read_gpu_file(gpu_file, notes)
    # The original's skipfooter counted lines: a last line cut while written is one of the trailing ones.
    trailing = trim_samples - 1 if cut and trim_samples > 0 else trim_samples
    lines_in_file = len(gpu_rows) + cut
    if sum(row["power_W"] is not None for row in gpu_rows[trim_samples:len(gpu_rows) - trailing]) < 2:
        log.warning(f"{gpu_file}: {lines_in_file} lines of samples, fewer than 2 left after dropping "
                    f"{trim_samples} at each end; run skipped")
        return "short", None
    kept = gpu_rows[trim_samples:len(gpu_rows) - trailing]
    notes.append(f"dropped the first and last {trim_samples} lines of samples (the original's skiprows/skipfooter"
                 + (", the cut last line counted as one of them" if cut and trim_samples else "")
                 + f"); kept {len(kept)} of {lines_in_file}")
    unpowered = sum(row["power_W"] is None for row in kept)
    if unpowered:  # a sample without power measures nothing: the energy bridges it, as for any missing sample
        kept = [row for row in kept if row["power_W"] is not None]
        notes.append(f"dropped {unpowered} sample(s) without a power reading ([N/A] or empty power)")
    cpu_file = gpu_file.with_name(f"cpu-mem-usage-{stamp}.csv")
    cpu_rows = read_cpu_file(cpu_file, notes)[0] if cpu_file.exists() else None
    if cpu_rows is None:
        notes.append(f"no {cpu_file.name}: GPU side only, no cpu.csv")
        log.warning(f"{gpu_file} has no cpu partner {cpu_file.name}: importing the GPU side only")
    else:
        notes.append("CPU temperature column dropped (not part of ect's cpu.csv); CPU samples not trimmed")

    folder.mkdir(parents=True)
    _write_csv(folder / GPU_FILE, GPU_COLUMNS, kept)
    if cpu_rows is not None:
        _write_csv(folder / CPU_FILE, CPU_COLUMNS, cpu_rows)
    window = Window(min(r["t_ms"] for r in kept) / 1000, max(r["t_ms"] for r in kept) / 1000)
    others = sorted(p.name for p in gpu_file.parent.iterdir()
                    if p.is_file() and not p.name.startswith(("gpu-power-", "cpu-mem-usage-")))
    gpus = {row["gpu_index"]: row["name"] for row in kept}
    manifest = Manifest(
        key.run_id, key.environment, key.architecture, repetition=repetition, attempt=1, status=COMPLETED,
        source="legacy-import", created=now_utc(), host=Host(gpus=[gpus[i] for i in sorted(gpus)]), window=window,
        training=window.to_dict(),
        sensors=Sensors(sampling_interval_s=1.0, used=["nvidia-smi"] + (["psutil"] if cpu_rows is not None else []),
                        gpu_energy_source="integrated", cpu_energy_source="unavailable"),
        legacy={"gpu_file": gpu_file.relative_to(src).as_posix(),
                "cpu_file": cpu_file.relative_to(src).as_posix() if cpu_rows is not None else None,
                "stamp": stamp, "trim_samples": trim_samples, "timezone": TIMEZONE,
                "gpu_samples_in_file": lines_in_file, "gpu_samples_kept": len(kept),
                "gpu_fields": sources, "cpu_samples": None if cpu_rows is None else len(cpu_rows),
                "other_files_in_folder": others, "notes": notes, "assumptions": _assumptions(sources)},
    )
    write_manifest(folder, manifest)  # last: only a finished folder looks complete
    log.info(f"imported {label}: {len(kept)} GPU samples")
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
    gpu_files = sorted(src.glob("*/*/gpu-power-*.csv"))
    if not gpu_files:
        raise LegacyImportError(f"{src}: no gpu-power-*.csv files under <environment>/<architecture>/")
    metrics = read_model_metrics(model_metrics) if model_metrics else None  # a bad file fails before any import
    counts = {"imported": 0, "done": 0, "short": 0}
    imported: list[Path] = []
    failed: list[str] = []
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
        for repetition, (stamp, path) in enumerate(sorted(runs)):
            try:
                outcome, run_folder = _import_run(src, path, stamp, repetition, dest, trim_samples)
            except (LegacyImportError, OSError, UnicodeDecodeError) as error:
                reason = str(error) if isinstance(error, LegacyImportError) else f"{path}: cannot be read ({error})"
                log.error(f"not imported: {reason}")
                failed.append(reason)
                continue
            counts[outcome] += 1
            if run_folder:
                imported.append(run_folder)
    log.info(f"legacy import {src} -> {dest}: {counts['imported']} runs imported, {counts['done']} already "
             f"imported, {counts['short']} skipped as too short, {len(failed)} failed")
    if metrics is not None:
        attach_model_metrics(metrics, dest, model_metrics)
    return LegacyImport(imported, failed)
