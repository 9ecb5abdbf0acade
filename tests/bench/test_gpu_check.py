"""bench/gpu_check.py: the shipped path (make-dataset, profile with two backends, validate, aggregate) end to end on
CPU with --cpu, and its per-run arithmetic of the GPU-only columns on a hand-made run folder."""

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO

SCRIPT = REPO / "bench" / "gpu_check.py"


def gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


def test_cpu_runs_the_shipped_path_per_backend_and_summarises_validated_aggregated_runs(tmp_path):
    out = tmp_path / "gpu-check"
    result = run_script("--cpu", "--out", str(out), "--backends", "tensorflow,jax", "--architectures", "tiny_cnn",
                        "--repetitions", "1", "--epochs", "1", "--image-size", "32", "--images", "100",
                        "--batch-size", "16")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for command in ("-m ect make-dataset", "-m ect profile gpu_check --profile gpu_check --backends tensorflow,jax",
                    "-m ect validate", "-m ect aggregate"):
        assert command in output
    assert "== training as shipped: medians per backend x architecture" in output

    summary = json.loads((out / "summary.json").read_text())
    training = summary["training"]
    assert summary["backends"] == ["tensorflow", "jax"] and summary["cpu"] is True
    assert training["exit_status"] == {"make-dataset": 0, "profile": 0, "validate": 0, "aggregate": 0}
    assert training["memory_limit_MB"] is None  # no GPU_MEM_LIMIT on CPU
    table = training["table"]
    assert [(row["backend"], row["architecture"]) for row in table] == [("tensorflow", "tiny_cnn"), ("jax", "tiny_cnn")]
    for row in table:
        assert row["planned"] == row["runs"] == row["completed"] == row["passed"] == row["aggregated"] == 1
        assert row["median_total_energy_J"] > 0 and row["median_cpu_energy_J"] > 0 and row["median_duration_s"] > 0
        assert row["gpu_energy_source"] == "unavailable" and row["median_gpu_energy_J"] is None
        assert row["cpu_energy_source"] in ("estimated", "counter")  # counter where RAPL is readable
        assert row["backend_version"]
    table_lines = [line for line in result.stdout.splitlines() if "tiny_cnn" in line and "1/1" in line]
    assert [line.split()[0] for line in table_lines] == ["tensorflow", "jax"]

    runs = training["runs"]
    assert sorted(run["backend"] for run in runs) == ["jax", "tensorflow"]
    for run in runs:
        assert run["status"] == "completed" and run["validation"] == "passed" and run["aggregated"]
        assert run["processed_backend"] == run["backend"]  # the aggregation's backend column
        assert run["run_id"].endswith("-jax-rep00" if run["backend"] == "jax" else "-rep00")

    project = Path(training["project"])
    processed = pd.read_parquet(project / "data" / "metrics" / "processed" / "runs.parquet")
    assert sorted(processed["backend"]) == ["jax", "tensorflow"] and set(processed["environment"]) == {"gpu_check"}
    assert (project / ".gpu-check").is_file()
    environment = (project / "config" / "environments.yaml").read_text()
    assert "GPUS: none" in environment


def test_without_a_gpu_and_without_cpu_it_exits_2_before_training(tmp_path):
    from ect.sensors import select_sensors

    if select_sensors().gpu:
        pytest.skip("an NVIDIA GPU is visible here: the check would run")
    result = run_script("--out", str(tmp_path / "out"), "--backends", "tensorflow", "--architectures", "tiny_cnn",
                        timeout=300)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no NVIDIA GPU visible through NVML" in result.stderr and "--cpu" in result.stderr
    assert not (tmp_path / "out" / "project").exists()


def test_an_unknown_backend_is_refused_naming_it(tmp_path):
    result = run_script("--cpu", "--out", str(tmp_path / "out"), "--backends", "tensorflow,mxnet", timeout=300)
    assert result.returncode == 2
    assert "unknown backend 'mxnet'" in result.stderr


def write_run(folder: Path, backend: str, start_s: float, seconds: float, peak_inside_MiB: float) -> None:
    """A run folder whose GPU power ramps linearly from 100 to 200 W over the window (the trapezoid rule is exact:
    150 W x seconds), with more memory used after the window than inside it."""
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({
        "run_id": folder.name, "environment": "gpu_check", "architecture": folder.parent.name, "status": "completed",
        "repetition": 0, "backend": {"name": backend, "version": "1.0", "keras_version": "3"},
        "window": {"start_unix_s": start_s, "end_unix_s": start_s + seconds}}))
    (folder / "validation.json").write_text(json.dumps({"status": "passed"}))
    from ect.raw.columns import GPU_COLUMNS, iso_utc_ms

    with open(folder / "gpu.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, GPU_COLUMNS)
        writer.writeheader()
        for step in range(-2, int(seconds * 10) + 3):
            t = step / 10
            writer.writerow({
                "timestamp": iso_utc_ms(round((start_s + t) * 1000)), "gpu_index": 0, "name": "H200",
                "power_W": 100 + 100 * t / seconds, "energy_counter_mJ": "", "utilization_gpu_pct": 90,
                "utilization_memory_pct": 40, "memory_total_MiB": 143771, "temperature_C": 40, "power_limit_W": 700,
                "memory_used_MiB": peak_inside_MiB if 0 <= t <= seconds else 2 * peak_inside_MiB})


def test_run_records_compare_the_counter_with_the_runs_own_power_samples(tmp_path):
    gpu_check = gpu_check_module()
    raw = tmp_path / "raw" / "gpu_check" / "resnet50"
    start = 1_800_000_000.0
    write_run(raw / "a-torch-rep00", "torch", start, 10.0, 5000)
    write_run(raw / "a-torch-rep01", "torch", start + 100, 10.0, 7000)
    processed = {("resnet50", "a-torch-rep00"): {"backend": "torch", "gpu_energy_J": 1485.0,
                                                 "gpu_energy_source": "counter", "total_energy_J": 1600.0},
                 ("resnet50", "a-torch-rep01"): {"backend": "torch", "gpu_energy_J": 1515.0,
                                                 "gpu_energy_source": "counter", "total_energy_J": 1700.0}}
    runs = [gpu_check.run_record(folder, processed) for folder in sorted(raw.iterdir())]
    assert [run["gpu_integrated_J"] for run in runs] == [pytest.approx(1500.0, rel=1e-9)] * 2
    assert runs[0]["counter_vs_integrated_pct"] == pytest.approx(100 * 15 / 1485, rel=1e-9)
    assert runs[1]["counter_vs_integrated_pct"] == pytest.approx(-100 * 15 / 1515, rel=1e-9)
    assert [run["peak_gpu_memory_MiB"] for run in runs] == [5000, 7000]  # inside the window only
    json.dumps(runs, allow_nan=False)  # plain JSON values

    [row] = gpu_check.group_rows(runs, ["torch"], ["resnet50"], repetitions=3)
    assert (row["planned"], row["runs"], row["passed"], row["aggregated"]) == (3, 2, 2, 2)
    assert row["median_gpu_energy_J"] == 1500.0 and row["median_total_energy_J"] == 1650.0
    assert row["median_peak_gpu_memory_MiB"] == 6000 and row["gpu_energy_source"] == "counter"
