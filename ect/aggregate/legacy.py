"""Imports the raw measurements of the original replication package (seaa2023_ect) into ect's raw run folders.

Source: SRC/<environment>/<architecture>/gpu-power-<YYYYmmddTHHMMSS>.csv (nvidia-smi --format=csv -l 1) and
cpu-mem-usage-<same stamp>.csv (the original's psutil process sampler). Each pair becomes one run folder
DEST/<environment>/<architecture>/legacy-<stamp>/ with gpu.csv, cpu.csv and manifest.json, in the columns
and units of ect's own sampler, so that the published data can be re-analysed with ect.

- Runs are numbered 0..n-1 per environment and architecture in the order of the stamps of ALL gpu files;
  a run skipped for having too few samples leaves a gap, so the numbers match the original's run index.
- Timestamps: both samplers wrote local wall-clock time without a zone; it is written as if it were UTC.
  Resolution is milliseconds, the contract's: nvidia-smi has ms; the CPU sampler's microseconds are truncated.
- Power keeps full precision (the original parsed whole watts). "[N/A]", "[Not Supported]", "None" and
  empty fields become empty fields.
- trim_samples drops the first and last GPU samples of each file, as the original did (skiprows/skipfooter=3).
- A truncated last line (a crash or kill while writing) is dropped and noted; a malformed line anywhere
  else is an error naming the file and line.
- Idempotent: a run folder whose manifest says completed is skipped, never overwritten; any other existing
  run folder is an error.
"""

from __future__ import annotations

import csv
import logging
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from ect.errors import LegacyImportError
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms, now_utc
from ect.raw.layout import CPU_FILE, GPU_FILE, RunKey
from ect.raw.manifest import COMPLETED, Host, Manifest, Sensors, Window, read_manifest, write_manifest

log = logging.getLogger(__name__)

GPU_HEADER = ("timestamp", "gpu_name", "gpu_usage", "gpu_memory_usage", "gpu_total_memory", "gpu_memory_used",
              "gpu_power_draw", "gpu_max_power", "gpu_temperature")
CPU_HEADER = ("timestamp", "cpu usage (%)", "memory usage (MB)", "temperature (Celsius)")
CPU_HEADERS = (CPU_HEADER, CPU_HEADER[:3])  # the original's Windows sampler wrote no temperature column
MISSING = {"", "[N/A]", "[Not Supported]", "None"}
LEGACY_GPU_NAME = re.compile(r"gpu-power-(\d{8}T\d{6})\.csv")
EPOCH = datetime(1970, 1, 1)
TIMEZONE = "unknown: nvidia-smi local time written as UTC"
ASSUMPTIONS = [
    "timestamps are the measuring machine's local time (zone unknown), written as if UTC",
    "gpu_index 0: nvidia-smi -l without -i on a single-GPU machine",
    "power_limit_W holds nvidia-smi's power.max_limit (the maximum settable limit, not the enforced one)",
    "process_rss_MiB: the source's 'memory usage (MB)' is psutil rss / 2**20, i.e. MiB",
    "process_cpu_pct: the source's process cpu percent divided by the CPU count (0..100 for the whole machine)",
]


