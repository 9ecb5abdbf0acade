"""The validator against a corpus of corrupted raw runs: each one is quarantined with its named reason, and the
valid runs of the same batch are aggregated exactly as without them."""

import csv
import json
import shutil

import pandas as pd
import pytest

from conftest import log_lines
from raw_runs import write_valid_run
from ect.aggregate.aggregate import aggregate
from ect.config import load_config
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc, iso_utc_ms
from ect.raw.layout import VALIDATION_FILE
from ect.validation import PASSED, QUARANTINED, Limits, validate_raw, validate_run
from ect.validation.validate import CHECKS_VERSION

LIMITS = Limits()  # the defaults of config/experiment.yaml: gap 20 intervals, 3 samples, 1.5 x the power limit
def describe(failures) -> str:
    return "\n".join(f"  {f.file} [{f.column}] {f.check}: {f.details}" for f in failures) or "  (no failures)"


# --------------------------------------------------------------------------------------------------------------
# The corpus: one mutation per corruption of the issue


def read_csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv_rows(path, rows, columns):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)


def edit_samples(folder, name, edit):
    """edit(rows) of gpu.csv or cpu.csv, rows as dicts, written back with the contract's columns."""
    rows = read_csv_rows(folder / name)
    edit(rows)
    write_csv_rows(folder / name, rows, GPU_COLUMNS if name == "gpu.csv" else CPU_COLUMNS)


def edit_json(folder, name, edit):
    data = json.loads((folder / name).read_text())
    edit(data)
    (folder / name).write_text(json.dumps(data, indent=2) + "\n")


def edit_gpu(folder, edit):
    edit_samples(folder, "gpu.csv", edit)


def edit_manifest(folder, edit):
    edit_json(folder, "manifest.json", edit)


