"""`ect validate`: checks every raw run folder, marks each one passed or quarantined, and writes a summary.

A quarantined run stays where it is, untouched: its validation.json says why (its errors), and the aggregator
skips it. Warnings (fewer samples than the interval promises, an unusual temperature, a counter-power disagreement
within the tolerance) do not quarantine: they are listed beside the verdict, and the run is aggregated. A run is
validated again when one of its files changes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ect.raw.atomic import is_link, read_json, write_json, write_text
from ect.raw.columns import now_utc
from ect.raw.layout import CPU_FILE, GPU_FILE, VALIDATION_FILE, RunKey, find_runs_and_links, signature
from ect.validation.verdicts import ERROR, NOT_A_LINK, WARNING, Failure, Limits

if TYPE_CHECKING:
    from ect.validation.checks import DataDocs

log = logging.getLogger(__name__)

PASSED, QUARANTINED = "passed", "quarantined"
AGGREGATION = "(aggregation)"  # the file of an aggregation error
# Runs validated together: four Great Expectations validations a batch (about 0.3 s whatever its size). Each run is
# read and reduced to its facts in turn (memory follows one run, not the batch); a batch closes at BATCH_RUNS runs or
# BATCH_BYTES of CSV, and its verdicts are then written (a crash loses at most a batch's work).
BATCH_RUNS = 1000
BATCH_BYTES = 2_000_000_000


def batches(folders: list[Path]):
    """The folders in batches of at most BATCH_RUNS runs and (but for a single larger run) BATCH_BYTES of CSV."""
    batch, size = [], 0
    for folder in folders:
        run_bytes = sum(entry.get(name, [0])[0] for entry in [signature(folder)] for name in (GPU_FILE, CPU_FILE))
        if batch and (len(batch) == BATCH_RUNS or size + run_bytes > BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(folder)
        size += run_bytes
    if batch:
        yield batch


@dataclass
class RunValidation:
    folder: Path
    status: str  # passed | quarantined
    failures: list[Failure] = field(default_factory=list)  # the errors: any quarantines the run
    reused: bool = False  # True when an earlier validation of the same files was current
    signature: dict = field(default_factory=dict)  # the files (ect.raw.layout.signature) this status is about
    name: str | None = None  # a linked environment or architecture folder's name ("local", "local/vgg16")
    recorded: bool = True  # False for a link: its verdict is in the summary only, nothing is written through it
    warnings: list[Failure] = field(default_factory=list)  # listed, the run kept (and aggregated when it passed)

    @cached_property
    def run(self) -> str:
        return self.name or RunKey.of_folder(self.folder).name


LEVELS = ("environment", "architecture", "run")


def linked_folder(link: Path, raw_dir: Path | None = None) -> RunValidation:
    """A symbolic link where an environment, architecture or run folder belongs: quarantined (not_a_link), never
    followed: nothing is read or written through it."""
    name = Path(link).relative_to(raw_dir).as_posix() if raw_dir is not None else RunKey.of_folder(link).name
    level = LEVELS[min(name.count("/"), 2)]
    failure = Failure(f"({level} folder)", NOT_A_LINK, None,
                      f"{name} is a symbolic link: not followed (nothing read or written through it)")
    return RunValidation(Path(link), QUARANTINED, [failure], name=name, recorded=False)


def limits_from(experiment) -> Limits:
    return Limits(experiment.validation_max_gap_factor, experiment.validation_min_samples,
                  experiment.validation_power_limit_factor)


# The checks' version, recorded with each verdict: a verdict of older checks is not current, so that every run is
# checked once by new checks (2: the measurement cross-checks and warnings; 3: hot start and steady-state warnings,
# the periodic spacing beside the median; a record without it is of version 1).
CHECKS_VERSION = 3


def current_validation(folder: Path) -> dict | None:
    """The run's recorded validation if its files have not changed since and the checks are the same (never one read
    through a link)."""
    if is_link(folder):
        return None
    record = read_json(folder / VALIDATION_FILE)
    current = record and record.get("checks_version") == CHECKS_VERSION and record.get("signature") == signature(folder)
    return record if current else None


def _reused(folder: Path, record: dict) -> RunValidation:
    return RunValidation(folder, record["status"], [Failure(**f) for f in record["failures"]], reused=True,
                         signature=record["signature"],
                         warnings=[Failure(**f, level=WARNING) for f in record.get("warnings", [])])


def validate_runs(folders: list[Path], limits: Limits, docs: DataDocs | None = None) -> list[RunValidation]:
    """Validates a batch of runs together and records each one's verdict in its validation.json (a run folder that is
    a symbolic link is quarantined, and nothing written through it)."""
    checking = [folder for folder in folders if not is_link(folder)]
    before = {folder: signature(folder) for folder in checking}
    if checking:  # the checks (pandas, Arrow's CSV reader, Great Expectations) load only when a run needs them
        from ect.validation.checks import check_runs
    checked = check_runs(checking, limits, docs) if checking else {}
    results = []
    for folder in folders:
        if folder not in checked:
            results.append(linked_folder(folder))
            continue
        errors = [f for f in checked[folder] if f.level == ERROR]
        warnings = [f for f in checked[folder] if f.level != ERROR]
        status = QUARANTINED if errors else PASSED
        write_json(folder / VALIDATION_FILE, {
            "status": status, "validated_at": now_utc(), "checks_version": CHECKS_VERSION, "signature": before[folder],
            "limits": limits.__dict__, "failures": [f.to_dict() for f in errors],
            "warnings": [f.to_dict() for f in warnings],
        })
        results.append(RunValidation(folder, status, errors, signature=before[folder], warnings=warnings))
    return results


def quarantine_after_aggregation(folder: Path, signature: dict, error: BaseException) -> Failure:
    """Quarantines a run that passed validation but failed to aggregate: its validation.json says so, with the
    error, for the files it was about (the run is validated again when they change, or with --force)."""
    failure = Failure(AGGREGATION, "aggregation_error", None, f"aggregation error: {type(error).__name__}: {error}")
    record = read_json(folder / VALIDATION_FILE) or {}
    write_json(folder / VALIDATION_FILE, {
        "status": QUARANTINED, "validated_at": record.get("validated_at", now_utc()), "quarantined_at": now_utc(),
        "checks_version": record.get("checks_version"),
        "signature": signature, "limits": record.get("limits"), "failures": [failure.to_dict()],
        "warnings": record.get("warnings", []),
    })
    return failure


def validate_run(folder: Path, limits: Limits, force: bool = False, docs: DataDocs | None = None) -> RunValidation:
    record = None if force or docs is not None else current_validation(folder)
    if record is not None:
        return _reused(folder, record)
    return validate_runs([folder], limits, docs)[0]


def validate_raw(raw_dir: Path, limits: Limits, summary_dir: Path, force: bool = False,
                 data_docs: Path | None = None, only: set[RunKey] | None = None) -> list[RunValidation]:
    """Validates every run under raw_dir whose files changed since its last verdict (all with force), BATCH_RUNS at a
    time; writes summary_dir/summary.json and summary.txt, and with `data_docs` a Great Expectations project there
    whose Data Docs (HTML) show every validation (one run at a time, named by run). With `only`, these runs alone
    (with a run store: the store's runs)."""
    folders, linked = find_runs_and_links(raw_dir, only)
    links = [linked_folder(link, raw_dir) for link in linked]
    if data_docs:
        from ect.validation.checks import DataDocs
    docs = DataDocs(data_docs) if data_docs else None
    records = {} if force or docs is not None else {f: current_validation(f) for f in folders}
    todo = [folder for folder in folders if records.get(folder) is None]
    fresh = {}
    for batch in ([[folder] for folder in todo] if docs is not None else batches(todo)):
        fresh.update((r.folder, r) for r in validate_runs(batch, limits, docs))
        if len(batch) < len(todo):
            log.info(f"validated {len(fresh)}/{len(todo)} runs")
    results = [fresh[folder] if folder in fresh else _reused(folder, records[folder]) for folder in folders]
    results = sorted(results + links, key=lambda r: r.run.split("/"))
    write_summary(results, raw_dir, summary_dir)
    log.info(summary_table(results, every_run=False))
    if docs is not None:
        log.info(f"Great Expectations Data Docs: {docs.index()}")
    return results


def summary_table(results: list[RunValidation], every_run: bool = True) -> str:
    """One line per run, its status, then its errors (what quarantined it) and its warnings (kept, prefixed). Without
    `every_run` (the terminal), the runs that passed without a warning are counted, not listed: a history of
    hundreds of runs would otherwise bury what needs reading."""
    passed = sum(r.status == PASSED for r in results)
    warned = sum(r.status == PASSED and bool(r.warnings) for r in results)
    reused = sum(bool(r.reused) for r in results)
    lines = [f"validation: {passed} passed, {len(results) - passed} quarantined, {len(results)} runs; "
             f"{warned} passed with warnings"]
    listed = [r for r in results if every_run or r.status != PASSED or r.warnings]
    if not every_run:
        lines[0] += f" ({len(results) - reused} checked now, {reused} unchanged since their last validation)"
    width = max((len(r.run) for r in results), default=3)
    for r in listed:
        lines.append(f"  {r.run:<{width}}  {r.status}" + (f", {len(r.warnings)} warning(s)" if r.warnings else ""))
        for f in r.failures:
            where = f"{f.file}" + (f" [{f.column}]" if f.column else "")
            lines.append(f"      {where}: {f.check}: {f.details}")
        for f in r.warnings:
            where = f"{f.file}" + (f" [{f.column}]" if f.column else "")
            lines.append(f"      warning: {where}: {f.check}: {f.details}")
    if len(listed) < len(results):
        lines.append(f"  {len(results) - len(listed)} run(s) passed without a warning (each listed in summary.txt)")
    return "\n".join(lines)


def write_summary(results: list[RunValidation], raw_dir: Path, summary_dir: Path) -> None:
    summary_dir.mkdir(parents=True, exist_ok=True)
    write_json(summary_dir / "summary.json", {
        "raw_dir": str(raw_dir), "validated_at": now_utc(),
        "passed": sum(r.status == PASSED for r in results),
        "quarantined": sum(r.status == QUARANTINED for r in results),
        "passed_with_warnings": sum(r.status == PASSED and bool(r.warnings) for r in results),
        "runs": [{"run": r.run, "folder": str(r.folder), "status": r.status,
                  "failures": [f.to_dict() for f in r.failures],
                  "warnings": [f.to_dict() for f in r.warnings]} for r in results],
    })
    write_text(summary_dir / "summary.txt", summary_table(results) + "\n")