def _ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO timestamp ('T' or space, any fraction), zone-less read as UTC."""
    moment = datetime.fromisoformat(text.strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return (moment - EPOCH) // timedelta(milliseconds=1)  # truncates sub-millisecond digits


def _number(text: str, unit: str = "") -> float | None:
    text = text.strip()
    return None if text in MISSING else float(text.removesuffix(unit).strip())


def _temperature(text: str) -> int | float | None:
    text = text.strip()
    return None if text in MISSING else int(text) if text.isdigit() else float(text)


def _gpu_row(f: list[str]) -> dict:
    t_ms = _ms(f[0])
    return {"t_ms": t_ms, "timestamp": iso_utc_ms(t_ms), "gpu_index": 0, "name": f[1].strip(),
            "power_W": _number(f[6], "W"), "energy_counter_mJ": None,
            "utilization_gpu_pct": _number(f[2], "%"), "utilization_memory_pct": _number(f[3], "%"),
            "memory_used_MiB": _number(f[5], "MiB"), "memory_total_MiB": _number(f[4], "MiB"),
            "temperature_C": _temperature(f[8]), "power_limit_W": _number(f[7], "W")}


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


def _read(path: Path, headers: tuple, parse: Callable[[list[str]], dict], notes: list[str]) -> list[dict]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, skipinitialspace=True)
        lines = [(reader.line_num, fields) for fields in reader if fields]
    header = tuple(field.strip() for field in lines[0][1]) if lines else ()
    if header not in headers:
        expected = " or ".join(",".join(h) for h in headers)
        raise LegacyImportError(f"{path}: unexpected header {','.join(header)!r}; expected {expected!r}")
    rows: list[dict] = []
    for number, fields in lines[1:]:
        try:
            if len(fields) != len(header):
                raise ValueError(f"{len(fields)} fields where the header has {len(header)}")
            row = parse(fields)
        except ValueError as error:
            if number == lines[-1][0] and _cut_short(fields, len(header), parse):
                notes.append(f"dropped a truncated last line of {path.name} (line {number}: {error})")
                break
            raise LegacyImportError(f"{path}, line {number}: malformed line ({error})") from None
        if rows and row["t_ms"] <= rows[-1]["t_ms"]:
            raise LegacyImportError(f"{path}, line {number}: timestamp {fields[0].strip()} is not after the "
                                    f"previous sample's (local time, e.g. a clock change?)")
        rows.append(row)
    return rows


def _write_csv(path: Path, columns: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")  # floats as repr: full precision
        writer.writeheader()
        writer.writerows(rows)


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
    gpu_rows = _read(gpu_file, (GPU_HEADER,), _gpu_row, notes)
    if len(gpu_rows) - 2 * trim_samples < 2:
        log.warning(f"{gpu_file}: {len(gpu_rows)} usable GPU samples, fewer than 2 left after trimming "
                    f"{trim_samples} at each end; run skipped")
        return "short", None
    kept = gpu_rows[trim_samples:len(gpu_rows) - trim_samples]
    notes.append(f"dropped the first and last {trim_samples} GPU samples (the original's skiprows/skipfooter); "
                 f"kept {len(kept)} of {len(gpu_rows)}")
    cpu_file = gpu_file.with_name(f"cpu-mem-usage-{stamp}.csv")
    cpu_rows = _read(cpu_file, CPU_HEADERS, _cpu_row, notes) if cpu_file.exists() else None
    if cpu_rows is None:
        notes.append(f"no {cpu_file.name}: GPU side only, no cpu.csv")
        log.warning(f"{gpu_file} has no cpu partner {cpu_file.name}: importing the GPU side only")
    else:
        notes.append("CPU temperature column dropped (not part of ect's cpu.csv); CPU samples not trimmed")

    folder.mkdir(parents=True)
    _write_csv(folder / GPU_FILE, GPU_COLUMNS, kept)
    if cpu_rows is not None:
        _write_csv(folder / CPU_FILE, CPU_COLUMNS, cpu_rows)
    window = Window(kept[0]["t_ms"] / 1000, kept[-1]["t_ms"] / 1000)
    others = sorted(p.name for p in gpu_file.parent.iterdir()
                    if p.is_file() and not p.name.startswith(("gpu-power-", "cpu-mem-usage-")))
    manifest = Manifest(
        key.run_id, key.environment, key.architecture, repetition=repetition, attempt=1, status=COMPLETED,
        source="legacy-import", created=now_utc(), host=Host(gpus=[kept[0]["name"]]), window=window,
        training=window.to_dict(),
        sensors=Sensors(sampling_interval_s=1.0, used=["nvidia-smi"] + (["psutil"] if cpu_rows is not None else []),
                        gpu_energy_source="integrated", cpu_energy_source="unavailable"),
        legacy={"gpu_file": gpu_file.relative_to(src).as_posix(),
                "cpu_file": cpu_file.relative_to(src).as_posix() if cpu_rows is not None else None,
                "stamp": stamp, "trim_samples": trim_samples, "timezone": TIMEZONE,
                "gpu_samples_in_file": len(gpu_rows), "gpu_samples_kept": len(kept),
                "cpu_samples": None if cpu_rows is None else len(cpu_rows),
                "other_files_in_folder": others, "notes": notes, "assumptions": ASSUMPTIONS},
    )
    write_manifest(folder, manifest)  # last: only a finished folder looks complete
    log.info(f"imported {label}: {len(kept)} GPU samples")
    return "imported", folder


def import_legacy(src: Path, dest: Path, trim_samples: int = 3) -> list[Path]:
    """Imports every run under SRC into DEST (ect's raw layout); returns the run folders imported by this call."""
    src, dest = Path(src), Path(dest)
    if trim_samples < 0:
        raise LegacyImportError(f"--trim-samples must be >= 0, got {trim_samples}")
    if not src.is_dir():
        raise LegacyImportError(f"{src}: no such folder (expected <environment>/<architecture>/gpu-power-*.csv)")
    gpu_files = sorted(src.glob("*/*/gpu-power-*.csv"))
    if not gpu_files:
        raise LegacyImportError(f"{src}: no gpu-power-*.csv files under <environment>/<architecture>/")
    counts = {"imported": 0, "done": 0, "short": 0}
    imported: list[Path] = []
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
            outcome, run_folder = _import_run(src, path, stamp, repetition, dest, trim_samples)
            counts[outcome] += 1
            if run_folder:
                imported.append(run_folder)
    log.info(f"legacy import {src} -> {dest}: {counts['imported']} runs imported, {counts['done']} already "
               f"imported, {counts['short']} skipped as too short")
    return imported
