"""`ect aggregate`: raw run folders -> interim/samples.parquet -> processed/runs.parquet and runs.csv.

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

from ect.aggregate.runs import run_row
from ect.aggregate.samples import joined_samples, read_cpu, read_gpu
from ect.raw import find_runs, read_json, run_key, signature

KEY = ["environment", "architecture", "run_id"]
# Bump when the columns or the arithmetic of the outputs change: every run is then aggregated again.
FORMAT_VERSION = 2
PROGRESS_EVERY = 20


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


def _eligible(folders: list[Path], limits, print_line) -> tuple[list[Path], list[str]]:
    """The runs that completed and passed validation (validating those without a current record)."""
    from ect.validation import PASSED, validate_run

    eligible, skipped = [], []
    for folder in folders:
        name = "/".join(run_key(folder))
        manifest = read_json(folder / "manifest.json") or {}
        if manifest.get("status") != "completed":
            skipped.append(f"{name}: status {manifest.get('status', 'unknown')}")
            continue
        result = validate_run(folder, limits)
        if result.status != PASSED:
            skipped.append(f"{name}: quarantined ({'; '.join(f'{f.file} {f.check}' for f in result.failures[:3])})")
            continue
        eligible.append(folder)
    return eligible, skipped


def _read_index(index_path: Path) -> dict:
    """{run name: signature} of the runs aggregated before, if written by this format of the outputs."""
    index = read_json(index_path) or {}
    return index["runs"] if index.get("format") == FORMAT_VERSION else {}


def _read_run(folder: Path, environments: dict) -> tuple[pd.DataFrame, dict]:
    """(samples, processed row) of one run folder."""
    manifest = read_json(folder / "manifest.json")
    gpu, cpu = read_gpu(folder), read_cpu(folder)
    interval_ms = round(1000 * (manifest.get("sensors") or {}).get("sampling_interval_s", 1.0))
    samples = joined_samples(gpu, cpu, tolerance_ms=max(interval_ms, 1))
    samples.insert(0, "run_id", manifest["run_id"])
    samples.insert(0, "architecture", manifest["architecture"])
    samples.insert(0, "environment", manifest["environment"])
    return samples, run_row(folder, manifest, gpu, cpu, environments)


def aggregate(raw_dir: Path, out_dir: Path, environments: dict, limits,
              print_line: Callable[[str], None] = print) -> AggregateResult:
    """Aggregates raw_dir into out_dir/interim and out_dir/processed."""
    interim, processed = out_dir / "interim", out_dir / "processed"
    index_path, samples_path = interim / "index.json", interim / "samples.parquet"
    runs_path, csv_path = processed / "runs.parquet", processed / "runs.csv"

    eligible, skipped = _eligible(find_runs(raw_dir), limits, print_line)
    wanted = {"/".join(run_key(f)): (f, signature(f)) for f in eligible}
    outputs_exist = samples_path.exists() and runs_path.exists()
    index = _read_index(index_path) if outputs_exist else {}
    unchanged = sorted(name for name, (_, sig) in wanted.items() if index.get(name) == sig)
    todo = sorted(name for name in wanted if name not in set(unchanged))
    print_line(f"aggregating {len(todo)} new or changed run(s); {len(unchanged)} unchanged; {len(skipped)} skipped")
    for line in skipped:
        print_line(f"  skipped {line}")
    if not todo and set(index) == set(wanted) and outputs_exist:
        return AggregateResult(runs_path, len(wanted), 0, skipped, changed=False)

    new_samples, new_rows = {}, {}
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:  # Arrow's reader releases the GIL
        for number, (name, (samples, row)) in enumerate(
                zip(todo, pool.map(lambda n: _read_run(wanted[n][0], environments), todo)), start=1):
            new_samples[name], new_rows[name] = samples, row
            if len(todo) >= PROGRESS_EVERY and (number % PROGRESS_EVERY == 0 or number == len(todo)):
                print_line(f"  {number}/{len(todo)} runs read")

    old_samples = pd.read_parquet(samples_path) if unchanged else None
    old_runs = pd.read_parquet(runs_path) if unchanged else None
    samples = _in_run_order(old_samples, new_samples, unchanged)
    runs = _in_run_order(old_runs, {n: pd.DataFrame([r]) for n, r in new_rows.items()}, unchanged)
    interim.mkdir(parents=True, exist_ok=True)
    processed.mkdir(parents=True, exist_ok=True)
    _write_atomic(samples_path, lambda p: samples.to_parquet(p, index=False))
    _write_atomic(runs_path, lambda p: runs.to_parquet(p, index=False))
    _write_atomic(csv_path, lambda p: runs.to_csv(p, index=False))
    index = {"format": FORMAT_VERSION, "runs": {n: wanted[n][1] for n in sorted(wanted)}}
    _write_atomic(index_path, lambda p: p.write_text(json.dumps(index, indent=1)))
    print_line(f"processed dataset: {len(runs)} runs -> {runs_path} and {csv_path}")
    return AggregateResult(runs_path, len(runs), len(todo), skipped, changed=True)


def _run_names(frame: pd.DataFrame) -> pd.Series:
    return frame["environment"] + "/" + frame["architecture"] + "/" + frame["run_id"]


def _in_run_order(old: pd.DataFrame | None, new: dict[str, pd.DataFrame], keep: list[str]) -> pd.DataFrame:
    """The kept runs' rows of `old` and the new runs' frames, ordered by run name (rows of a run keep their
    order: samples by time). Sorting run ranks, not strings, keeps this fast for millions of samples."""
    parts, ranks = [], []
    rank_of = {name: rank for rank, name in enumerate(sorted([*keep, *new]))}
    if old is not None and keep:
        names = _run_names(old)
        kept = old[names.isin(set(keep))]
        parts.append(kept)
        ranks.append(names[kept.index].map(rank_of).to_numpy())
    for name, frame in new.items():
        parts.append(frame)
        ranks.append(np.full(len(frame), rank_of[name]))
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=KEY)
    frame = pd.concat(parts, ignore_index=True)
    order = np.argsort(np.concatenate(ranks), kind="stable")
    return frame.iloc[order].reset_index(drop=True)
