"""Validation is the gate of aggregation: a hostile corpus beyond test_validation's (rows, manifests, metrics, windows,
coverage, counters), each run with its verdict and named reason, validated as one batch; the valid runs of the batch
aggregated exactly as without them. Then: a run that raises in the validator gets "validator error" and the others
their verdicts; a run that passed and still fails to aggregate is quarantined and the others aggregated; aggregating a
raw folder that lacks runs of the processed dataset is refused, and nothing changes, unless removal is allowed."""

import json
import math
import shutil

import pandas as pd
import pytest

from conftest import log_lines
from raw_runs import write_valid_run
from test_validation import describe, edit_gpu, edit_json, edit_manifest, edit_samples, files_of, matching
from ect import pipeline
from ect.aggregate.aggregate import RemovalRefused, aggregate
from ect.config import load_config
from ect.errors import ConfigError, RunsNotMeasured
from ect.raw.columns import iso_utc_ms
from ect.raw.layout import VALIDATION_FILE
from ect.validation import PASSED, QUARANTINED, Limits, validate_raw, validate_run

LIMITS = Limits()
START_MS = 1_795_000_000_000  # write_valid_run's first sample; one every 100 ms, 50 of them
KEY = ["environment", "architecture", "run_id"]


# --------------------------------------------------------------------------------------------------------------
# Mutations


def edit_cpu(folder, edit):
    edit_samples(folder, "cpu.csv", edit)


def edit_metrics(folder, edit):
    edit_json(folder, "metrics.json", edit)


def edit_line(name, number, transform):
    """A bytes-level edit of line `number` (1: the header) of a CSV."""
    def mutate(folder):
        lines = (folder / name).read_bytes().split(b"\r\n")
        lines[number - 1] = transform(lines[number - 1])
        (folder / name).write_bytes(b"\r\n".join(lines))
    return mutate


def gpu_cell(column, value, row=10):
    return lambda folder: edit_gpu(folder, lambda rows: rows[row].update({column: value}))


def cpu_cell(column, value, row=10):
    return lambda folder: edit_cpu(folder, lambda rows: rows[row].update({column: value}))


def manifest_field(path, value):
    def set_field(manifest):
        *parents, name = path.split(".")
        for parent in parents:
            manifest = manifest[parent]
        manifest[name] = value
    return lambda folder: edit_manifest(folder, set_field)


def metrics_field(name, value):
    return lambda folder: edit_metrics(folder, lambda metrics: metrics.update({name: value}))


def write_text(name, text):
    return lambda folder: (folder / name).write_text(text)


def no_power_limit(rows):
    for row in rows:
        row["power_limit_W"] = ""


def power_50_kW_without_limit(rows):
    no_power_limit(rows)
    rows[10]["power_W"] = "50000.0"


def counter_jump(rows, jump_mJ=500_000_000, limit=True):
    if not limit:
        no_power_limit(rows)
    for row in rows[20:]:
        row["energy_counter_mJ"] = str(int(row["energy_counter_mJ"]) + jump_mJ)


def rapl(rows, jump_uJ=0):
    """RAPL package readings of a 30 W CPU (3 J a sample), with a jump from row 20 on."""
    for i, row in enumerate(rows):
        row["rapl_package_energy_uJ"] = str(3_000_000 * i + (jump_uJ if i >= 20 else 0))
        row["cpu_power_source"] = "rapl"


def window(edit):
    return lambda folder: edit_manifest(folder, lambda manifest: edit(manifest["window"]))


def reversed_window(w):
    w["start_unix_s"], w["end_unix_s"] = w["end_unix_s"], w["start_unix_s"]


def zero_length_window(w):
    w["end_unix_s"] = w["start_unix_s"]


def window_at_the_sample_edges(w):
    w["start_unix_s"], w["end_unix_s"] = START_MS / 1000, (START_MS + 49 * 100) / 1000


def cpu_cut_mid_run(folder):
    """cpu.csv ends on a whole line in the middle of the run (its writer stopped): CPU energy would be halved."""
    edit_cpu(folder, lambda rows: rows.__delitem__(slice(25, None)))


