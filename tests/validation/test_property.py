"""Random corruption of valid run folders (hypothesis): validation never raises, aggregation never raises, no run is
both quarantined and aggregated, and the valid runs' rows never change.

Great Expectations costs about a second a batch, so one hypothesis example is one batch: RUNS_PER_EXAMPLE corrupted
copies of valid runs (each corrupted 1-3 times, byte-level: truncate, flip, insert or delete bytes, delete the file;
field-level: a CSV cell or a JSON field replaced by a random value of another type, or removed) beside pristine copies
of the valid runs, validated once and aggregated once. EXAMPLES examples make EXAMPLES x RUNS_PER_EXAMPLE = 550
corrupted runs per test run, counted as they are written (the test asserts at least 500).
"""

import csv
import io
import json
import shutil

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import log_lines
from raw_runs import write_valid_run
from ect.aggregate.aggregate import aggregate
from ect.config import load_config
from ect.validation import PASSED, QUARANTINED, Limits, validate_raw

LIMITS = Limits()
EXAMPLES, RUNS_PER_EXAMPLE = 11, 50
TEMPLATES = {  # valid runs: one GPU with a counter, two GPUs, no counter, a sparse counter, RAPL
    "counter": {}, "two_gpus": {"gpus": 2, "power": lambda t: 250 - 3 * t}, "no_counter": {"counter": False},
    "sparse": {"counter": "sparse"}, "rapl": {"samples": 30},
}
FILES = ["manifest.json", "gpu.csv", "cpu.csv", "metrics.json"]
MANIFEST_PATHS = ["run_id", "environment", "architecture", "status", "source", "kind", "repetition", "attempt",
                  "experiment_name", "host", "host.hostname", "host.platform", "host.cpu_count", "software",
                  "software.python", "sensors", "sensors.sampling_interval_s", "sensors.used",
                  "sensors.gpu_energy_source", "sensors.cpu_energy_source", "window", "window.start_unix_s",
                  "window.end_unix_s", "new_field"]
METRICS_PATHS = ["val_loss", "val_accuracy", "val_precision", "val_recall", "val_auc", "val_f1", "gflops",
                 "params_total", "trained_epochs", "images_seen", "new_field"]
KEY = ["environment", "architecture", "run_id"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-10**30, max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=4)
cell_values = st.one_of(
    st.just(""), st.text(max_size=12), st.integers(min_value=-10**25, max_value=10**25).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "inf", "-inf", "1e999", "-0", "2025-02-30T00:00:00.000Z", "2026-11-18T24:00:00.000Z",
                     "2026-11-18T11:06:40.000", "True", "0x10", "\u0663", "1,5", '"', "a\nb", " 1.5", "+.5"]))
byte_edits = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10**6)),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 16)),
    st.tuples(st.just("remove"),))
field_edits = st.one_of(
    st.tuples(st.just("cell"), st.sampled_from(["gpu.csv", "cpu.csv"]), st.integers(0, 10**6), st.integers(0, 20),
              cell_values),
    st.tuples(st.just("json"), st.sampled_from(MANIFEST_PATHS), json_values),
    st.tuples(st.just("unset"), st.sampled_from(MANIFEST_PATHS)),
    st.tuples(st.just("metrics"), st.sampled_from(METRICS_PATHS), json_values))
corruptions = st.tuples(st.sampled_from(sorted(TEMPLATES)),
                        st.lists(st.one_of(st.tuples(st.sampled_from(FILES), byte_edits), field_edits),
                                 min_size=1, max_size=3))


def edit_bytes(path, edit):
    if not path.exists():
        return
    data = bytearray(path.read_bytes())
    kind, *args = edit
    at = args[0] % (len(data) + 1) if args else 0
    if kind == "truncate":
        data = data[:at]
    elif kind == "flip" and at < len(data):
        data[at] ^= args[1]
    elif kind == "insert":
        data[at:at] = args[1]
    elif kind == "delete":
        del data[at:at + args[1]]
    elif kind == "remove":
        path.unlink()
        return
    path.write_bytes(bytes(data))


