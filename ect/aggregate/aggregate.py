"""`ect aggregate`: raw run folders -> interim/samples.parquet -> processed/runs.parquet and runs.csv.

interim/samples.parquet is a folder of one Parquet file per run, <environment>/<architecture>/<run_id>.parquet,
all with SAMPLES_SCHEMA: read it whole as one dataset (pandas.read_parquet or pyarrow.parquet.read_table on
the folder). A run's file is written once, by the thread that read the run, and never rewritten unless
the run changes, so a nightly aggregation costs the new runs, not the whole history.

Only runs whose manifest says completed and whose validation passed are aggregated (runs without
a current validation are validated first). Incremental: interim/index.json records the files of
every aggregated run, and only new or changed runs are read again. Idempotent: when nothing
changed nothing is rewritten, and a run is keyed by (environment, architecture, run_id), so a
retried run replaces its earlier rows and never appears twice.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ect.aggregate.runs import run_row
from ect.aggregate.samples import SAMPLES_SCHEMA, joined_samples, read_cpu, read_gpu, run_samples
from ect.raw import find_runs, read_json, run_key

KEY = ["environment", "architecture", "run_id"]
# Bump when the columns or the arithmetic of the outputs change: every run is then aggregated again.
FORMAT_VERSION = 4
PROGRESS_EVERY = 20
_TEXT_COLUMNS = [f.name for f in SAMPLES_SCHEMA if pa.types.is_string(f.type)]


@dataclass(frozen=True)
class AggregateResult:
    processed: Path  # runs.parquet
    runs: int  # rows in the processed dataset
    updated: int  # runs read in this call
    skipped: list[str]  # runs not aggregated, with the reason
    changed: bool  # whether any file was rewritten


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


def _eligible(folders: list[Path], limits) -> tuple[dict[str, tuple[Path, dict]], list[str]]:
    """{run name: (folder, signature)} of the runs that completed and passed validation (validating those
    without a current record; a run whose manifest is not completed is skipped without validating it)."""
    from ect.validation import PASSED, validate_run
    from ect.validation.validate import current_validation

    eligible, skipped = {}, []
    for folder in folders:
        name = "/".join(run_key(folder))
        record = current_validation(folder)  # a current pass implies a completed manifest: no need to read it
        if record is None or record["status"] != PASSED:
            manifest = read_json(folder / "manifest.json") or {}
            if manifest.get("status") != "completed":
                skipped.append(f"{name}: status {manifest.get('status', 'unknown')}")
                continue
            result = validate_run(folder, limits)
            if result.status != PASSED:
                skipped.append(f"{name}: quarantined ({'; '.join(f'{f.file} {f.check}' for f in result.failures[:3])})")
                continue
            record = {"signature": result.signature}
        eligible[name] = (folder, record["signature"])
    return eligible, skipped


def _read_index(index_path: Path) -> dict:
    """{run name: signature} of the runs aggregated before, if written by this format of the outputs."""
    index = read_json(index_path) or {}
    return index["runs"] if index.get("format") == FORMAT_VERSION else {}


def _read_run(folder: Path, environments: dict, samples_dir: Path) -> dict:
    """Reads one run folder, writes its interim samples file; returns its processed row."""
    manifest = read_json(folder / "manifest.json")
    gpu, cpu = read_gpu(folder), read_cpu(folder)
    interval_ms = round(1000 * (manifest.get("sensors") or {}).get("sampling_interval_s", 1.0))
    samples = joined_samples(gpu, cpu, tolerance_ms=max(interval_ms, 1))
    samples = run_samples(samples, manifest["environment"], manifest["architecture"], manifest["run_id"])
    path = samples_file(samples_dir, "/".join(run_key(folder)))
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(path, lambda p: _write_samples(samples, p))
    return run_row(folder, manifest, gpu, cpu, environments)


def _write_samples(samples: pa.Table, path: Path) -> None:
    # Dictionary pages only for the text columns: numbers rarely repeat, and trying costs a third of the time.
    # An open file, not a path: Arrow's filesystem lookup for a path costs a sixth of a small file's write.
    with open(path, "wb") as handle:
        pq.write_table(samples, handle, use_dictionary=_TEXT_COLUMNS)


def samples_file(samples_dir: Path, name: str) -> Path:
    """interim/samples.parquet/<environment>/<architecture>/<run_id>.parquet of the run named env/arch/run_id."""
    return samples_dir / f"{name}.parquet"


def _remove_stale(samples_dir: Path, wanted: set[str]) -> None:
    """Deletes the interim files of runs no longer aggregated (and leftovers of an interrupted write)."""
    for path in samples_dir.rglob("*.parquet*"):
        name = path.relative_to(samples_dir).as_posix().removesuffix(".parquet")
        if path.name.startswith(".") or name not in wanted:
            path.unlink()


def aggregate(raw_dir: Path, out_dir: Path, environments: dict, limits,
              print_line: Callable[[str], None] = print) -> AggregateResult:
    """Aggregates raw_dir into out_dir/interim and out_dir/processed."""
    interim, processed = out_dir / "interim", out_dir / "processed"
    index_path, samples_dir = interim / "index.json", interim / "samples.parquet"
    runs_path, csv_path = processed / "runs.parquet", processed / "runs.csv"

    wanted, skipped = _eligible(find_runs(raw_dir), limits)
    outputs_exist = samples_dir.is_dir() and runs_path.exists()
    index = _read_index(index_path) if outputs_exist else {}
    unchanged = sorted(name for name, (_, sig) in wanted.items() if index.get(name) == sig)
    todo = sorted(name for name in wanted if name not in set(unchanged))
    print_line(f"aggregating {len(todo)} new or changed run(s); {len(unchanged)} unchanged; {len(skipped)} skipped")
    for line in skipped:
        print_line(f"  skipped {line}")
    if not todo and set(index) == set(wanted) and outputs_exist:
        return AggregateResult(runs_path, len(wanted), 0, skipped, changed=False)

    if samples_dir.is_file():  # FORMAT_VERSION 3 wrote one file; derived data, rebuilt from raw/
        samples_dir.unlink()
    new_rows = []
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # Arrow reads and writes without the GIL
        rows = pool.map(lambda name: _read_run(wanted[name][0], environments, samples_dir), todo)
        for number, row in enumerate(rows, start=1):
            new_rows.append(row)
            if len(todo) >= PROGRESS_EVERY and (number % PROGRESS_EVERY == 0 or number == len(todo)):
                print_line(f"  {number}/{len(todo)} runs read")
    samples_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale(samples_dir, set(wanted))

    rank_of = {name: rank for rank, name in enumerate(sorted(wanted))}
    runs = _runs_in_run_order(runs_path if unchanged else None, unchanged, pd.DataFrame(new_rows), rank_of)
    processed.mkdir(parents=True, exist_ok=True)
    _write_atomic(runs_path, lambda p: runs.to_parquet(p, index=False))
    _write_atomic(csv_path, lambda p: runs.to_csv(p, index=False))
    index = {"format": FORMAT_VERSION, "runs": {n: wanted[n][1] for n in sorted(wanted)}}
    _write_atomic(index_path, lambda p: p.write_text(json.dumps(index, indent=1)))
    print_line(f"processed dataset: {len(runs)} runs -> {runs_path} and {csv_path}; samples -> {samples_dir}")
    return AggregateResult(runs_path, len(runs), len(todo), skipped, changed=True)


def _run_names(frame: pd.DataFrame) -> pd.Series:
    return frame["environment"] + "/" + frame["architecture"] + "/" + frame["run_id"]


def _runs_in_run_order(old_path: Path | None, keep: list[str], new: pd.DataFrame, rank_of: dict[str, int]) -> pd.DataFrame:
    """The kept runs' rows of the old runs.parquet and the new rows (already in run-name order), ordered by run name."""
    if old_path is None and len(new):
        return new
    parts = [new]
    if old_path is not None:
        old = pd.read_parquet(old_path)
        parts.insert(0, old[_run_names(old).isin(set(keep))])
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=KEY)
    frame = pd.concat(parts, ignore_index=True)
    ranks = _run_names(frame).map(rank_of)
    return frame.iloc[np.argsort(ranks.to_numpy(), kind="stable")].reset_index(drop=True)