def cpu_estimate_stops_mid_run(rows):
    for row in rows[25:]:
        row["cpu_power_estimated_W"] = ""


def two_gpus(folder):
    write_valid_run(folder, gpus=2)


def second_gpu_half_the_window(folder):
    two_gpus(folder)
    edit_gpu(folder, lambda rows: rows.__delitem__(slice(51, None, 2)))  # GPU 1's rows of samples 25..49


def second_gpu_starts_late(folder):
    two_gpus(folder)
    edit_gpu(folder, lambda rows: rows.__delitem__(slice(1, 51, 2)))  # GPU 1's rows of samples 0..24


def second_gpu_one_interval_late(folder):
    two_gpus(folder)
    edit_gpu(folder, lambda rows: rows.__delitem__(slice(1, 5, 2)))  # GPU 1 begins at 0.2 s, the window at 0.137 s


def constant_1500_W_without_limit(folder):
    write_valid_run(folder, power=lambda t: 1500.0)
    edit_gpu(folder, no_power_limit)


def no_samples_at_all(folder):
    """Neither CSV, and a manifest that names no sensor: nothing said the files were missing, and aggregation broke."""
    (folder / "gpu.csv").unlink()
    (folder / "cpu.csv").unlink()
    edit_manifest(folder, lambda manifest: manifest["sensors"].update(gpu_energy_source="unavailable", used=[]))


def impossible_date(day):
    stamp = iso_utc_ms(START_MS + 1000)
    return gpu_cell("timestamp", day + stamp[10:])


