"""Aggregation: raw -> interim -> processed, energies, incremental and idempotent runs, exports."""

import json

import pandas as pd
import pytest

from conftest import REPO, log_lines, run_ect
from ect.aggregate.aggregate import aggregate
from ect.aggregate.export import CODECARBON_COLUMNS
from ect.config import load_config
from ect.validation import Limits
from test_legacy import STAMP_A, STAMP_B, write_run

ENVIRONMENTS = load_config(REPO, env={}).environments


def imported_raw(tmp_path, stamps=(STAMP_A, STAMP_B)):
    """The original's logs of two runs, imported (kept powers [100, 110, 130, 120] W at 1 s each)."""
    from ect.aggregate.legacy import import_legacy

    src, raw = tmp_path / "legacy", tmp_path / "metrics" / "raw"
    for stamp in stamps:
        write_run(src, stamp)
    import_legacy(src, raw)
    return raw


def quiet_aggregate(raw, out):
    with log_lines() as lines:
        result = aggregate(raw, out, ENVIRONMENTS, Limits())
    return result, lines


def test_imported_legacy_runs_give_the_hand_computed_energy_and_emissions(tmp_path):
    raw = imported_raw(tmp_path)
    result, _ = quiet_aggregate(raw, tmp_path / "metrics")
    runs = pd.read_parquet(result.processed)
    assert list(runs["run_id"]) == [f"legacy-{STAMP_A}", f"legacy-{STAMP_B}"] and list(runs["repetition"]) == [0, 1]
    run = runs.iloc[0]
    # (100 + 110) / 2 + (110 + 130) / 2 + (130 + 120) / 2 = 105 + 120 + 125 = 350 J over 3 s
    assert run["gpu_energy_J"] == pytest.approx(350.0, rel=1e-12) and run["gpu_energy_source"] == "integrated"
    assert run["duration_s"] == 3.0 and run["environment"] == "cloud" and run["source"] == "legacy-import"
    assert pd.isna(run["cpu_energy_J"]) and run["cpu_energy_source"] == "unavailable"
    assert run["total_energy_J"] == pytest.approx(350.0, rel=1e-12)
    assert run["energy_kWh"] == pytest.approx(350.0 / 3.6e6, rel=1e-12)
    cloud = ENVIRONMENTS["cloud"]
    assert run["emissions_gCO2e"] == pytest.approx(350.0 / 3.6e6 * cloud.pue * cloud.carbon_intensity_gco2e_per_kwh, rel=1e-12)
    assert run["gpu_power_mean_W"] == pytest.approx(115.0, rel=1e-12) and run["gpu_name"] == "NVIDIA GeForce RTX 3090"

    samples = pd.read_parquet(tmp_path / "metrics" / "interim" / "samples.parquet")
    assert len(samples) == 8 and {"power_W", "process_cpu_pct", "timestamp"} <= set(samples.columns)
    assert samples["process_cpu_pct"].notna().all()  # CPU samples joined by nearest timestamp


def test_an_environment_missing_from_the_config_uses_the_original_defaults(tmp_path):
    src, raw = tmp_path / "legacy", tmp_path / "raw"
    write_run(src, STAMP_A, env="local-v2")
    from ect.aggregate.legacy import import_legacy

    import_legacy(src, raw)
    result, _ = quiet_aggregate(raw, tmp_path / "out")
    run = pd.read_parquet(result.processed).iloc[0]
    assert run["carbon_intensity_gCO2e_per_kWh"] == 232.0 and run["pue"] == 1.0
    assert run["carbon_intensity_source"].startswith("default")


