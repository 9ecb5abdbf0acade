"""Profiled runs end to end on CPU: raw run folders, idempotent run ids, failures that cost no other run."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import lock_held_elsewhere, run_ect
from ect.projection import PROJECTION_COLUMNS


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def csv_rows(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def run_dirs(metrics: Path, arch: str) -> list[Path]:
    return sorted(p for p in (metrics / "raw" / "local" / arch).iterdir() if p.is_dir())


def test_profile_demo_writes_complete_run_folders_on_cpu(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    result = run_ect("profile", "local", "--profile", "demo", "-d", str(synthetic_dataset),
                     "--architectures", "tiny_cnn", "--repetitions", "2", "--set", f"METRICS_DIR={metrics}",
                     "--set", "INITIAL_EPOCHS=2", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "== run 1/2: tiny_cnn on tensorflow, repetition 0" in result.stdout and "== run 2/2 completed" in result.stdout
    assert "energy so far" in result.stdout and "profiled 2/2 runs" in result.stdout
    assert "energy projection: the plan only (no history" in result.stdout
    assert "projected " in result.stdout and "in 3 epochs; plan only (no history)" in result.stdout

    folders = run_dirs(metrics, "tiny_cnn")
    assert [f.name.rsplit("-", 1)[1] for f in folders] == ["rep00", "rep01"]
    for folder in folders:
        assert {p.name for p in folder.iterdir()} == {"manifest.json", "cpu.csv", "history.csv", "metrics.json"}
        manifest = read_json(folder / "manifest.json")
        assert manifest["status"] == "completed" and manifest["error"] is None
        assert manifest["environment"] == "local" and manifest["architecture"] == "tiny_cnn"
        assert manifest["sensors"]["used"] == ["process", "estimate"]
        assert manifest["sensors"]["sampling_interval_s"] == 0.1
        assert "NVML" in manifest["sensors"]["report"]["nvml"]["reason"]
        assert manifest["dataset"]["fingerprint"]["total_files"] == 400
        assert manifest["config"]["experiment"]["INITIAL_EPOCHS"] == 2
        assert manifest["software"]["tensorflow"] and manifest["host"]["cpu_count"] == os.cpu_count()

        training = manifest["energy"]["training"]
        # No GPU: marked unavailable, never zero joules.
        assert training["gpu_energy_J"] is None and training["gpu_energy_source"] == "unavailable"
        assert training["cpu_energy_source"] == "estimated" and training["cpu_energy_J"] > 0
        assert training["total_energy_J"] == training["cpu_energy_J"]
        first = manifest["energy"]["first_epoch"]
        assert manifest["window"]["start_unix_s"] <= first["start"] < first["end"] <= manifest["window"]["end_unix_s"]
        steady = manifest["energy"]["steady_state"]
        assert steady["epochs"] == [2] and steady["energy_per_epoch_J"] > 0
        assert steady["phases"]["initial"]["epochs"] == [2] and "fine_tuning" not in steady["phases"]
        assert steady["power_W"] > 0 and steady["energy_per_image_J"] > 0  # ect.steady

        history = csv_rows(folder / "history.csv")
        assert [row["phase"] for row in history] == ["initial", "initial", "fine_tuning"]
        assert all(row["gpu_energy_source"] == "unavailable" and row["gpu_energy_J"] == "" for row in history)
        assert float(history[1]["total_energy_J"]) == pytest.approx(steady["energy_per_epoch_J"], rel=1e-12)
        assert sum(float(r["cpu_energy_J"]) for r in history) <= training["cpu_energy_J"] * (1 + 1e-9)
        # The projection after each epoch (ect.projection): no processed runs here, so the plan's 2 + 1 epochs.
        assert tuple(history[0])[-5:] == PROJECTION_COLUMNS
        assert [row["projection_basis"].split(";")[0] for row in history] == [
            "plan only (no history)", "plan only (no history)", "measured (training ended)"]
        assert [float(row["projected_epochs"]) for row in history] == [3, 3, 3]
        assert history[0]["projected_energy_low_80pct_J"] == history[0]["projected_energy_high_80pct_J"] == ""
        assert float(history[-1]["projected_total_energy_J"]) == sum(float(r["total_energy_J"]) for r in history)

        samples = csv_rows(folder / "cpu.csv")
        assert len(samples) >= training["samples"] >= 3
        stamps = [row["timestamp"] for row in samples]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert {row["cpu_power_source"] for row in samples} == {"estimate"}
        metrics_json = read_json(folder / "metrics.json")
        assert metrics_json["trained_epochs"] == 3 and metrics_json["gflops"] > 0
        assert 0 < metrics_json["params_trainable"] <= metrics_json["params_total"]
        assert isinstance(metrics_json["params_trainable"], int)


def test_profile_run_is_idempotent_and_retries_keep_earlier_attempts(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    args = ("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "nightly-1", "--profile", "demo",
            "-d", str(synthetic_dataset), "--set", f"METRICS_DIR={metrics}")
    folder = metrics / "raw" / "local" / "tiny_cnn" / "nightly-1"
    folder.mkdir(parents=True)
    # An earlier attempt that was killed mid-run: a manifest still "running" and some samples.
    (folder / "manifest.json").write_text(json.dumps({"run_id": "nightly-1", "status": "running", "attempt": 1}))
    (folder / "cpu.csv").write_text("timestamp,process_cpu_pct\n2026-01-01T00:00:00.000Z,5.0\n")
    # A history of this host's processed runs: the projection takes early stopping's distribution from it.
    (metrics / "processed").mkdir()
    pd.DataFrame({"environment": "local", "architecture": "tiny_cnn", "backend": "tensorflow",
                  "run_id": ["a-rep00", "b-rep00", "c-rep00"], "campaign_id": ["a", "b", "c"],
                  "start": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-03"], utc=True),
                  "total_energy_J": 100.0, "duration_s": 10.0, "trained_epochs": 2}).to_parquet(
        metrics / "processed" / "runs.parquet")

    first = run_ect(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    history = csv_rows(folder / "history.csv")
    assert history[0]["projection_basis"].startswith(
        "history (processed/runs.parquet, tiny_cnn on tensorflow): 3 of 3 run(s) trained more than 1 epoch(s)")
    assert history[-1]["projection_basis"] == "measured (training ended)"
    manifest = read_json(folder / "manifest.json")
    assert manifest["status"] == "completed" and manifest["attempt"] == 2
    kept = folder / "previous-attempts" / "1"
    assert read_json(kept / "manifest.json")["status"] == "running"
    assert (kept / "cpu.csv").read_text().endswith("5.0\n")

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = run_ect(*args, cwd=tmp_path)
    assert again.returncode == 0 and "already completed" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_a_failing_run_is_recorded_as_failed(tmp_path):
    dataset = tmp_path / "broken"
    for name in ("a", "b"):
        (dataset / name).mkdir(parents=True)
        (dataset / name / "x.png").write_bytes(b"not a png")
    metrics = tmp_path / "metrics"
    result = run_ect("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "r", "--profile", "demo",
                     "-d", str(dataset), "--set", f"METRICS_DIR={metrics}", cwd=tmp_path)
    assert result.returncode == 2 and "corrupt image" in result.stderr
    manifest = read_json(metrics / "raw" / "local" / "tiny_cnn" / "r" / "manifest.json")
    assert manifest["status"] == "failed" and "DatasetError" in manifest["error"] and "x.png" in manifest["error"]


def wait_for(condition, timeout_s=120.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def running_run(metrics: Path, min_samples: int):
    """(folder, manifest) of a run that is training and has written at least `min_samples` samples."""
    for folder in (metrics / "raw" / "local" / "tiny_cnn").glob("*"):
        try:
            manifest = read_json(folder / "manifest.json")
            rows = len(csv_rows(folder / "cpu.csv"))
        except (OSError, ValueError):
            continue
        if manifest.get("status") == "running" and rows >= min_samples:
            return folder, manifest, rows
    return None


def test_sigkill_mid_run_keeps_the_samples_and_the_next_run_goes_on(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    command = [sys.executable, "-m", "ect", "profile", "local", "--profile", "demo", "-d", str(synthetic_dataset),
               "--architectures", "tiny_cnn", "--repetitions", "2", "--set", f"METRICS_DIR={metrics}",
               "--set", f"MODELS_DIR={tmp_path / 'models'}", "--set", "INITIAL_EPOCHS=40",
               "--set", "EARLY_STOPPING_PATIENCE=100"]
    campaign = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        folder, manifest, rows_seen = wait_for(lambda: running_run(metrics, min_samples=20), what="a run with samples")
        os.kill(manifest["pid"], signal.SIGKILL)
        output, _ = campaign.communicate(timeout=300)
    finally:
        campaign.kill()
    assert campaign.returncode == 1, output
    assert "FAILED" in output and "profiled 1/2 runs" in output

    killed = read_json(folder / "manifest.json")
    assert killed["status"] == "running"  # not completed: nothing pretends the run finished
    assert not (folder / "metrics.json").exists()
    assert len(csv_rows(folder / "cpu.csv")) >= rows_seen  # the samples up to the kill are kept

    (other,) = [f for f in run_dirs(metrics, "tiny_cnn") if f != folder]
    assert read_json(other / "manifest.json")["status"] == "completed"
    assert read_json(other / "manifest.json")["model"]["file"] == f"local/tiny_cnn/{other.name}/model.keras"
    assert (tmp_path / "models" / "local" / "tiny_cnn" / other.name / "model.keras").is_file()
    assert not (tmp_path / "models" / "local" / "tiny_cnn" / folder.name).exists()  # killed before saving


def test_sigterm_records_the_run_as_failed(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    command = [sys.executable, "-m", "ect", "profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "t",
               "--profile", "demo", "-d", str(synthetic_dataset), "--set", f"METRICS_DIR={metrics}",
               "--set", f"MODELS_DIR={tmp_path / 'models'}", "--set", "INITIAL_EPOCHS=40",
               "--set", "EARLY_STOPPING_PATIENCE=100"]
    run = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: running_run(metrics, min_samples=10), what="a run with samples")
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 143, stderr
    manifest = read_json(metrics / "raw" / "local" / "tiny_cnn" / "t" / "manifest.json")
    assert manifest["status"] == "failed" and "terminated by signal 15" in manifest["error"]


def test_plan_is_repetition_major_with_stable_run_ids():
    from ect.runs.plan import plan_runs

    plan = plan_runs(["vgg16", "resnet50"], 2, "20261128T020000Z")
    assert [(p.architecture, p.repetition) for p in plan] == [("vgg16", 0), ("resnet50", 0), ("vgg16", 1), ("resnet50", 1)]
    assert plan[3].run_id == "20261128T020000Z-rep01"


def test_with_a_run_store_a_run_is_measured_in_scratch_and_a_retry_publishes_what_the_store_did_not_take(
        synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    (tmp_path / "a-file").write_text("the store's disk is gone")
    args = ("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "n1-rep00", "--profile", "demo",
            "-d", str(synthetic_dataset), "--set", f"METRICS_DIR={metrics}")
    down = run_ect(*args, "--set", f"RUN_STORE={tmp_path / 'a-file' / 'store'}", cwd=tmp_path)
    assert down.returncode == 3, down.stdout + down.stderr  # the run store failed: exit status 3
    assert "did not take it" in down.stderr and "`ect publish`" in down.stderr
    scratch = metrics / "scratch" / "local" / "tiny_cnn" / "n1-rep00"
    assert read_json(scratch / "manifest.json")["status"] == "completed"
    assert read_json(scratch / "publish.json")["published"] is False
    assert not (metrics / "raw").exists()  # measured in scratch, nothing looks published

    store = tmp_path / "store"
    retry = run_ect(*args, "--set", f"RUN_STORE={store}", cwd=tmp_path)
    assert retry.returncode == 0, retry.stdout + retry.stderr
    assert "already completed" in retry.stdout and "published to the run store" in retry.stdout
    published = store / "raw" / "local" / "tiny_cnn" / "n1-rep00"
    assert {p.name for p in published.iterdir()} == {"manifest.json", "cpu.csv", "history.csv", "metrics.json"}
    assert (published / "manifest.json").read_bytes() == (scratch / "manifest.json").read_bytes()
    assert read_json(scratch / "publish.json")["published"] is True


@pytest.mark.parametrize("run_id", ["../../x", "a/b", "..", ".hidden", "with space", "x" * 201, ""])
def test_a_run_id_that_is_not_a_folder_name_is_refused_before_anything_is_written(tmp_path, run_id):
    metrics = tmp_path / "metrics"
    result = run_ect("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", run_id, "--profile", "demo",
                     "-d", str(tmp_path / "data"), "--set", f"METRICS_DIR={metrics}", cwd=tmp_path)
    assert result.returncode == 2 and "expected letters, digits, '_', '.' and '-'" in result.stderr
    assert not metrics.exists() and sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_run_id_whose_folder_another_process_is_writing_is_refused(tmp_path):
    """Two profile-runs with one run id would interleave their files: the second is refused, the first untouched."""
    from ect.raw.atomic import exclusive

    metrics = tmp_path / "metrics"
    folder = metrics / "raw" / "local" / "tiny_cnn" / "r1"
    lock = metrics / "locks" / "local" / "tiny_cnn" / "r1.lock"
    with lock_held_elsewhere(lock, "profile-run local/tiny_cnn/r1"):
        result = run_ect("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "r1", "--profile",
                         "demo", "-d", str(tmp_path / "data"), "--set", f"METRICS_DIR={metrics}", cwd=tmp_path)
    assert result.returncode == 2 and f"{lock} is held by profile-run local/tiny_cnn/r1, pid" in result.stderr
    assert "would interleave their files" in result.stderr
    assert not folder.exists()  # nothing of a second run was written
    with exclusive(lock, "the next run"):  # the holder is gone: the run id is free again
        pass



def with_a_fake_training(monkeypatch, train) -> None:
    """profile_run without a dataset, a model or saving: `train` stands for train_two_phase."""
    from types import SimpleNamespace

    import ect.models.saving
    import ect.models.training
    import ect.runs.workload

    monkeypatch.setattr(ect.runs.workload, "prepare_run", lambda *args: SimpleNamespace(
        model=None, base=None, train_ds=None, val_ds=None, fingerprint={}, seconds_to_prepare=0.0))
    monkeypatch.setattr(ect.models.training, "train_two_phase", train)
    monkeypatch.setattr(ect.runs.workload, "final_metrics", lambda *args: {"val_f1": 0.5})
    monkeypatch.setattr(ect.models.saving, "keep_model", lambda *args: {})


def test_the_manifest_names_the_gpus_the_run_was_measured_on(project, tmp_path, monkeypatch):
    """On a GPU host (a fake NVML here) the manifest records each measured GPU, the driver and NVML as the started
    sensor found them; on disk already while the run trains. A value a GPU cannot give is null."""
    import ect.sensors
    from fake_nvml import FakeNvml, gpu
    from types import SimpleNamespace

    from ect.config import load_config
    from ect.raw.layout import RunKey
    from ect.runs.profiled import profile_run

    fake = FakeNvml([gpu(0, energy_mJ=5_000_000), gpu(1, unsupported={"uuid", "power_limit"})],
                    nvml_version="12.570.86.15")
    select = ect.sensors.select_sensors
    monkeypatch.setattr(ect.sensors, "select_sensors", lambda **given: select(
        **{**given, "gpu_devices": "all", "nvml": fake, "env": {}, "rapl_root": tmp_path / "no-rapl"}))
    seen = {}

    def train(model, base, train_ds, val_ds, experiment, history_csv, monitor, projection_history=None):
        seen["manifest"] = read_json(history_csv.parent / "manifest.json")
        monitor.begin_window("epoch_1")
        monitor.end_window("epoch_1")
        return SimpleNamespace(history=[], initial_epochs_trained=1, ft_epochs_trained=0)

    with_a_fake_training(monkeypatch, train)
    (tmp_path / "data").mkdir()
    cfg = load_config(project, env={}, overrides={"METRICS_DIR": str(tmp_path / "metrics"),
                                                   "DATASET_DIR": str(tmp_path / "data")})

    outcome = profile_run(cfg, RunKey("local", "tiny_cnn", "20260101T000000Z-rep00"), 0)

    assert outcome.status == "completed" and fake.initialised == 0
    final = read_json(outcome.folder / "manifest.json")
    for manifest in (seen["manifest"], final):
        assert manifest["host"]["gpus"] == ["NVIDIA H200", "NVIDIA H200"]
        assert manifest["host"]["gpu_driver"] == "570.86.15"
        nvml = manifest["sensors"]["details"]["nvml"]
        assert nvml["driver_version"] == "570.86.15" and nvml["nvml_version"] == "12.570.86.15"
        assert nvml["devices"] == [
            {"index": 0, "name": "NVIDIA H200", "uuid": "GPU-aaaa0-0000", "has_energy_counter": True,
             "power_limit_W": 700.0, "memory_total_MiB": 81920.0},
            {"index": 1, "name": "NVIDIA H200", "uuid": None, "has_energy_counter": False,
             "power_limit_W": None, "memory_total_MiB": 81920.0}]
        assert manifest["sensors"]["gpu_energy_source"] == "integrated"  # GPU 1 has no counter
        assert manifest["backend"]["name"] == "tensorflow"
    assert {row["name"] for row in csv_rows(outcome.folder / "gpu.csv")} == {"NVIDIA H200"}
