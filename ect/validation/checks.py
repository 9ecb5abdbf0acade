"""The checks of raw run folders, a batch of runs at a time: each run read and reduced to its facts, one at a time,
then a batch's facts validated by Great Expectations.

Per run (ect.validation.reading, ect.validation.facts): the files must parse; each CSV is typed a block at a time, the
checks of each row (numbers where numbers belong, real UTC times, ranges, power against its limit and floor) made on
the block, and the checks across rows (order, energy-counter steps, gaps, coverage of the window, the declared interval
against the spacing, the counter against the integrated power, the steady state) on the few columns kept for the whole
run; the samples are then let go. A batch's facts go through Great Expectations in one validation per table
(ect.validation.suites): the sample checks (one row per run and check), the run facts (one row per run), the manifest
(one row per run) and its fields (one row per run and field). Each failure keeps the expectation that names it, its
column and the run's offending values.

Validation is the gate of aggregation: everything the aggregation and the analysis rely on is checked here, so that a
run that passed is always aggregated. A failure is an error (the run is quarantined) or a warning (the run is kept). An
unexpected error while checking a run becomes that run's failure ("validator error: ..."); one while validating a
batch's facts, the batch's halves are validated apart until the run at fault is alone.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from ect.processes import ordered_map, worker_count
from ect.raw.layout import CPU_FILE, GPU_FILE, MANIFEST_FILE, RunKey
from ect.validation.facts import (HOT_START_CHECK, SampleCheck, Samples, coverage_facts, file_facts, manifest_row,
                                  plain, prefix, steady_facts)
from ect.validation.facts import sensor_facts as _sensor_facts
from ect.validation.fields import field_rows, meaning, offending
from ect.validation.gx import DataDocs, ready, unexpected, warm_up
from ect.validation.reading import NOT_PLAIN, plain_header, read_text_csv, text_blocks
from ect.validation.reading import read_run as _read_run
from ect.validation.suites import (OFFENDING, fact_details, facts_expectations, field_expectations, hot_start_details,
                                   manifest_expectations, sample_expectations)
from ect.validation.verdicts import ERROR, Failure, Limits

__all__ = ["DataDocs", "check_runs"]

log = logging.getLogger(__name__)

VALIDATOR = "(validator)"  # the file of a validator error


def validator_error(error: BaseException) -> Failure:
    """An unexpected error while checking a run, as that run's failure."""
    return Failure(VALIDATOR, "validator_error", None, f"validator error: {type(error).__name__}: {error}")


@dataclass
class _Checked:
    """One run reduced to what the suites validate: the failures of reading it, its sample checks, its facts, its
    manifest's row and field rows. No sample is held."""

    folder: Path
    failures: list[Failure]
    data: dict = field(default_factory=dict)  # manifest.json as read
    sample_checks: list[SampleCheck] = field(default_factory=list)
    facts: dict = field(default_factory=dict)
    manifest_row: dict | None = None
    field_rows: list[dict] = field(default_factory=list)
    error: str | None = None  # an unexpected error while checking the run (its failure is validator_error's)


def _check_run(folder: Path, limits: Limits) -> _Checked:
    run = _read_run(folder)
    checked = _Checked(folder, list(run.failures), run.data)
    if run.manifest is None:
        return checked
    times, spans = {}, {}
    for name in run.csv_files:
        samples, failures = _samples(folder, name, limits)
        checked.failures += failures
        if samples is None:
            continue
        columns = samples.columns
        checked.sample_checks += samples.checks.values()
        checked.facts.update(file_facts(name, columns, samples, run.interval_s, limits))
        checked.facts.update(_sensor_facts(name, samples, run.interval_s, run.window_s))
        times[name] = (None, None) if math.isnan(samples.first_ms) else (samples.first_ms, samples.last_ms)
        if samples.spans:
            spans[name] = samples.spans
        del samples  # before the next file is read
    if not times and not any(f.file in (CPU_FILE, GPU_FILE) for f in checked.failures):
        checked.failures.append(Failure(CPU_FILE, "file_readable", None, "file is missing, and so is gpu.csv: the run "
                                                                          "has no samples (the manifest names no sensor)"))
    checked.manifest_row = manifest_row(run.data, *times.get(run.energy_file(set(times)), (None, None)))
    checked.field_rows = field_rows(folder, run.data, run.metrics)
    if checked.facts:
        checked.facts.update(steady_facts(folder))
    start, end = run.window_s
    if start is not None and end is not None and checked.facts:
        for file, file_spans in spans.items():
            checked.facts.update(coverage_facts(file, file_spans, start, end, run.interval_s))
    return checked