def test_aggregation_is_incremental_and_idempotent(tmp_path):
    raw = imported_raw(tmp_path, stamps=(STAMP_A,))
    out = tmp_path / "metrics"
    first, _ = quiet_aggregate(raw, out)
    def files():
        paths = [out / "processed" / "runs.parquet", out / "processed" / "runs.csv",
                 *sorted((out / "interim" / "samples.parquet").rglob("*"))]
        return {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in paths if p.is_file()}

    def part_of(run):
        index = json.loads((out / "interim" / "index.json").read_text())
        return out / "interim" / "samples.parquet" / index["runs"][f"cloud/mobilenet_v2/{run}"]["part"]

    before = files()
    assert len(before) == 3  # runs.parquet, runs.csv and the part holding the run's samples
    again, lines = quiet_aggregate(raw, out)
    assert (first.updated, again.updated, again.changed) == (1, 0, False)
    assert "0 new or changed run(s); 1 unchanged" in lines[0]
    assert files() == before  # nothing rewritten

    # A new run is added; the unchanged one is not read again.
    src = tmp_path / "legacy"
    write_run(src, STAMP_B)
    from ect.aggregate.legacy import import_legacy

    import_legacy(src, raw)
    part_a = part_of(f"legacy-{STAMP_A}")
    third, _ = quiet_aggregate(raw, out)
    assert (third.updated, third.runs) == (1, 2)
    assert files()[part_a] == before[part_a]  # the unchanged run's samples are not rewritten
    assert part_of(f"legacy-{STAMP_B}") != part_a  # the new run's samples go to a new part
    samples = pd.read_parquet(out / "interim" / "samples.parquet")
    assert sorted(samples["run_id"].unique()) == [f"legacy-{STAMP_A}", f"legacy-{STAMP_B}"]  # parts: any order

    # A run measured again (a retry rewrites its files) replaces its row: never twice.
    manifest_path = raw / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["attempt"] = 2
    manifest_path.write_text(json.dumps(manifest))
    fourth, _ = quiet_aggregate(raw, out)
    runs = pd.read_parquet(fourth.processed)
    assert fourth.updated == 1 and len(runs) == 2 and runs["run_id"].is_unique
    assert not part_a.exists()  # it held the run's old samples
    part_a = part_of(f"legacy-{STAMP_A}")
    samples = pd.read_parquet(out / "interim" / "samples.parquet")
    assert samples.groupby("run_id").size().to_dict() == {run: 4 for run in runs["run_id"]}

    # A run that is quarantined later leaves the processed and interim datasets.
    (manifest_path.parent / "gpu.csv").write_text((manifest_path.parent / "gpu.csv").read_text().replace(",110,", ",-110,"))
    fifth, _ = quiet_aggregate(raw, out)
    assert fifth.runs == 1 and not part_a.exists()
    assert set(pd.read_parquet(out / "interim" / "samples.parquet")["run_id"]) == {f"legacy-{STAMP_B}"}


def test_a_run_leaving_a_shared_part_has_the_others_read_again_into_a_new_one(tmp_path):
    raw = imported_raw(tmp_path)
    out = tmp_path / "metrics"
    quiet_aggregate(raw, out)
    samples_dir = out / "interim" / "samples.parquet"
    (shared,) = samples_dir.iterdir()  # one aggregation, one part
    folder_b = raw / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_B}"
    (folder_b / "gpu.csv").write_text((folder_b / "gpu.csv").read_text().replace(",110,", ",-110,"))

    result, lines = quiet_aggregate(raw, out)
    assert "aggregating 0 new or changed run(s), 1 read again (its part held a changed or departed run)" in lines[0]
    assert result.updated == 1 and result.runs == 1 and not shared.exists()
    samples = pd.read_parquet(samples_dir)
    assert samples.groupby("run_id").size().to_dict() == {f"legacy-{STAMP_A}": 4}
    assert list(pd.read_parquet(result.processed)["run_id"]) == [f"legacy-{STAMP_A}"]


def test_a_failure_while_reading_leaves_no_part_and_the_next_aggregation_completes(tmp_path, monkeypatch):
    import ect.aggregate.outputs as aggregation

    raw = imported_raw(tmp_path)
    out = tmp_path / "metrics"
    real_run_row = aggregation.run_row

    def failing_run_row(folder, *args):
        if folder.name == f"legacy-{STAMP_B}":
            raise OSError("disk gone")
        return real_run_row(folder, *args)

    monkeypatch.setattr(aggregation, "run_row", failing_run_row)
    with pytest.raises(OSError, match="disk gone"):
        quiet_aggregate(raw, out)
    samples_dir = out / "interim" / "samples.parquet"
    assert not samples_dir.exists() or not any(samples_dir.iterdir())  # no part, no temporary file
    assert not (out / "interim" / "index.json").exists() and not (out / "processed" / "runs.parquet").exists()

    monkeypatch.setattr(aggregation, "run_row", real_run_row)
    result, _ = quiet_aggregate(raw, out)
    assert result.updated == 2 and pd.read_parquet(samples_dir).groupby("run_id").size().to_dict() == {
        f"legacy-{STAMP_A}": 4, f"legacy-{STAMP_B}": 4}