def truncate_last_row(folder):
    data = (folder / "gpu.csv").read_bytes()
    body, last = data[:-2].rsplit(b"\r\n", 1)  # the last row, without its line end
    (folder / "gpu.csv").write_bytes(body + b"\r\n" + last[: len(last) // 2])


def empty_file(folder):
    (folder / "gpu.csv").write_bytes(b"")


def header_only(folder):
    with open(folder / "cpu.csv", "w", newline="") as handle:
        csv.writer(handle).writerow(CPU_COLUMNS)


def missing_column(folder):
    rows = read_csv_rows(folder / "gpu.csv")
    columns = [c for c in GPU_COLUMNS if c != "power_limit_W"]
    for row in rows:
        del row["power_limit_W"]
    write_csv_rows(folder / "gpu.csv", rows, columns)


def nan_power(folder):
    edit_gpu(folder, lambda rows: rows[10].update(power_W=""))


def negative_power(folder):
    edit_gpu(folder, lambda rows: rows[10].update(power_W="-5.25"))


def power_over_limit(folder):
    edit_gpu(folder, lambda rows: rows[10].update(power_W="5000.0"))


def timestamps_backwards(folder):
    def swap(rows):
        rows[10]["timestamp"], rows[11]["timestamp"] = rows[11]["timestamp"], rows[10]["timestamp"]
    edit_gpu(folder, swap)


def gap_30_s(folder):
    """The sampler stalled for 30 s: every sample of the second half (both files) and the window's end shift."""
    for name, columns in (("gpu.csv", GPU_COLUMNS), ("cpu.csv", CPU_COLUMNS)):
        rows = read_csv_rows(folder / name)
        for row in rows[len(rows) // 2:]:
            t_ms = pd.Timestamp(row["timestamp"]).value // 1_000_000
            row["timestamp"] = iso_utc_ms(t_ms + 30_000)
        write_csv_rows(folder / name, rows, columns)

    def shift_end(manifest):
        manifest["window"]["end_unix_s"] += 30
        manifest["window"]["end"] = iso_utc(manifest["window"]["end_unix_s"])
    edit_manifest(folder, shift_end)


def unit_text(folder):
    edit_gpu(folder, lambda rows: rows[10].update(power_W="119.17 W"))


def missing_manifest(folder):
    (folder / "manifest.json").unlink()


def invalid_manifest(folder):
    (folder / "manifest.json").write_text('{"run_id": "run-1", "status": "comp')


def still_running(folder):
    edit_manifest(folder, lambda manifest: manifest.update(status="running"))


# (name, mutate, file, check, column, text the details must contain: the offending value, where there is one)
LAST_STAMP = iso_utc_ms(1_795_000_000_000 + 49 * 100)  # the cut-off last row of a default run begins with it
CORRUPTIONS = [
    ("truncated_row", truncate_last_row, "gpu.csv", "file_complete", None, LAST_STAMP),
    ("empty_file", empty_file, "gpu.csv", "file_readable", None, "empty"),
    ("header_only", header_only, "cpu.csv", "expect_table_row_count_to_be_between", None, "observed 0"),
    ("missing_column", missing_column, "gpu.csv", "expect_table_columns_to_match_set", None, "power_limit_W"),
    ("nan_power", nan_power, "gpu.csv", "expect_column_values_to_not_be_null", "power_W", None),
    ("negative_power", negative_power, "gpu.csv", "expect_column_values_to_be_between", "power_W", "-5.25"),
    ("power_over_limit", power_over_limit, "gpu.csv", "expect_column_pair_values_a_to_be_greater_than_b", "power_W",
     "(1050.0, 5000.0)"),
    ("timestamps_backwards", timestamps_backwards, "gpu.csv", "expect_column_values_to_be_between",
     "timestamp_step_s", "-0.1"),
    ("gap_30_s", gap_30_s, "gpu.csv", "expect_column_max_to_be_between", "timestamp_step_s", "observed 30"),
    ("unit_text", unit_text, "gpu.csv", "expect_column_values_to_match_regex", "power_W", "119.17 W"),
    ("missing_manifest", missing_manifest, "manifest.json", "file_readable", None, "missing"),
    ("invalid_manifest", invalid_manifest, "manifest.json", "file_readable", None, "JSON"),
    ("still_running", still_running, "manifest.json", "expect_column_values_to_be_in_set", "status", "running"),
]
NAMES = [c[0] for c in CORRUPTIONS]


KNOWN_DETAIL_GAPS = {}  # reasons the validator names without the offending value (none left)


def corrupted_run(folder, mutate):
    write_valid_run(folder)
    mutate(folder)
    return folder


def matching(failures, file, check, column):
    return [f for f in failures if (f.file, f.check, f.column) == (file, check, column)]


def reasons(failures):
    return [{k: f[k] for k in ("file", "check", "column")} for f in failures]


# --------------------------------------------------------------------------------------------------------------
# One batch, validated once for the whole module (Great Expectations takes ~0.5 s a run): valid and corrupted
# runs side by side, and a clean copy of the valid runs alone.

VALID = [  # (environment, architecture, run_id, write_valid_run arguments)
    ("local", "tiny_cnn", "20261120T010000Z-rep00", {"power": lambda t: 100 + 20 * t}),
    ("local", "vgg16", "20261120T010000Z-rep00", {"power": lambda t: 250 - 3 * t, "gpus": 2}),
    ("cloud", "resnet50", "20261121T020000Z-rep01",
     {"power": lambda t: 180 + 40 * (t % 1), "counter": False, "start_ms": 1_795_100_000_000}),
    ("cloud", "xception", "20261121T020000Z-rep02", {"power": lambda t: 300 - 10 * t, "counter": "sparse"}),
]
VALID_RUNS = {"/".join(v[:3]) for v in VALID}
CORRUPT_RUNS = {name: f"local/mobilenet_v2/corrupt-{name}" for name in NAMES}


def files_of(folder):
    """Every file of a run folder but its validation record, with its bytes."""
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != VALIDATION_FILE}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    mixed, clean = root / "mixed" / "raw", root / "clean" / "raw"
    for environment, architecture, run_id, kwargs in VALID:
        write_valid_run(mixed / environment / architecture / run_id, **kwargs)
    corrupted = {name: corrupted_run(mixed / CORRUPT_RUNS[name], mutate) for name, mutate, *_ in CORRUPTIONS}
    before = {name: files_of(folder) for name, folder in corrupted.items()}
    with log_lines() as lines:
        results = validate_raw(mixed, LIMITS, root / "validation")
    # The valid runs alone: byte-for-byte copies (copytree keeps the modification times, so their validation
    # records stay current and they are not validated a second time: a run's validation depends on it alone).
    for run in VALID_RUNS:
        shutil.copytree(mixed / run, clean / run)
    return {"root": root, "mixed": mixed, "clean": clean, "corrupted": corrupted, "before": before,
            "lines": lines, "results": {r.run: r for r in results}}


def test_valid_runs_pass(batch):
    for run in VALID_RUNS:  # one GPU with a counter, two GPUs, no counter (integrated power), a sparse counter
        result = batch["results"][run]
        assert result.status == PASSED, f"{run}:\n{describe(result.failures)}"
        assert result.failures == []
        assert json.loads((result.folder / VALIDATION_FILE).read_text())["status"] == PASSED


@pytest.mark.parametrize("name, mutate, file, check, column, named", CORRUPTIONS, ids=NAMES)
def test_corruption_is_quarantined_with_its_reason(batch, name, mutate, file, check, column, named):
    result = batch["results"][CORRUPT_RUNS[name]]
    assert result.status == QUARANTINED, describe(result.failures)
    assert matching(result.failures, file, check, column), \
        f"expected a failure ({file}, {check}, {column}); got:\n{describe(result.failures)}"
    record = json.loads((result.folder / VALIDATION_FILE).read_text())
    assert record["status"] == QUARANTINED
    assert {"file": file, "check": check, "column": column} in reasons(record["failures"])


@pytest.mark.parametrize("name, mutate, file, check, column, named", [
    pytest.param(*c, id=c[0], marks=[pytest.mark.xfail(strict=True, reason=KNOWN_DETAIL_GAPS[c[0]])]
                 if c[0] in KNOWN_DETAIL_GAPS else [])
    for c in CORRUPTIONS if c[5] is not None])
def test_failure_details_name_the_offending_value(batch, name, mutate, file, check, column, named):
    result = batch["results"][CORRUPT_RUNS[name]]
    hits = matching(result.failures, file, check, column)
    assert any(named in f.details for f in hits), \
        f"expected {named!r} in the details of ({file}, {check}, {column}); got:\n{describe(result.failures)}"


def test_corpus_covers_the_issue():
    assert NAMES == ["truncated_row", "empty_file", "header_only", "missing_column", "nan_power", "negative_power",
                     "power_over_limit", "timestamps_backwards", "gap_30_s", "unit_text", "missing_manifest",
                     "invalid_manifest", "still_running"]


def assert_logged_is_the_summary_without_clean_runs(text: str, logged: str) -> None:
    """What `ect validate` logs: summary.txt's header with the checked/kept counts, every run that needs reading
    with its errors and warnings as summary.txt has them, and the count of the clean runs left out."""
    header, *lines = text.rstrip("\n").splitlines()
    logged_header, *logged_lines = logged.splitlines()
    assert logged_header.startswith(header + " (") and "checked now" in logged_header
    blocks, current = [], None
    for line in lines:
        if not line.startswith("      "):
            current = [line]
            blocks.append(current)
        else:
            current.append(line)
    needs_reading = [line for block in blocks if not block[0].rstrip().endswith("  passed") for line in block]
    clean = len(blocks) - sum(1 for block in blocks if not block[0].rstrip().endswith("  passed"))
    assert logged_lines[:len(needs_reading)] == needs_reading
    assert logged_lines[len(needs_reading):] == (
        [f"  {clean} run(s) passed without a warning (each listed in summary.txt)"] if clean else [])


def test_summary_names_every_quarantined_run_and_its_reasons(batch):
    results = batch["results"]
    assert {run for run, r in results.items() if r.status == PASSED} == VALID_RUNS
    assert {run for run, r in results.items() if r.status == QUARANTINED} == set(CORRUPT_RUNS.values())
    summary = json.loads((batch["root"] / "validation" / "summary.json").read_text())
    assert (summary["passed"], summary["quarantined"]) == (len(VALID), len(CORRUPTIONS))
    assert len(summary["runs"]) == len(VALID) + len(CORRUPTIONS)
    text = (batch["root"] / "validation" / "summary.txt").read_text()
    assert text.startswith(f"validation: {len(VALID)} passed, {len(CORRUPTIONS)} quarantined")
    assert_logged_is_the_summary_without_clean_runs(text, batch["lines"][-1])
    runs = {entry["run"]: entry for entry in summary["runs"]}
    for name, _, file, check, column, _ in CORRUPTIONS:
        entry = runs[CORRUPT_RUNS[name]]
        assert entry["status"] == QUARANTINED
        assert {"file": file, "check": check, "column": column} in reasons(entry["failures"]), entry
        assert CORRUPT_RUNS[name] in text and f"{file}{f' [{column}]' if column else ''}: {check}" in text
    for run in VALID_RUNS:
        assert runs[run]["status"] == PASSED and runs[run]["failures"] == []


def test_valid_runs_are_aggregated_exactly_as_without_the_corrupted_ones(batch, project):
    environments = load_config(project).environments
    root = batch["root"]
    result = aggregate(batch["mixed"], root / "mixed" / "out", environments, LIMITS)
    expected = aggregate(batch["clean"], root / "clean" / "out", environments, LIMITS)
    assert (result.runs, expected.runs) == (len(VALID), len(VALID))
    assert expected.skipped == []
    assert len(result.skipped) == len(CORRUPTIONS)
    assert all(any(line.startswith(f"{CORRUPT_RUNS[name]}:") for line in result.skipped) for name in NAMES), \
        result.skipped
    for part in ("processed/runs.parquet", "interim/samples.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(root / "mixed" / "out" / part),
                                      pd.read_parquet(root / "clean" / "out" / part))
    runs = pd.read_parquet(root / "mixed" / "out" / "processed" / "runs.parquet")
    assert sorted(runs["architecture"]) == ["resnet50", "tiny_cnn", "vgg16", "xception"]
    assert runs["total_energy_J"].gt(0).all()
    sources = dict(zip(runs["architecture"], runs["gpu_energy_source"]))
    assert sources == {"resnet50": "integrated", "tiny_cnn": "counter", "vgg16": "counter", "xception": "counter"}

    # Quarantined runs stay where they are, untouched, and say why.
    for name, folder in batch["corrupted"].items():
        assert files_of(folder) == batch["before"][name], name
        record = json.loads((folder / VALIDATION_FILE).read_text())
        assert record["status"] == QUARANTINED and record["failures"], name


def test_a_fixed_run_is_validated_again_and_passes(batch, tmp_path):
    folder = tmp_path / "raw" / "local" / "tiny_cnn" / "run-1"
    shutil.copytree(batch["corrupted"]["negative_power"], folder)  # with its current validation record
    again = validate_run(folder, LIMITS)
    assert again.reused and again.status == QUARANTINED
    assert matching(again.failures, "gpu.csv", "expect_column_values_to_be_between", "power_W")

    write_valid_run(folder)  # re-measured: every file rewritten validly
    fixed = validate_run(folder, LIMITS)
    assert not fixed.reused, "the signature changed: the run must be validated again"
    assert fixed.status == PASSED, describe(fixed.failures)
    assert fixed.failures == []
    assert json.loads((folder / VALIDATION_FILE).read_text())["status"] == PASSED
    assert validate_run(folder, LIMITS).reused


def test_a_verdict_of_older_checks_is_not_reused(tmp_path):
    folder = tmp_path / "raw" / "local" / "tiny_cnn" / "run-1"
    write_valid_run(folder)
    first = validate_run(folder, LIMITS)
    assert first.status == PASSED and not first.reused and validate_run(folder, LIMITS).reused
    record = json.loads((folder / VALIDATION_FILE).read_text())
    del record["checks_version"]  # as written before the measurement cross-checks
    (folder / VALIDATION_FILE).write_text(json.dumps(record))
    again = validate_run(folder, LIMITS)
    assert not again.reused and again.status == PASSED
    assert json.loads((folder / VALIDATION_FILE).read_text())["checks_version"] == CHECKS_VERSION == 3


def test_each_problem_is_reported_once_under_its_own_name(batch):
    header_only = batch["results"][CORRUPT_RUNS["header_only"]].failures
    assert not [f for f in header_only if f.column == "timestamp_step_s"], describe(header_only)  # no gaps without samples
    unit_text = batch["results"][CORRUPT_RUNS["unit_text"]].failures
    assert [(f.check, f.column) for f in unit_text if f.column == "power_W"] == [
        ("expect_column_values_to_match_regex", "power_W")], describe(unit_text)  # text, not also "empty"
    missing = batch["results"][CORRUPT_RUNS["missing_column"]].failures
    assert any("missing ['power_limit_W'], unexpected []" in f.details for f in missing), describe(missing)


def test_great_expectations_data_docs_show_every_validation(tmp_path):
    raw = tmp_path / "raw"
    write_valid_run(raw / "local" / "vgg16" / "good")
    corrupted_run(raw / "local" / "vgg16" / "bad", negative_power)
    docs = tmp_path / "gx-project"
    results = validate_raw(raw, Limits(), tmp_path / "validation", data_docs=docs)
    assert [r.status for r in results] == [QUARANTINED, "passed"]  # bad, good (sorted)
    index = docs / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    page = index.read_text()
    assert all(f"local__vgg16__{run}__{table}" in page for run in ("bad", "good")
               for table in ("samples", "facts", "manifest", "manifest__fields"))


def test_batches_close_at_their_run_count_or_size(tmp_path, monkeypatch):
    import ect.validation.validate as validate

    folders = [write_valid_run(tmp_path / "local" / "vgg16" / f"r{k}") for k in range(5)]
    monkeypatch.setattr(validate, "BATCH_RUNS", 2)
    assert [len(b) for b in validate.batches(folders)] == [2, 2, 1]
    one_run = sum((folders[0] / name).stat().st_size for name in ("gpu.csv", "cpu.csv"))
    monkeypatch.setattr(validate, "BATCH_RUNS", 100)
    monkeypatch.setattr(validate, "BATCH_BYTES", int(one_run * 2.5))
    assert [len(b) for b in validate.batches(folders)] == [2, 2, 1]
    monkeypatch.setattr(validate, "BATCH_BYTES", 1)  # a run larger than a batch is a batch of its own
    assert [len(b) for b in validate.batches(folders)] == [1, 1, 1, 1, 1]
    results = validate_raw(tmp_path, LIMITS, tmp_path / "validation")
    assert [r.status for r in results] == [PASSED] * 5