def _samples(folder: Path, name: str, limits: Limits) -> tuple[Samples | None, list[Failure]]:
    """A CSV of the run checked a block at a time as it streams from the file; one that is not plain read whole the
    slow way, its flaws named (the lines that can be read still checked)."""
    try:
        names = plain_header(folder / name)
        samples = Samples(name, names, limits)
        for block in text_blocks(folder / name, names):
            samples.add(block)
        return samples.finish(), []
    except NOT_PLAIN:
        pass
    table, failures = read_text_csv(folder, name)
    if table is None:
        return None, failures
    samples = Samples(name, table.column_names, limits)
    for block in table.to_batches():
        samples.add(block)
    return samples.finish(), failures


def _check_safely(folder: Path, limits: Limits) -> _Checked:
    try:
        return _check_run(folder, limits)
    except Exception as error:  # noqa: BLE001 - one run's error is its own failure, the others get verdicts
        return _Checked(folder, [validator_error(error)], error=f"{type(error).__name__}: {error}")


# A batch's runs are read and checked in worker processes from this much CSV on (bench/legacy_speed.py, 2 CPUs: 300
# one-hour runs, 163 MB, validate in 4.8 s instead of 5.6 s; below about 100 MB, Great Expectations' import, which the
# reading overlaps, takes longer than the reading).
PROCESS_MIN_BYTES = 100_000_000


def _csv_bytes(folders: list[Path]) -> int:
    return sum(os.path.getsize(path) for folder in folders for name in (CPU_FILE, GPU_FILE)
               if os.path.isfile(path := os.path.join(folder, name)))


def check_runs(folders: list[Path], limits: Limits, docs: DataDocs | None = None) -> dict[Path, list[Failure]]:
    """Every failed check of each run folder of a batch (empty for a valid run): each run read and reduced to its
    facts (in worker processes for a large batch), then the batch's facts in a handful of validations. Never raises
    for a run."""
    if docs is None:
        warm_up()
    checked = []
    workers = worker_count(_csv_bytes(folders), PROCESS_MIN_BYTES)
    if workers > 1:
        log.info(f"reading and checking {len(folders)} runs in {workers} processes")
    for number, run in enumerate(ordered_map(partial(_check_safely, limits=limits), folders, workers), 1):
        if run.error:
            log.warning(f"{RunKey.of_folder(run.folder).name}: validator error: {run.error}")
        checked.append(run)
        if number % 100 == 0:
            log.info(f"read and checked {number}/{len(folders)} runs of the batch")
    return _validate_safely(checked, limits, docs)


def _validate_safely(checked: list[_Checked], limits: Limits, docs) -> dict[Path, list[Failure]]:
    """The batch's facts validated; a batch that raises is validated again in halves, and a run that raises alone
    gets the error as its failure."""
    try:
        return _validate(checked, limits, docs)
    except Exception as error:  # noqa: BLE001 - whatever a run's facts do to the suites, the others get verdicts
        if len(checked) == 1:
            log.warning(f"{RunKey.of_folder(checked[0].folder).name}: validator error: {type(error).__name__}: {error}")
            return {checked[0].folder: [validator_error(error)]}
        log.warning(f"validating a batch of {len(checked)} runs raised {type(error).__name__}: {error}; "
                    f"validating its halves apart")
        half = len(checked) // 2
        return {**_validate_safely(checked[:half], limits, docs), **_validate_safely(checked[half:], limits, docs)}