def test_large_aggregations_are_split_into_parts_and_a_part_left_alone_is_kept(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    import ect.aggregate.parts as parts
    from ect.aggregate.samples import SAMPLES_SCHEMA

    monkeypatch.setattr(parts, "ROW_GROUP_ROWS", 3)
    monkeypatch.setattr(parts, "PART_ROWS", 4)  # each imported run has 4 samples: one part per run
    raw = imported_raw(tmp_path)
    out = tmp_path / "metrics"
    quiet_aggregate(raw, out)
    samples_dir = out / "interim" / "samples.parquet"
    index = json.loads((out / "interim" / "index.json").read_text())["runs"]
    part_a, part_b = (samples_dir / index[f"cloud/mobilenet_v2/legacy-{stamp}"]["part"] for stamp in (STAMP_A, STAMP_B))
    assert part_a != part_b and sorted(samples_dir.iterdir()) == sorted([part_a, part_b])
    assert pq.read_table(samples_dir).schema == SAMPLES_SCHEMA  # text written as dictionaries reads back as strings
    assert set(pq.read_table(part_a).column("run_id").to_pylist()) == {f"legacy-{STAMP_A}"}

    before = (part_a.read_bytes(), part_a.stat().st_mtime_ns)
    folder_b = raw / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_B}"
    (folder_b / "gpu.csv").write_text((folder_b / "gpu.csv").read_text().replace(",110,", ",-110,"))
    result, lines = quiet_aggregate(raw, out)
    assert (result.updated, result.runs, result.changed) == (0, 1, True) and "0 new or changed run(s); 1 unchanged" in lines[0]
    assert list(samples_dir.iterdir()) == [part_a] and (part_a.read_bytes(), part_a.stat().st_mtime_ns) == before
    assert list(pd.read_parquet(result.processed)["run_id"]) == [f"legacy-{STAMP_A}"]


def test_runs_are_read_in_order_with_a_bounded_number_waiting():
    from concurrent.futures import ThreadPoolExecutor

    from ect.aggregate.outputs import _in_order

    submitted, taken, most_waiting = [], [], 0

    class CountingPool(ThreadPoolExecutor):
        def submit(self, function, *args):
            submitted.append(args)
            return super().submit(function, *args)

    with CountingPool(max_workers=3) as pool:
        for value in _in_order(pool, lambda x: x * x, list(range(50)), ahead=4):
            taken.append(value)
            most_waiting = max(most_waiting, len(submitted) - len(taken))
    assert taken == [x * x for x in range(50)] and most_waiting <= 4


def test_a_second_aggregation_into_the_same_folder_waits_for_the_first(tmp_path):
    import fcntl
    import threading

    raw = imported_raw(tmp_path)
    out = tmp_path / "metrics"
    lock_path = out / "interim" / ".aggregate.lock"
    lock_path.parent.mkdir(parents=True)
    outcome = {}
    with open(lock_path, "a") as held:  # another aggregation (another DAG) is running
        fcntl.flock(held, fcntl.LOCK_EX)
        second = threading.Thread(target=lambda: outcome.update(zip(("result", "lines"), quiet_aggregate(raw, out))))
        second.start()
        second.join(timeout=3)
        assert second.is_alive() and not (out / "processed" / "runs.parquet").exists()
    second.join(timeout=60)
    assert outcome["lines"][0] == f"waiting for another aggregation into {out} to finish"
    assert outcome["result"].runs == 2 and (out / "processed" / "runs.parquet").exists()


def test_samples_of_an_earlier_layout_are_replaced(tmp_path):
    raw = imported_raw(tmp_path)
    out = tmp_path / "metrics"
    old_file = out / "interim" / "samples.parquet" / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}.parquet"
    old_file.parent.mkdir(parents=True)
    old_file.write_bytes(b"format 4: one file per run")
    result, _ = quiet_aggregate(raw, out)
    assert result.updated == 2 and not (out / "interim" / "samples.parquet" / "cloud").exists()
    assert len(pd.read_parquet(out / "interim" / "samples.parquet")) == 8


def test_only_completed_and_valid_runs_are_aggregated(tmp_path):
    raw = imported_raw(tmp_path)
    folder_a = raw / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}"
    manifest = json.loads((folder_a / "manifest.json").read_text())
    manifest["status"] = "failed"
    (folder_a / "manifest.json").write_text(json.dumps(manifest))
    folder_b = raw / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_B}"
    (folder_b / "gpu.csv").write_text((folder_b / "gpu.csv").read_text().replace(",110,", ",-110,"))
    result, lines = quiet_aggregate(raw, tmp_path / "metrics")
    assert result.runs == 0 and len(result.skipped) == 2
    assert any("status failed" in line for line in lines) and any("quarantined" in line for line in lines)
    assert (folder_b / "gpu.csv").exists()  # quarantined, never deleted