def edit_cell(path, row, column, value):
    try:
        rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    except (OSError, UnicodeDecodeError, csv.Error):
        return
    if not rows:
        return
    cells = rows[row % len(rows)]
    if cells:
        cells[column % len(cells)] = value
    with open(path, "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)


def edit_json(path, dotted, value, remove=False):
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    *parents, name = dotted.split(".")
    target = document
    for parent in parents:
        if not isinstance(target, dict) or not isinstance(target.get(parent), dict):
            return
        target = target[parent]
    if not isinstance(target, dict):
        return
    if remove:
        target.pop(name, None)
    else:
        target[name] = value
    path.write_text(json.dumps(document))  # NaN and Infinity as Python writes them


def copy_run(template, folder):
    """A copy of a valid run under another name: its manifest names the new folder (else it would not be valid)."""
    shutil.copytree(template, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest.update(environment=folder.parent.parent.name, architecture=folder.parent.name, run_id=folder.name)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def corrupt(folder, edits):
    for edit in edits:
        if edit[0] in FILES:
            edit_bytes(folder / edit[0], edit[1])
        elif edit[0] == "cell":
            edit_cell(folder / edit[1], edit[2], edit[3], edit[4])
        elif edit[0] == "json":
            edit_json(folder / "manifest.json", edit[1], edit[2])
        elif edit[0] == "unset":
            edit_json(folder / "manifest.json", edit[1], None, remove=True)
        else:
            edit_json(folder / "metrics.json", edit[1], edit[2])


@pytest.fixture(scope="module")
def templates(tmp_path_factory, project_config):
    """The valid runs (written once, copied for every run of every example) and their rows aggregated alone."""
    root = tmp_path_factory.mktemp("templates")
    for name, kwargs in TEMPLATES.items():
        folder = write_valid_run(root / "raw" / "local" / "tiny_cnn" / name, **kwargs)
        if name == "rapl":
            rows = list(csv.DictReader(open(folder / "cpu.csv", newline="")))
            for i, row in enumerate(rows):
                row.update(rapl_package_energy_uJ=3_000_000 * i, rapl_dram_energy_uJ=500_000 * i, cpu_power_source="rapl")
            with open(folder / "cpu.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
    pristine = root / "pristine"
    shutil.copytree(root / "raw", pristine / "raw")
    with log_lines():
        assert [r.status for r in validate_raw(pristine / "raw", LIMITS, pristine / "validation")] == [PASSED] * 5
        alone = aggregate(pristine / "raw", pristine / "out", project_config.environments, LIMITS)
    return {"raw": root / "raw", "rows": pd.read_parquet(alone.processed)}


@pytest.fixture(scope="module")
def project_config(tmp_path_factory):
    from conftest import REPO

    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "config", root / "config")
    return load_config(root)


def test_random_corruptions_never_break_validation_or_aggregation(templates, project_config, tmp_path_factory):
    written, survived = [], []

    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture])
    @given(st.lists(corruptions, min_size=RUNS_PER_EXAMPLE, max_size=RUNS_PER_EXAMPLE))
    def batch_of_corrupted_runs(runs):
        root = tmp_path_factory.mktemp("example")
        raw = root / "raw"
        shutil.copytree(templates["raw"], raw)  # the valid runs, pristine
        for number, (template, edits) in enumerate(runs):
            folder = raw / "local" / "mobilenet_v2" / f"c{number:03d}"
            copy_run(templates["raw"] / "local" / "tiny_cnn" / template, folder)
            corrupt(folder, edits)
        written.append(len(runs))

        with log_lines():
            results = validate_raw(raw, LIMITS, root / "validation")  # never raises
            result = aggregate(raw, root / "out", project_config.environments, LIMITS)  # never raises
        verdicts = {r.run: r for r in results}
        assert len(verdicts) >= len(TEMPLATES) + RUNS_PER_EXAMPLE - sum(
            1 for _, edits in runs if ("manifest.json", ("remove",)) in edits)  # every run with a file has a verdict
        errors = {run: r.failures for run, r in verdicts.items() if any(f.check == "validator_error" for f in r.failures)}
        assert not errors, f"the validator raised on runs (a check should have named the problem): {errors}"
        assert result.failed == {}, f"runs passed validation and failed to aggregate: {result.failed}"

        runs_frame = pd.read_parquet(result.processed)
        aggregated = set(runs_frame["environment"] + "/" + runs_frame["architecture"] + "/" + runs_frame["run_id"])
        quarantined = {run for run, r in verdicts.items() if r.status == QUARANTINED}
        assert not aggregated & quarantined, f"both quarantined and aggregated: {sorted(aggregated & quarantined)}"
        assert aggregated == {run for run, r in verdicts.items() if r.status == PASSED}
        samples = pd.read_parquet(root / "out" / "interim" / "samples.parquet", columns=KEY)
        assert set(samples["environment"] + "/" + samples["architecture"] + "/" + samples["run_id"]) <= aggregated

        survived.append(len(aggregated) - len(TEMPLATES))  # corrupted runs still valid (a field added, say)
        valid = runs_frame[runs_frame["architecture"] == "tiny_cnn"].reset_index(drop=True)
        pd.testing.assert_frame_equal(valid, templates["rows"], check_dtype=False)
        shutil.rmtree(root, ignore_errors=True)

    batch_of_corrupted_runs()
    assert sum(written) >= 500, f"only {sum(written)} corrupted runs"
    assert 0 < sum(survived) < sum(written)  # both verdicts were put to the test