# (name, mutate, verdict, file, check, column, text the details must contain)
ROWS = [
    ("gpu_row_too_few_fields", edit_line("gpu.csv", 12, lambda line: line.rsplit(b",", 2)[0]), QUARANTINED,
     "gpu.csv", "row_field_count", None, "line 12: 9 field(s)"),
    ("gpu_row_too_many_fields", edit_line("gpu.csv", 20, lambda line: line + b",7"), QUARANTINED,
     "gpu.csv", "row_field_count", None, "line 20: 12 field(s)"),
    ("cpu_row_too_few_fields", edit_line("cpu.csv", 30, lambda line: line.split(b",", 1)[0]), QUARANTINED,
     "cpu.csv", "row_field_count", None, "line 30: 1 field(s)"),
    ("february_30", impossible_date("2026-02-30"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_strftime_format", "timestamp", "2026-02-30T11:06:41.000Z"),
    ("month_13", impossible_date("2026-13-01"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_strftime_format", "timestamp", "2026-13-01"),
    ("hour_24", gpu_cell("timestamp", "2026-11-18T24:00:00.000Z"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_strftime_format", "timestamp", "T24:00"),
    ("cpu_text_in_number", cpu_cell("process_cpu_pct", "lots"), QUARANTINED,
     "cpu.csv", "expect_column_values_to_match_regex", "process_cpu_pct", "lots"),
    ("power_nan_text", gpu_cell("power_W", "NaN"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_regex", "power_W", "NaN"),
    ("power_inf_text", gpu_cell("power_W", "inf"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_regex", "power_W", "inf"),
    ("power_overflows_to_inf", gpu_cell("power_W", "1e999"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_be_between", "power_W", "inf"),
    ("power_in_arabic_digits", gpu_cell("power_W", "\u0661\u0662\u0660"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_regex", "power_W", "\u0661\u0662\u0660"),
    ("negative_cpu_estimate", cpu_cell("cpu_power_estimated_W", "-3.5"), QUARANTINED,
     "cpu.csv", "expect_column_values_to_be_between", "cpu_power_estimated_W", "-3.5"),
    ("fractional_gpu_index", gpu_cell("gpu_index", "0.5"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_regex", "gpu_index", "0.5"),
    ("temperature_5000_C", gpu_cell("temperature_C", "5000"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_be_between", "temperature_C", "5000"),
    ("negative_memory", gpu_cell("memory_used_MiB", "-1"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_be_between", "memory_used_MiB", "-1"),
    ("gpu_index_00", gpu_cell("gpu_index", "00"), QUARANTINED,
     "gpu.csv", "expect_column_values_to_match_regex", "gpu_index", "00"),
    ("no_samples_at_all", no_samples_at_all, QUARANTINED, "cpu.csv", "file_readable", None, "no samples"),
]
MANIFESTS = [
    ("repetition_text", manifest_field("repetition", "nine"), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "repetition", "nine"),
    ("repetition_true", manifest_field("repetition", True), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "repetition", "True"),
    ("repetition_negative", manifest_field("repetition", -1), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_between", "repetition", "-1"),
    ("attempt_zero", manifest_field("attempt", 0), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_between", "attempt", "0"),
    ("cpu_count_text", manifest_field("host.cpu_count", "16"), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "host.cpu_count", "16"),
    ("software_text", manifest_field("software", "python 3.11"), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "software", "python 3.11"),
    ("run_id_number", manifest_field("run_id", 7), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "run_id", "7"),
    ("experiment_name_list", manifest_field("experiment_name", ["a", "b"]), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "experiment_name", '["a", "b"]'),
    ("interval_text", manifest_field("sensors.sampling_interval_s", "0.1"), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "sampling_interval_s", "0.1"),
    ("interval_zero", manifest_field("sensors.sampling_interval_s", 0), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_between", "sampling_interval_s", "0"),
    ("environment_not_the_folders", manifest_field("environment", "cloud"), QUARANTINED,
     "manifest.json", "expect_column_pair_values_to_be_equal", "environment", "('cloud', 'local')"),
    ("architecture_not_the_folders", manifest_field("architecture", "vgg16"), QUARANTINED,
     "manifest.json", "expect_column_pair_values_to_be_equal", "architecture", "('vgg16', 'mobilenet_v2')"),
    ("run_id_not_the_folders", manifest_field("run_id", "another-rep00"), QUARANTINED,
     "manifest.json", "expect_column_pair_values_to_be_equal", "run_id", "another-rep00"),
    ("unknown_source", manifest_field("source", "imported"), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_in_set", "source", "imported"),
    ("unknown_gpu_energy_source", manifest_field("sensors.gpu_energy_source", "magic"), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_in_set", "sensors.gpu_energy_source", "magic"),
    ("repetition_written_2_0", manifest_field("repetition", 2.0), PASSED, None, None, None, None),
    ("metrics_accuracy_text", metrics_field("val_accuracy", "high"), QUARANTINED,
     "metrics.json", "expect_column_values_to_be_of_type", "val_accuracy", "high"),
    ("metrics_accuracy_1_7", metrics_field("val_accuracy", 1.7), QUARANTINED,
     "metrics.json", "expect_column_values_to_be_between", "val_accuracy", "1.7"),
    ("metrics_images_negative", metrics_field("images_seen", -5), QUARANTINED,
     "metrics.json", "expect_column_values_to_be_between", "images_seen", "-5"),
    ("metrics_params_1e30", metrics_field("params_total", 1e30), QUARANTINED,
     "metrics.json", "expect_column_values_to_be_between", "params_total", "1e+30"),
    ("metrics_not_an_object", write_text("metrics.json", "[1, 2]\n"), QUARANTINED,
     "metrics.json", "file_readable", None, "JSON object"),
    ("metrics_diverged_val_loss_nan", metrics_field("val_loss", math.nan), PASSED, None, None, None, None),
]
WINDOWS = [
    ("window_reversed", window(reversed_window), QUARANTINED,
     "manifest.json", "expect_column_pair_values_a_to_be_greater_than_b", "window_end_unix_s", "pairs: end, start"),
    ("window_zero_length", window(zero_length_window), QUARANTINED,
     "manifest.json", "expect_column_pair_values_a_to_be_greater_than_b", "window_end_unix_s", "ends after it starts"),
    ("window_start_text", window(lambda w: w.update(start_unix_s="2026-11-18T11:06:40Z")), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_of_type", "window_start_unix_s", "2026-11-18T11:06:40Z"),
    ("window_without_end", window(lambda w: w.pop("end_unix_s")), QUARANTINED,
     "manifest.json", "expect_column_values_to_not_be_null", "window_end_unix_s", "the manifest has"),
    ("window_nan", window(lambda w: w.update(start_unix_s=math.nan)), QUARANTINED,
     "manifest.json", "expect_column_values_to_not_be_null", "window_start_unix_s", "the manifest has"),
    ("window_in_milliseconds", window(lambda w: w.update(start_unix_s=w["start_unix_s"] * 1000,
                                                         end_unix_s=w["end_unix_s"] * 1000)), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_between", "window_start_unix_s", "1795000000137"),
    ("window_ends_after_the_samples", window(lambda w: w.update(end_unix_s=w["end_unix_s"] + 10)), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_between", "window_end_before_last_sample_ms", "-9941"),
    ("window_starts_before_the_samples", window(lambda w: w.update(start_unix_s=w["start_unix_s"] - 10)), QUARANTINED,
     "manifest.json", "expect_column_values_to_be_between", "window_start_after_first_sample_ms", "-9863"),
    ("window_at_the_sample_edges", window(window_at_the_sample_edges), PASSED, None, None, None, None),
]
COVERAGE = [
    ("cpu_cut_mid_run", cpu_cut_mid_run, QUARANTINED,
     "cpu.csv", "expect_column_max_to_be_between", "timestamp", "CPU: 2.441 s"),
    ("cpu_estimate_stops_mid_run", lambda folder: edit_cpu(folder, cpu_estimate_stops_mid_run), QUARANTINED,
     "cpu.csv", "expect_column_max_to_be_between", "timestamp", "CPU: 2.441 s"),
    ("second_gpu_half_the_window", second_gpu_half_the_window, QUARANTINED,
     "gpu.csv", "expect_column_max_to_be_between", "timestamp", "GPU 1: 2.441 s"),
    ("second_gpu_starts_late", second_gpu_starts_late, QUARANTINED,
     "gpu.csv", "expect_column_min_to_be_between", "timestamp", "GPU 1: 2.363 s"),
    ("second_gpu_one_interval_late", second_gpu_one_interval_late, PASSED, None, None, None, None),
]
COUNTERS = [
    ("counter_jump_over_the_limit", lambda folder: edit_gpu(folder, counter_jump), QUARANTINED,
     "gpu.csv", "expect_column_pair_values_a_to_be_greater_than_b", "energy_counter_step_mJ", "(115500"),
    ("counter_jump_without_limit", lambda folder: edit_gpu(folder, lambda rows: counter_jump(rows, 10_000_000, False)),
     QUARANTINED, "gpu.csv", "expect_column_pair_values_a_to_be_greater_than_b", "energy_counter_step_mJ", "(220000"),
    ("power_50_kW_without_limit", lambda folder: edit_gpu(folder, power_50_kW_without_limit), QUARANTINED,
     "gpu.csv", "expect_column_values_to_be_between", "power_W", "50000"),
    ("rapl_jump", lambda folder: edit_cpu(folder, lambda rows: rapl(rows, 10**12)), QUARANTINED,
     "cpu.csv", "expect_column_pair_values_a_to_be_greater_than_b", "rapl_package_step_uJ", "1000003000000"),
    ("constant_1500_W_without_limit", constant_1500_W_without_limit, PASSED, None, None, None, None),
    ("rapl_30_W", lambda folder: edit_cpu(folder, rapl), PASSED, None, None, None, None),
]
CASES = ROWS + MANIFESTS + WINDOWS + COVERAGE + COUNTERS
NAMES = [case[0] for case in CASES]
HOSTILE = {name: f"local/mobilenet_v2/hostile-{name.replace('_', '-')}" for name in NAMES}
VALID = {  # the valid runs of the batch: one GPU with a counter, two GPUs, no counter, a sparse counter
    "local/tiny_cnn/20261120T010000Z-rep00": {},
    "local/vgg16/20261120T010000Z-rep00": {"power": lambda t: 250 - 3 * t, "gpus": 2},
    "cloud/resnet50/20261121T020000Z-rep01": {"counter": False, "start_ms": 1_795_100_000_000},
    "cloud/xception/20261121T020000Z-rep02": {"counter": "sparse"},
}


def test_the_corpus_is_hostile_enough():
    assert len(set(NAMES)) == len(NAMES)
    quarantined = [c for c in CASES if c[2] == QUARANTINED]
    assert len(quarantined) >= 30
    for group in (ROWS, MANIFESTS, WINDOWS, COVERAGE, COUNTERS):
        assert any(c[2] == QUARANTINED for c in group)


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Valid and hostile runs side by side, validated as one batch; the valid runs alone (byte-for-byte copies)."""
    root = tmp_path_factory.mktemp("hostile")
    mixed, clean = root / "mixed" / "raw", root / "clean" / "raw"
    for run, kwargs in VALID.items():
        write_valid_run(mixed / run, **kwargs)
    for name, mutate, *_ in CASES:
        folder = write_valid_run(mixed / HOSTILE[name])
        mutate(folder)
    before = {name: files_of(mixed / HOSTILE[name]) for name in NAMES}
    with log_lines():
        results = {r.run: r for r in validate_raw(mixed, LIMITS, root / "validation")}
    for run in VALID:
        shutil.copytree(mixed / run, clean / run)
    return {"root": root, "mixed": mixed, "clean": clean, "results": results, "before": before}


@pytest.mark.parametrize("name, mutate, verdict, file, check, column, named", CASES, ids=NAMES)
def test_each_hostile_run_gets_its_verdict_and_named_reason(batch, name, mutate, verdict, file, check, column, named):
    result = batch["results"][HOSTILE[name]]
    assert result.status == verdict, f"{name}: {result.status}\n{describe(result.failures)}"
    if verdict == PASSED:
        assert result.failures == []
        return
    hits = matching(result.failures, file, check, column)
    assert hits, f"expected a failure ({file}, {check}, {column}); got:\n{describe(result.failures)}"
    assert any(named in (f.details or "") for f in hits), \
        f"expected {named!r} in the details of ({file}, {check}, {column}); got:\n{describe(result.failures)}"
    assert not matching(result.failures, "(validator)", "validator_error", None), describe(result.failures)
    record = json.loads((result.folder / VALIDATION_FILE).read_text())
    assert record["status"] == QUARANTINED
    assert {"file": file, "check": check, "column": column} in [
        {k: f[k] for k in ("file", "check", "column")} for f in record["failures"]]


def test_the_valid_runs_pass(batch):
    for run in VALID:
        assert batch["results"][run].status == PASSED, describe(batch["results"][run].failures)


def test_the_valid_runs_are_aggregated_exactly_as_without_the_hostile_ones(batch, project):
    environments = load_config(project).environments
    root = batch["root"]
    with log_lines():
        result = aggregate(batch["mixed"], root / "mixed" / "out", environments, LIMITS)
        expected = aggregate(batch["clean"], root / "clean" / "out", environments, LIMITS)
    passing = {HOSTILE[c[0]] for c in CASES if c[2] == PASSED}
    assert result.failed == {} and expected.failed == {} and expected.skipped == []
    assert (result.runs, expected.runs) == (len(VALID) + len(passing), len(VALID))

    runs = pd.read_parquet(root / "mixed" / "out" / "processed" / "runs.parquet")
    names = set(runs["environment"] + "/" + runs["architecture"] + "/" + runs["run_id"])
    assert names == set(VALID) | passing  # never a quarantined run
    alone = pd.read_parquet(root / "clean" / "out" / "processed" / "runs.parquet")
    valid_rows = runs[(runs["environment"] + "/" + runs["architecture"] + "/" + runs["run_id"]).isin(set(VALID))]
    pd.testing.assert_frame_equal(valid_rows.reset_index(drop=True), alone)

    samples = pd.read_parquet(root / "mixed" / "out" / "interim" / "samples.parquet")
    samples = samples[(samples["environment"] + "/" + samples["architecture"] + "/" + samples["run_id"]).isin(set(VALID))]
    samples_alone = pd.read_parquet(root / "clean" / "out" / "interim" / "samples.parquet")
    order = [*KEY, "timestamp", "gpu_index"]
    pd.testing.assert_frame_equal(samples.sort_values(order).reset_index(drop=True),
                                  samples_alone.sort_values(order).reset_index(drop=True))
    assert runs["duration_s"].gt(0).all() and runs["total_energy_J"].gt(0).all()
    for name, *_ in CASES:  # quarantined runs stay as they were
        assert files_of(batch["mixed"] / HOSTILE[name]) == batch["before"][name], name


# --------------------------------------------------------------------------------------------------------------
# Validation never crashes on a run


def test_an_error_while_reading_a_run_is_its_failure_and_the_others_get_verdicts(tmp_path, monkeypatch):
    import ect.validation.checks as checks

    raw = tmp_path / "raw"
    good, bad = (write_valid_run(raw / "local" / "vgg16" / name) for name in ("good", "bad"))
    real = checks._read_run
    monkeypatch.setattr(checks, "_read_run",
                        lambda folder: (_ for _ in ()).throw(KeyError("boom")) if folder.name == "bad" else real(folder))
    with log_lines():
        results = {r.folder.name: r for r in validate_raw(raw, LIMITS, tmp_path / "validation")}
    assert results["good"].status == PASSED
    assert results["bad"].status == QUARANTINED
    assert [(f.file, f.check, f.details) for f in results["bad"].failures] == [
        ("(validator)", "validator_error", "validator error: KeyError: 'boom'")]


def test_a_run_that_breaks_its_batch_is_found_and_the_others_get_verdicts(tmp_path, monkeypatch):
    import ect.validation.checks as checks

    raw = tmp_path / "raw"
    for name in ("a", "b", "c"):
        write_valid_run(raw / "local" / "vgg16" / name)
    real = checks.manifest_row

    def breaking(data, *args):
        if data["run_id"] == "b":
            raise ZeroDivisionError("the unexpected")
        return real(data, *args)

    monkeypatch.setattr(checks, "manifest_row", breaking)
    with log_lines() as lines:
        results = {r.folder.name: r for r in validate_raw(raw, LIMITS, tmp_path / "validation")}
    assert {name: r.status for name, r in results.items()} == {"a": PASSED, "b": QUARANTINED, "c": PASSED}
    assert [f.details for f in results["b"].failures] == ["validator error: ZeroDivisionError: the unexpected"]
    assert any("local/vgg16/b: validator error: ZeroDivisionError: the unexpected" in line for line in lines)


# --------------------------------------------------------------------------------------------------------------
# A run that passed and still fails to aggregate is quarantined; the others are aggregated


def test_a_run_that_fails_to_aggregate_is_quarantined_and_the_others_aggregated(tmp_path, project, monkeypatch):
    import ect.aggregate.outputs as aggregation

    environments = load_config(project).environments
    raw, out = tmp_path / "raw", tmp_path / "out"
    for name in ("a", "b", "c"):
        write_valid_run(raw / "local" / "vgg16" / name)
    real = aggregation.run_row

    def failing(folder, *args):
        if folder.name == "b":
            raise ValueError("a value no check foresaw")
        return real(folder, *args)

    monkeypatch.setattr(aggregation, "run_row", failing)
    with log_lines() as lines:
        result = aggregate(raw, out, environments, LIMITS)
    assert result.runs == 2 and result.updated == 2
    assert result.failed == {"local/vgg16/b": "aggregation error: ValueError: a value no check foresaw"}
    assert result.skipped == ["local/vgg16/b: quarantined (failed to aggregate: aggregation error: ValueError: a "
                              "value no check foresaw)"]
    assert any("1 run(s) failed to aggregate and were quarantined" in line for line in lines)
    assert list(pd.read_parquet(result.processed)["run_id"]) == ["a", "c"]
    assert set(pd.read_parquet(out / "interim" / "samples.parquet")["run_id"]) == {"a", "c"}
    validated = {"passed": ["local/vgg16/a", "local/vgg16/b", "local/vgg16/c"], "quarantined": {}, "missing": [],
                 "summary": "summary.json"}
    with pytest.raises(RunsNotMeasured) as raised:  # the DAG's all_runs_measured task fails the DAG run
        pipeline.check_all_measured(validated, pipeline.aggregation_summary(result))
    assert str(raised.value).splitlines()[1:] == ["local/vgg16/b: passed validation but failed to aggregate, "
                                                  "quarantined: aggregation error: ValueError: a value no check foresaw"]
    record = json.loads((raw / "local" / "vgg16" / "b" / VALIDATION_FILE).read_text())
    assert record["status"] == QUARANTINED and record["failures"][0]["check"] == "aggregation_error"

    monkeypatch.setattr(aggregation, "run_row", real)
    with log_lines():
        again = aggregate(raw, out, environments, LIMITS)  # still quarantined: its files did not change
    assert again.runs == 2 and again.failed == {} and not again.changed
    assert validate_run(raw / "local" / "vgg16" / "b", LIMITS).status == QUARANTINED
    assert validate_run(raw / "local" / "vgg16" / "b", LIMITS, force=True).status == PASSED  # --force: another chance


# --------------------------------------------------------------------------------------------------------------
# The processed dataset never shrinks by accident


def outputs(out):
    return {p.relative_to(out).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(out.rglob("*")) if p.is_file() and p.name != ".aggregate.lock"}


def test_aggregating_a_raw_folder_without_runs_of_the_dataset_is_refused_unless_allowed(tmp_path, project):
    environments = load_config(project).environments
    raw, out = tmp_path / "metrics" / "raw", tmp_path / "metrics"
    for k in range(12):
        write_valid_run(raw / "local" / "vgg16" / f"run-{k:02d}", samples=8)
    with log_lines():
        first = aggregate(raw, out, environments, LIMITS)
    assert first.runs == 12
    before = outputs(out)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RemovalRefused) as refused:
        aggregate(empty, out, environments, LIMITS)
    message = str(refused.value)
    assert isinstance(refused.value, ConfigError)
    assert "has no run folder for 12 of the 12 run(s)" in message and "--allow-removal" in message
    assert all(f"local/vgg16/run-{k:02d}" in message for k in range(10)) and "and 2 more" in message
    assert "local/vgg16/run-10" not in message
    assert outputs(out) == before  # nothing rewritten, nothing deleted

    other = tmp_path / "other"  # a wrong RAW_DIR, with runs of its own
    write_valid_run(other / "cloud" / "vgg16" / "elsewhere", samples=8)
    shutil.copytree(raw / "local" / "vgg16" / "run-00", other / "local" / "vgg16" / "run-00")
    with pytest.raises(RemovalRefused, match="has no run folder for 11 of the 12 run"):
        aggregate(other, out, environments, LIMITS)
    assert outputs(out) == before

    shutil.rmtree(raw / "local" / "vgg16" / "run-03")  # one run deleted on purpose
    with pytest.raises(RemovalRefused, match=r"for 1 of the 12 run\(s\) .*\(local/vgg16/run-03\)"):
        aggregate(raw, out, environments, LIMITS)
    with log_lines() as lines:
        allowed = aggregate(raw, out, environments, LIMITS, allow_removal=True)
    assert allowed.runs == 11 and "local/vgg16/run-03" not in set(
        "local/vgg16/" + pd.read_parquet(allowed.processed)["run_id"])
    assert any("removing 1 run(s) without a run folder" in line for line in lines)

    # A quarantined run still has its folder: it leaves the dataset as before, without asking.
    edit_gpu(raw / "local" / "vgg16" / "run-04", lambda rows: rows[2].update(power_W="-1"))
    with log_lines():
        assert aggregate(raw, out, environments, LIMITS).runs == 10


def test_ect_aggregate_refuses_an_empty_raw_dir_with_exit_2_and_allow_removal_removes(tmp_path, project, monkeypatch,
                                                                                      capsys):
    from ect.cli import main

    monkeypatch.setenv("ECT_HOME", str(project))
    monkeypatch.setenv("ECT_METRICS_DIR", str(tmp_path / "metrics"))
    raw, out = tmp_path / "metrics" / "raw", tmp_path / "metrics"
    write_valid_run(raw / "local" / "vgg16" / "run-00", samples=8)
    env = ["--out", str(out)]
    assert main(["aggregate", str(raw), *env]) == 0
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["aggregate", str(empty), *env]) == 2
    assert "local/vgg16/run-00" in capsys.readouterr().err
    assert len(pd.read_parquet(out / "processed" / "runs.parquet")) == 1
    assert main(["aggregate", str(empty), *env, "--allow-removal"]) == 0
    assert len(pd.read_parquet(out / "processed" / "runs.parquet")) == 0