def test_processed_energy_equals_the_profilers_measurement(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    result = run_ect("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "r0", "--profile", "demo",
                     "-d", str(synthetic_dataset), "--set", f"METRICS_DIR={metrics}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    aggregated = run_ect("aggregate", "--set", f"METRICS_DIR={metrics}", cwd=tmp_path, env={"ECT_HOME": str(REPO)})
    assert aggregated.returncode == 0, aggregated.stderr
    run = pd.read_parquet(metrics / "processed" / "runs.parquet").iloc[0]
    training = json.loads((metrics / "raw" / "local" / "tiny_cnn" / "r0" / "manifest.json").read_text())["energy"]["training"]
    assert run["cpu_energy_J"] == training["cpu_energy_J"] and run["cpu_energy_source"] == "estimated"
    assert run["duration_s"] == training["duration_s"] and pd.isna(run["gpu_energy_J"])
    assert run["val_f1"] >= 0 and run["images_seen"] > 0
    assert run["energy_per_image_J"] == pytest.approx(run["total_energy_J"] / run["images_seen"], rel=1e-12)

    exported = run_ect("export", "--format", "codecarbon", "--set", f"METRICS_DIR={metrics}", cwd=tmp_path,
                       env={"ECT_HOME": str(REPO)})
    assert exported.returncode == 0, exported.stderr
    emissions = pd.read_csv(metrics / "processed" / "emissions.csv")
    assert tuple(emissions.columns) == CODECARBON_COLUMNS
    row = emissions.iloc[0]
    assert row["energy_consumed"] == pytest.approx(run["energy_kWh"], rel=1e-12)
    assert row["emissions"] == pytest.approx(run["emissions_gCO2e"] / 1000, rel=1e-12)
    assert row["cpu_energy"] == pytest.approx(run["cpu_energy_J"] / 3.6e6, rel=1e-12) and pd.isna(row["gpu_energy"])
    assert row["run_id"] == "local/tiny_cnn/r0" and row["cpu_model"] == run["cpu_model"]


def test_cli_errors_name_the_missing_folder(tmp_path):
    result = run_ect("aggregate", str(tmp_path / "nothing"), cwd=tmp_path, env={"ECT_HOME": str(REPO)})
    assert result.returncode == 2 and str(tmp_path / "nothing") in result.stderr
    result = run_ect("export", "--format", "codecarbon", "--processed", str(tmp_path / "x.parquet"), cwd=tmp_path,
                     env={"ECT_HOME": str(REPO)})
    assert result.returncode == 2 and "run `ect aggregate` first" in result.stderr


def test_processed_runs_carry_their_backend_and_runs_from_before_backends_ran_on_tensorflow(tmp_path):
    from raw_runs import write_valid_run

    raw = imported_raw(tmp_path, stamps=(STAMP_A,))  # the original's run: TensorFlow, versions unknown
    before = write_valid_run(raw / "local" / "tiny_cnn" / "night-rep00")  # a manifest without a backend
    manifest = json.loads((before / "manifest.json").read_text())
    manifest["software"].update(tensorflow="2.21.0", keras="3.15.1")
    (before / "manifest.json").write_text(json.dumps(manifest))
    jax = write_valid_run(raw / "local" / "tiny_cnn" / "night-jax-rep00")
    manifest = json.loads((jax / "manifest.json").read_text())
    manifest["backend"] = {"name": "jax", "version": "0.10.2", "keras_version": "3.15.1"}
    (jax / "manifest.json").write_text(json.dumps(manifest))

    result, _ = quiet_aggregate(raw, tmp_path / "metrics")
    runs = pd.read_parquet(result.processed).set_index("run_id")
    backends = runs[["backend", "backend_version", "keras_version"]].astype(object).where(runs.notna(), None)
    assert backends.to_dict("index") == {
        f"legacy-{STAMP_A}": {"backend": "tensorflow", "backend_version": None, "keras_version": None},
        "night-rep00": {"backend": "tensorflow", "backend_version": "2.21.0", "keras_version": "3.15.1"},
        "night-jax-rep00": {"backend": "jax", "backend_version": "0.10.2", "keras_version": "3.15.1"}}
    assert runs.loc["night-jax-rep00", "campaign_id"] == runs.loc["night-rep00", "campaign_id"] == "night"
    csv = pd.read_csv(result.processed.with_suffix(".csv"))
    assert list(csv.columns[csv.columns.get_loc("experiment_name") + 1:][:3]) == [
        "backend", "backend_version", "keras_version"]

    # A processed dataset of the format before (no backend columns) is aggregated again, every run.
    index_path = tmp_path / "metrics" / "interim" / "index.json"
    index = json.loads(index_path.read_text())
    index_path.write_text(json.dumps({**index, "format": index["format"] - 1}))
    pd.read_parquet(result.processed).drop(columns=["backend", "backend_version", "keras_version"]).to_parquet(
        result.processed)
    again, _ = quiet_aggregate(raw, tmp_path / "metrics")
    assert again.updated == 3
    assert set(pd.read_parquet(again.processed)["backend"]) == {"tensorflow", "jax"}
