"""What ect logs to MLflow, without a server: the per-second power series and settings kept out of the metrics
(tests/tracking/test_tracking.py checks the same against a real `mlflow server`)."""

import json
from types import SimpleNamespace

import pytest

from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms
from ect.raw.manifest import Window
from ect.tracking.mlflow_runs import HYPERPARAMETERS, _final_metrics, _power_series

START_MS = 1_780_000_000_000  # the window: 3.5 s from here; samples every 100 ms from 0.5 s before to 1 s after


def _write(folder, rapl: bool) -> None:
    times = [START_MS + t for t in range(-500, 4600, 100)]
    gpu = [",".join(GPU_COLUMNS)]
    cpu = [",".join(CPU_COLUMNS)]
    for i, t in enumerate(times):
        second = (t - START_MS) // 1000
        for index in (0, 1):  # GPU power: 100 W + 10 W per second of the window (+ 1000 W for GPU 1)
            gpu.append(f"{iso_utc_ms(t)},{index},H200,{100 + 10 * second + 1000 * index},,{50 + index},1,1,1,40,700")
        energy = f"{i * 5_000_000}" if rapl else ""  # 5 J per 100 ms: 50 W
        estimate, source = ("", "rapl") if rapl else ("30", "estimate")
        cpu.append(f"{iso_utc_ms(t)},{20 + second},100,40,{energy},,{estimate},{source}")
    (folder / "gpu.csv").write_text("\n".join(gpu) + "\n")
    (folder / "cpu.csv").write_text("\n".join(cpu) + "\n")


def _series(metrics) -> dict:
    series = {}
    for metric in metrics:
        series.setdefault(metric.key, []).append((metric.step, metric.timestamp, metric.value))
    return series


@pytest.mark.parametrize("rapl", [True, False])
def test_the_power_series_has_one_point_per_second_of_the_window(tmp_path, rapl):
    _write(tmp_path, rapl)
    manifest = SimpleNamespace(window=Window((START_MS) / 1000, (START_MS + 3500) / 1000))
    series = _series(_power_series(tmp_path, manifest))
    cpu_power = "power_cpu_W" if rapl else "power_cpu_estimated_W"
    assert set(series) == {"power_gpu0_W", "power_gpu1_W", "utilization_gpu0_pct", "utilization_gpu1_pct", cpu_power,
                           "utilization_cpu_process_pct", "utilization_cpu_system_pct"}
    for points in series.values():  # seconds 0..3 of the window; each at its first sample's wall clock
        assert [(step, timestamp) for step, timestamp, _ in points] == [(s, START_MS + 1000 * s) for s in range(4)]
    assert [v for _, _, v in series["power_gpu0_W"]] == [100, 110, 120, 130]
    assert [v for _, _, v in series["power_gpu1_W"]] == [1100, 1110, 1120, 1130]
    assert [v for _, _, v in series["utilization_gpu1_pct"]] == [51] * 4
    assert [v for _, _, v in series["utilization_cpu_process_pct"]] == [20, 21, 22, 23]
    assert [v for _, _, v in series[cpu_power]] == pytest.approx([50 if rapl else 30] * 4)


def test_no_window_no_series(tmp_path):
    _write(tmp_path, rapl=True)
    assert _power_series(tmp_path, SimpleNamespace(window=None)) == []


def test_settings_are_not_metrics(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({
        "val_f1": 0.5, "gflops": 1.5, "trained_epochs": 2, "image_size": 128, "batch_size": 32, "seed": 1,
        "weights": "imagenet", "dataset_fingerprint": {"sha256": "x"}, "training_duration_s": 3.0}))
    metrics = _final_metrics(tmp_path)
    assert metrics == {"final_val_f1": 0.5, "gflops": 1.5, "trained_epochs": 2, "training_duration_s": 3.0}
    assert not {key.upper() for key in metrics} & set(HYPERPARAMETERS)


def test_the_model_requires_keras_and_the_run_s_backend_at_the_recorded_versions():
    from importlib import metadata

    from ect.tracking.mlflow_runs import model_requirements

    assert model_requirements({"name": "jax", "version": "0.10.2", "keras_version": "3.15.1"}) == [
        "keras==3.15.1", "jax==0.10.2"]
    # A CUDA build's local label would pin PyTorch's own index: any build of 2.13.0 will do.
    assert model_requirements({"name": "torch", "version": "2.13.0+cu130", "keras_version": "3.15.1"}) == [
        "keras==3.15.1", "torch==2.13.0"]
    # A run from before backends trained on TensorFlow; versions not recorded are this host's.
    assert model_requirements({}) == [f"keras=={metadata.version('keras')}",
                                      f"tensorflow=={metadata.version('tensorflow')}"]
