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

Nothing to do costs nothing: whether anything changed is decided from the run folders' verdicts and the index
alone (standard library); the work itself, with numpy, pandas and Arrow, is in ect.aggregate.outputs, imported
only when there is some.
"""

from __future__ import annotations

import fcntl
import logging
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from ect.errors import ConfigError
from ect.raw.atomic import read_json, write_json
from ect.raw.layout import MetricsDir, RunKey, find_runs_and_links
from ect.raw.manifest import read_manifest

# Bump when the columns or the arithmetic of the outputs change: every run is then aggregated again.
# 7: backend, backend_version, keras_version; 8: steady state (steady_*, <phase>_steady_*);
# 9: gpu/cpu/dram/total_energy_uncertainty_J; 10: idle baseline (idle_*_power_W, dynamic_energy_J, hot_start, ...);
# 11: validation_warnings, validation_warning_count
FORMAT_VERSION = 11
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


def _read_index(index_path: Path) -> dict | None:
    """{run name: {"signature", "part"}} of the runs aggregated before, if written by this format of the outputs
    (else None)."""
    index = read_json(index_path) or {}
    return index["runs"] if index.get("format") == FORMAT_VERSION else None


def _processed_runs(index: dict | None, runs_path: Path) -> set[str]:
    """The runs of the processed dataset: those of the index (written with runs.parquet), else (no index of this
    format) those runs.parquet holds."""
    if not runs_path.exists():
        return set()
    if index is not None:
        return set(index)
    from ect.aggregate.outputs import processed_runs

    return processed_runs(runs_path)


def _kept_parts(index: dict, wanted: dict[str, tuple[Path, dict]], present: set[str]) -> set[str]:
    """The parts of interim/samples.parquet that stay as they are: on disk, and holding only runs still wanted with
    unchanged files.

    index: {run name: {"signature": ..., "part": file name}} of the last aggregation;
    wanted: {run name: (folder, signature)} of the runs to aggregate now.
    """
    runs_of = defaultdict(list)
    for name, entry in index.items():
        runs_of[entry["part"]].append(name)
    return {part for part, names in runs_of.items() if part in present
            and all(name in wanted and wanted[name][1] == index[name]["signature"] for name in names)}


def _refuse_removal(leaving: list[str], processed: int, raw_dir: Path, runs_path: Path) -> None:
    named = ", ".join(leaving[:NAMED]) + (f" and {len(leaving) - NAMED} more" if len(leaving) > NAMED else "")
    raise RemovalRefused(
        f"{raw_dir} has no run folder for {len(leaving)} of the {processed} run(s) of the processed dataset "
        f"{runs_path} ({named}): aggregating it would remove them from the processed and interim datasets; nothing "
        f"was changed. Check RAW_DIR (an empty or wrong folder?), or pass --allow-removal to remove them")


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
    csv_path = runs_path.with_suffix(".csv")

    folders, linked = find_runs_and_links(raw_dir, only)
    links = [link.relative_to(raw_dir).as_posix() for link in linked]
    outputs_exist = samples_dir.is_dir() and runs_path.exists()
    index = _read_index(index_path) if outputs_exist else None
    before = _processed_runs(index, runs_path)
    index = index or {}
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
    keep = _kept_parts(index, wanted, present)
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

    from ect.aggregate.outputs import write_outputs  # numpy, pandas and Arrow: only for work to do

    written = write_outputs(out, wanted, todo, unchanged, keep, environments)  # takes failed runs out of wanted
    failures = written.failures
    skipped += [f"{name}: quarantined (failed to aggregate: {details})" for name, details in failures.items()]
    part_of = {**{name: index[name]["part"] for name in unchanged}, **written.parts}
    index = {"format": FORMAT_VERSION,
             "runs": {n: {"signature": wanted[n][1], "part": part_of[n]} for n in sorted(wanted)}}
    write_json(index_path, index, indent=1)
    not_aggregated = f"; {len(failures)} run(s) failed to aggregate and were quarantined" if failures else ""
    log.info(f"processed dataset: {written.runs} runs -> {runs_path} and {csv_path}; samples -> {samples_dir}"
             f"{not_aggregated}")
    return AggregateResult(runs_path, written.runs, len(todo) - len(failures), skipped, changed=True, failed=failures)