def _validate(checked: list[_Checked], limits: Limits, docs) -> dict[Path, list[Failure]]:
    ready()
    import pandas as pd

    label = RunKey.of_folder(checked[0].folder).name if len(checked) == 1 else f"batch of {len(checked)} runs"
    found: dict[int, list[Failure]] = {n: [] for n in range(len(checked))}
    rows, checks = [], []
    for n, run in enumerate(checked):
        for check in run.sample_checks:
            rows.append({"_run": n, "file": check.file, "check": check.check, "column": check.column,
                         **{column: check.offending if level == check.level else None
                            for level, column in OFFENDING.items()}})
            checks.append((n, check))
    for _, _, _, _, failed in unexpected(pd.DataFrame(rows), sample_expectations(), "", f"{label} samples", docs):
        for position, _ in failed:
            n, check = checks[position]
            found[n].append(check.failure())
    with_facts = [n for n, run in enumerate(checked) if run.facts]
    if with_facts:
        facts = pd.DataFrame([{**{k: v for k, v in checked[n].facts.items() if not isinstance(v, (list, tuple))},
                               "_run": n} for n in with_facts])
        present = [file for file in (CPU_FILE, GPU_FILE) if f"{prefix(file)}rows" in facts]
        for n, failures in _failures(facts, facts_expectations(present, set(facts.columns)), "", f"{label} facts",
                                     docs).items():
            found[n] += [replace(f, details=fact_details(f, checked[n].facts, limits)) for f in failures]
    with_manifest = [n for n, run in enumerate(checked) if run.manifest_row is not None]
    if with_manifest:
        manifests = pd.DataFrame([{**checked[n].manifest_row, "_run": n} for n in with_manifest])
        for n, failures in _failures(manifests, manifest_expectations(set(manifests.columns)), MANIFEST_FILE,
                                     f"{label} manifest", docs).items():
            found[n] += [replace(f, details=hot_start_details(checked[n].data)) if f.check == HOT_START_CHECK else f
                         for f in failures]
        fields = pd.DataFrame([{**row, "_run": n} for n in with_manifest for row in checked[n].field_rows])
        for n, failures in _field_failures(fields, f"{label} manifest fields", docs).items():
            found[n] += failures
    return {run.folder: run.failures + found[n] for n, run in enumerate(checked)}


def _failures(frame, expectations: list, file: str, suite_name: str, docs) -> dict[int, list[Failure]]:
    """Validates a batch's table (its `_run` column names each row's run); the failures of each run, with its own
    offending values."""
    runs = frame["_run"].to_numpy()
    found: dict[int, list[Failure]] = {}
    for failed_file, check, column, meta, failed in unexpected(frame, expectations, file, suite_name, docs):
        by_run: dict[int, list] = {}
        for position, value in failed:
            by_run.setdefault(int(runs[position]), []).append(plain(value))
        for run, values in by_run.items():
            detail = None if "meaning" not in meta else \
                f"expected {meta['meaning']}: {len(values)} offending value(s), e.g. {values[:5]}"
            found.setdefault(run, []).append(Failure(failed_file, check, column, detail, meta.get("level", ERROR)))
    return found


def _field_failures(frame, suite_name: str, docs) -> dict[int, list[Failure]]:
    """Validates the field rows of a batch (ect.validation.fields); each failure named by its row's file and field."""
    rows = frame.to_dict("records")
    found: dict[int, list[Failure]] = {}
    for _, check, _, _, failed in unexpected(frame, field_expectations(), MANIFEST_FILE, suite_name, docs):
        for position, _ in failed:
            row = rows[position]
            value = plain(offending(check, row))
            found.setdefault(int(row["_run"]), []).append(Failure(
                row["file"], check, row["field"],
                f"expected {meaning(check, row)}: 1 offending value(s), e.g. {[value]}"))
    return found
