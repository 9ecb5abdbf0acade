"""The work of an aggregation that has something to do: reading the new or changed runs, streaming their samples into
a new part of interim/samples.parquet (ect.aggregate.parts), quarantining the runs that fail to aggregate and writing
processed/runs.parquet and runs.csv.

numpy, pandas and Arrow are imported here and below, never by ect.aggregate.aggregate, which decides from the
index and the verdicts alone whether there is anything to do: an aggregation with nothing to do does not load them.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from ect.aggregate.parts import PartWriter, remove_all_but
from ect.aggregate.runs import run_row
from ect.aggregate.samples import joined_samples, read_cpu, read_gpu, run_samples
from ect.errors import EctError
from ect.raw.atomic import LinkRefused, atomic_path
from ect.raw.layout import MetricsDir, run_name
from ect.raw.manifest import read_manifest

KEY = ["environment", "architecture", "run_id"]
PROGRESS_EVERY = 20

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Written:
    parts: dict[str, str]  # {run name: its part's file name} of the runs read and written now
    runs: int  # rows of the processed dataset
    failures: dict[str, str]  # runs that passed validation but failed to aggregate, now quarantined: {name: error}


def processed_runs(runs_path: Path) -> set[str]:
    """The runs of processed/runs.parquet (read only when no index of this format says which they are)."""
    import pyarrow.parquet as pq

    try:
        keys = pq.read_table(runs_path, columns=KEY).to_pydict()
    except (OSError, pa.ArrowException, KeyError):
        return set()
    return {run_name(*key) for key in zip(*(keys[column] for column in KEY)) if all(isinstance(k, str) for k in key)}


def write_outputs(out: MetricsDir, wanted: dict[str, tuple[Path, dict]], todo: list[str], unchanged: list[str],
                  keep: set[str], environments: dict) -> Written:
    """Deletes the parts not kept, reads the runs `todo` into a new part and writes the processed files: the rows of
    the `unchanged` runs from the old runs.parquet and the new rows. A run that fails to aggregate is quarantined and
    taken out of `wanted` ({run name: (folder, signature)})."""
    samples_dir, runs_path = out.samples, out.processed
    # Parts of changed or departed runs go first: a crash from here on leaves a run missing from the
    # samples until the next aggregation, never there twice.
    remove_all_but(samples_dir, keep)
    new_rows, failed = [], {}
    workers = min(4, os.cpu_count() or 1)  # Arrow reads and writes without the GIL
    with ThreadPoolExecutor(max_workers=workers) as pool:
        with PartWriter(samples_dir) as parts:
            read = _in_order(pool, lambda name: _read_or_error(wanted[name][0], environments), todo, ahead=4 * workers)
            for number, (name, (run, error)) in enumerate(zip(todo, read), start=1):
                if error is not None:
                    failed[name] = error
                else:
                    parts.add(name, wanted[name][1], run[0])
                    new_rows.append(run[1])
                if len(todo) >= PROGRESS_EVERY and (number % PROGRESS_EVERY == 0 or number == len(todo)):
                    log.info(f"  {number}/{len(todo)} runs read")
            failures = _quarantine_failed(failed, wanted)
            rank_of = {name: rank for rank, name in enumerate(sorted(wanted))}
            # A worker writes the processed files while this thread closes the last part.
            written = pool.submit(_write_processed, runs_path.parent, runs_path if unchanged else None, unchanged,
                                  pd.DataFrame(new_rows), rank_of)
        runs = written.result()
    samples_dir.mkdir(parents=True, exist_ok=True)
    return Written(parts=parts.parts, runs=len(runs), failures=failures)


def _read_run(folder: Path, environments: dict) -> tuple[pa.Table, dict]:
    """One run folder's interim samples (FILE_SCHEMA of ect.aggregate.samples) and processed row."""
    manifest = read_manifest(folder)
    gpu, cpu = read_gpu(folder), read_cpu(folder)
    interval_ms = round(1000 * ((manifest.sensors.sampling_interval_s if manifest.sensors else None) or 1.0))
    samples = joined_samples(gpu, cpu, tolerance_ms=max(interval_ms, 1))
    samples = run_samples(samples, manifest.key)
    return samples, {**run_row(folder, manifest, gpu, cpu, environments), **_validation_warnings(folder)}


def _validation_warnings(folder: Path) -> dict:
    """The warnings of the run's validation (kept runs, flagged): how many, and which checks of which files."""
    from ect.validation.validate import current_validation

    warnings = (current_validation(folder) or {}).get("warnings") or []
    checks = sorted({f"{w.get('file')} {w.get('check')}" for w in warnings if isinstance(w, dict)})
    # "" rather than None: a column of runs without warnings keeps its text type in the processed dataset
    return {"validation_warnings": "; ".join(checks), "validation_warning_count": len(warnings)}


def _read_or_error(folder: Path, environments: dict):
    """((samples, row), None), or (None, the error) when the run's data cannot be aggregated. Errors of the
    configuration (EctError) and of the file system (OSError) are no fault of the run: they stop the aggregation; a
    run file that became a symbolic link since its validation is (LinkRefused: not read)."""
    try:
        return _read_run(folder, environments), None
    except LinkRefused as error:
        return None, error
    except (EctError, OSError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - a run's data that the checks let through: that run fails alone
        return None, error


def _in_order(pool: ThreadPoolExecutor, function, items: list, ahead: int):
    """pool.map, but with at most `ahead` results read and not yet taken: memory stays bounded however
    many runs there are."""
    pending = deque()
    for item in items:
        pending.append(pool.submit(function, item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _quarantine_failed(failed: dict[str, Exception], wanted: dict) -> dict[str, str]:
    """Quarantines the runs that failed to aggregate (validation.json: aggregation_error) and takes them out of
    `wanted`; {run name: the error}."""
    from ect.validation.validate import quarantine_after_aggregation

    details = {}
    for name, error in sorted(failed.items()):
        folder, signature = wanted.pop(name)
        failure = quarantine_after_aggregation(folder, signature, error)
        log.warning(f"{name}: passed validation but failed to aggregate ({failure.details}); quarantined")
        details[name] = failure.details
    return details


def _write_processed(processed: Path, old_path: Path | None, keep: list[str], new: pd.DataFrame,
                     rank_of: dict[str, int]) -> pd.DataFrame:
    """Writes processed/runs.parquet and runs.csv: the kept rows of the old runs.parquet and the new rows."""
    runs = _runs_in_run_order(old_path, keep, new, rank_of)
    processed.mkdir(parents=True, exist_ok=True)
    with atomic_path(processed / "runs.parquet") as tmp:
        runs.to_parquet(tmp, index=False)
    with atomic_path(processed / "runs.csv") as tmp:
        runs.to_csv(tmp, index=False)
    return runs


def _runs_in_run_order(old_path: Path | None, keep: list[str], new: pd.DataFrame, rank_of: dict[str, int]) -> pd.DataFrame:
    """The kept runs' rows of the old runs.parquet and the new rows (already in run-name order), ordered by
    run name."""
    if old_path is None and len(new):
        return new
    parts = [new]
    if old_path is not None:
        old = pd.read_parquet(old_path)
        parts.insert(0, old[run_name(old["environment"], old["architecture"], old["run_id"]).isin(set(keep))])
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=KEY)
    frame = pd.concat(parts, ignore_index=True)
    ranks = run_name(frame["environment"], frame["architecture"], frame["run_id"]).map(rank_of)
    return frame.iloc[np.argsort(ranks.to_numpy(), kind="stable")].reset_index(drop=True)
