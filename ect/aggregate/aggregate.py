"""`ect aggregate`: raw run folders -> interim/samples.parquet -> processed/runs.parquet and runs.csv.

Only runs whose manifest says completed and whose validation passed are aggregated (runs without
a current validation are validated first). Incremental: interim/index.json records the files of
every aggregated run and the part of interim/samples.parquet that holds its samples (ect.aggregate.parts),
and only new or changed runs are read again. Idempotent: when nothing changed nothing is rewritten, and
a run is keyed by (environment, architecture, run_id), so a retried run replaces its earlier rows and
never appears twice.

A run that passed validation and still cannot be aggregated (an error while reading it or making its row) is
quarantined with the error (its validation.json: aggregation_error) and reported; the other runs are aggregated. The
processed dataset never shrinks by accident: when runs of it have no run folder under raw_dir any more (an empty or
wrong raw_dir), aggregation is refused (RemovalRefused) and nothing is rewritten, unless allow_removal.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow as pa

from ect.aggregate.parts import PartWriter, kept_parts, remove_all_but
from ect.aggregate.runs import run_row
from ect.aggregate.samples import joined_samples, read_cpu, read_gpu, run_samples
from ect.errors import ConfigError, EctError
from ect.raw.atomic import LinkRefused, atomic_path, read_json, write_json
from ect.raw.layout import MetricsDir, RunKey, find_links, find_runs, run_name
from ect.raw.manifest import read_manifest

KEY = ["environment", "architecture", "run_id"]
# Bump when the columns or the arithmetic of the outputs change: every run is then aggregated again.
# 7: backend, backend_version, keras_version; 8: steady state (steady_*, <phase>_steady_*);
# 9: gpu/cpu/dram/total_energy_uncertainty_J; 10: idle baseline (idle_*_power_W, dynamic_energy_J, hot_start, ...);
# 11: validation_warnings, validation_warning_count
FORMAT_VERSION = 11
PROGRESS_EVERY = 20
NAMED = 10  # runs named in a refusal, then "and N more"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AggregateResult:
    processed: Path  # runs.parquet
    runs: int  # rows in the processed dataset
    updated: int  # runs read in this call
    skipped: list[str]  # runs not aggregated, with the reason (those that failed to aggregate too)
    changed: bool  # whether any file was rewritten
    # runs that passed validation but failed to aggregate, now quarantined: {run name: the aggregation error}
    failed: dict[str, str] = field(default_factory=dict)


class RemovalRefused(ConfigError):
    """Aggregating would remove runs of the processed dataset that have no run folder any more (the message names
    them); `ect aggregate --allow-removal` removes them."""


def _eligible(folders: list[Path], limits) -> tuple[dict[str, tuple[Path, dict]], list[str]]:
    """{run name: (folder, signature)} of the runs that completed and passed validation (validating those
    without a current record; a run whose manifest is not completed is skipped without validating it)."""
    from ect.validation import PASSED
    from ect.validation.verdicts import linked_files
    from ect.validation.validate import batches, current_validation, validate_runs

    def quarantined(name: str, failures) -> str:
        return f"{name}: quarantined ({'; '.join(f'{f.file} {f.check}' for f in failures[:3])})"

    eligible, skipped, unchecked = {}, [], []
    for folder in folders:
        name = RunKey.of_folder(folder).name
        record = current_validation(folder)  # a current pass implies a completed manifest: no need to read it
        if record is not None and record["status"] == PASSED:
            eligible[name] = (folder, record["signature"])
            continue
        if linked_files(folder):  # named by the validation (not_a_link), whatever the manifest says
            if record is None:
                unchecked.append(folder)
            else:
                skipped.append(quarantined(name, [SimpleNamespace(**f) for f in record["failures"]]))
            continue
        manifest = read_manifest(folder)
        if manifest is None or not manifest.completed:
            skipped.append(f"{name}: status {manifest.status if manifest else 'unknown'}")
        elif record is None:
            unchecked.append(folder)
        else:
            skipped.append(quarantined(name, [SimpleNamespace(**f) for f in record["failures"]]))
    for batch in batches(unchecked):  # runs without a current verdict, validated in batches
        for result in validate_runs(batch, limits):
            if result.status == PASSED:
                eligible[result.run] = (result.folder, result.signature)
            else:
                skipped.append(quarantined(result.run, result.failures))
    return dict(sorted(eligible.items())), skipped


def _read_index(index_path: Path) -> dict:
    """{run name: {"signature", "part"}} of the runs aggregated before, if written by this format of the outputs."""
    index = read_json(index_path) or {}
    return index["runs"] if index.get("format") == FORMAT_VERSION else {}


def _processed_runs(index: dict, runs_path: Path) -> set[str]:
    """The runs of the processed dataset: those of the index, else (an index of another format) of runs.parquet."""
    if not runs_path.exists():
        return set()
    if index:
        return set(index)
    import pyarrow.parquet as pq

    try:
        keys = pq.read_table(runs_path, columns=KEY).to_pydict()
    except (OSError, pa.ArrowException, KeyError):
        return set()
    return {run_name(*key) for key in zip(*(keys[column] for column in KEY)) if all(isinstance(k, str) for k in key)}


def _refuse_removal(leaving: list[str], processed: int, raw_dir: Path, runs_path: Path) -> None:
    named = ", ".join(leaving[:NAMED]) + (f" and {len(leaving) - NAMED} more" if len(leaving) > NAMED else "")
    raise RemovalRefused(
        f"{raw_dir} has no run folder for {len(leaving)} of the {processed} run(s) of the processed dataset "
        f"{runs_path} ({named}): aggregating it would remove them from the processed and interim datasets; nothing "
        f"was changed. Check RAW_DIR (an empty or wrong folder?), or pass --allow-removal to remove them")


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


@contextmanager
def _only_one_at_a_time(lock_path: Path):
    """Holds an exclusive lock on lock_path: the DAGs of two environments aggregate into the same folder,
    and one aggregation must not delete the part another is writing."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(f"waiting for another aggregation into {lock_path.parent.parent} to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the lock goes with the file's closing, also when the process dies


def aggregate(raw_dir: Path, out_dir: Path, environments: dict, limits, allow_removal: bool = False,
              only: set[RunKey] | None = None) -> AggregateResult:
    """Aggregates raw_dir (with `only`, these runs of it alone: with a run store, the store's runs) into
    out_dir/interim and out_dir/processed (one aggregation at a time per out_dir).

    RemovalRefused, with nothing changed, when runs of the processed dataset have no run folder under raw_dir,
    unless allow_removal."""
    with _only_one_at_a_time(MetricsDir(out_dir).interim / ".aggregate.lock"):
        return _aggregate(raw_dir, MetricsDir(out_dir), environments, limits, allow_removal, only)


def _aggregate(raw_dir: Path, out: MetricsDir, environments: dict, limits, allow_removal: bool,
               only: set[RunKey] | None = None) -> AggregateResult:
    index_path, samples_dir = out.interim / "index.json", out.samples
    runs_path = out.processed
    processed, csv_path = runs_path.parent, runs_path.with_suffix(".csv")

    folders = find_runs(raw_dir, only)
    links = [link.relative_to(raw_dir).as_posix() for link in find_links(raw_dir)]
    outputs_exist = samples_dir.is_dir() and runs_path.exists()
    index = _read_index(index_path) if outputs_exist else {}
    before = _processed_runs(index, runs_path)
    # A run under a link still has a folder (quarantined, not followed): it leaves the datasets as a quarantined run.
    leaving = sorted(name for name in before - {RunKey.of_folder(folder).name for folder in folders}
                     if not any(name == link or name.startswith(link + "/") for link in links))
    if leaving and not allow_removal:
        _refuse_removal(leaving, len(before), raw_dir, runs_path)
    if leaving:
        log.info(f"removing {len(leaving)} run(s) without a run folder under {raw_dir} (--allow-removal)")
    wanted, skipped = _eligible(folders, limits)
    skipped += [f"{link}: quarantined (not_a_link: a symbolic link, not followed)" for link in links]
    present = {p.name for p in samples_dir.iterdir()} if samples_dir.is_dir() else set()
    keep = kept_parts(index, wanted, present)
    unchanged = sorted(name for name, entry in index.items() if entry["part"] in keep)
    todo = sorted(set(wanted) - set(unchanged))
    new_or_changed = [name for name in todo if index.get(name, {}).get("signature") != wanted[name][1]]
    reread = len(todo) - len(new_or_changed)
    again = f", {reread} read again (its part held a changed or departed run)" if reread else ""
    log.info(f"aggregating {len(new_or_changed)} new or changed run(s){again}; {len(unchanged)} unchanged; "
               f"{len(skipped)} skipped")
    for line in skipped:
        log.info(f"  skipped {line}")
    if not todo and len(unchanged) == len(index) and present == keep and outputs_exist:
        return AggregateResult(runs_path, len(wanted), 0, skipped, changed=False)

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
            skipped += [f"{name}: quarantined (failed to aggregate: {details})" for name, details in failures.items()]
            rank_of = {name: rank for rank, name in enumerate(sorted(wanted))}
            # A worker writes the processed files while this thread closes the last part.
            written = pool.submit(_write_processed, processed, runs_path if unchanged else None, unchanged,
                                  pd.DataFrame(new_rows), rank_of)
        runs = written.result()
    samples_dir.mkdir(parents=True, exist_ok=True)
    part_of = {**{name: index[name]["part"] for name in unchanged}, **parts.parts}
    index = {"format": FORMAT_VERSION,
             "runs": {n: {"signature": wanted[n][1], "part": part_of[n]} for n in sorted(wanted)}}
    write_json(index_path, index, indent=1)
    not_aggregated = f"; {len(failures)} run(s) failed to aggregate and were quarantined" if failures else ""
    log.info(f"processed dataset: {len(runs)} runs -> {runs_path} and {csv_path}; samples -> {samples_dir}"
             f"{not_aggregated}")
    return AggregateResult(runs_path, len(runs), len(todo) - len(failed), skipped, changed=True, failed=failures)


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
