"""The idle baseline of profiled runs: measured before the window in the run's own process, compared with the
campaign's first; the cool-down between runs waits for it (fake NVML), and has nothing to wait for on CPU."""

import json
from types import SimpleNamespace

import pytest

from conftest import log_lines, run_ect
from test_profiled import with_a_fake_training


def test_a_cpu_run_records_its_idle_baseline_and_its_cool_down_has_nothing_to_wait_for(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    result = run_ect("profile-run", "local", "tiny_cnn", "--repetition", "0", "--run-id", "night-rep00",
                     "--profile", "demo", "-d", str(synthetic_dataset), "--set", f"METRICS_DIR={metrics}",
                     "--set", "IDLE_BASELINE=0.5", "--set", "COOLDOWN=10", "--cool-down", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cool-down: no GPU measured here, nothing to cool down" in result.stdout
    manifest = json.loads((metrics / "raw" / "local" / "tiny_cnn" / "night-rep00" / "manifest.json").read_text())
    idle = manifest["idle_baseline"]
    assert 0.5 <= idle["duration_s"] < 5 and idle["samples"] >= 3
    assert idle["end_unix_s"] <= manifest["window"]["start_unix_s"]
    assert idle["cpu_energy_source"] == "estimated" and idle["cpu_power_W"] >= 0
    assert idle["gpu_power_W"] is None and idle["start_temperature_C"] is None and idle["hot_start"] is None
    assert manifest["config"]["experiment"]["IDLE_BASELINE"] == 0.5


def test_runs_of_a_campaign_compare_their_start_with_the_first_and_the_cool_down_waits_for_it(
        project, tmp_path, monkeypatch):
    import ect.profiling.warmup
    import ect.sensors
    from fake_nvml import FakeNvml, gpu

    from ect.config import load_config
    from ect.raw.layout import RunKey
    from ect.runs.profiled import cool_down_after, profile_run

    fake = FakeNvml([gpu(0, power_mW=117_000)])  # no energy counter: power integrated
    select, find_gpu = ect.sensors.select_sensors, ect.sensors.gpu_sensor
    monkeypatch.setattr(ect.sensors, "select_sensors", lambda **given: select(
        **{**given, "gpu_devices": "all", "nvml": fake, "env": {}, "rapl_root": tmp_path / "no-rapl"}))
    monkeypatch.setattr(ect.profiling.warmup, "gpu_sensor", lambda devices, nvml, env: find_gpu(
        devices, nvml=fake, env={}))

    def train(model, base, train_ds, val_ds, experiment, history_csv, monitor, projection_history=None):
        fake.gpus[0].update(power_mW=650_000, temperature_C=60)  # the training heats the GPU
        monitor.begin_window("epoch_1")
        monitor.end_window("epoch_1")
        return SimpleNamespace(history=[], initial_epochs_trained=1, ft_epochs_trained=0)

    with_a_fake_training(monkeypatch, train)
    (tmp_path / "data").mkdir()
    cfg = load_config(project, env={}, overrides={"METRICS_DIR": str(tmp_path / "metrics"),
                                                   "DATASET_DIR": str(tmp_path / "data"), "IDLE_BASELINE": "0.3",
                                                   "COOLDOWN": "0.05"})
    first = RunKey("local", "tiny_cnn", "night-rep00")
    fake.gpus[0]["temperature_C"] = 36
    outcome = profile_run(cfg, first, 0)
    idle = json.loads((outcome.folder / "manifest.json").read_text())["idle_baseline"]
    assert idle["start_temperature_C"] == 36 and idle["gpu_power_W_total"] == pytest.approx(117.0, rel=1e-12)
    assert (idle["reference"], idle["hot_start"]) == (None, False)

    # After the run the GPU is hot: the cool-down waits its maximum (3 s) and warns.
    with log_lines() as lines:
        cool_down_after(cfg, first)
    assert lines[0].startswith("cool-down: until the GPU is back at the campaign's first idle baseline 36 C, 117 W "
                               "(run tiny_cnn/night-rep00): at most 38 C and at most 128.7 W; at most 3 s")
    assert lines[-1].startswith("warning: cool-down: the maximum of 3 s (COOLDOWN) passed")

    # The next run (the same repetition's run id, on another architecture) starts hot: its manifest says so, against
    # the first run's baseline.
    fake.gpus[0].update(power_mW=140_000, temperature_C=45)
    outcome = profile_run(cfg, RunKey("local", "vgg16", "night-rep00"), 0)
    idle = json.loads((outcome.folder / "manifest.json").read_text())["idle_baseline"]
    assert idle["hot_start"] is True and idle["reference"]["run"] == "tiny_cnn/night-rep00"
    assert idle["hot_start_reasons"] == ["temperature 45 C above 36 C + 2 C", "idle power 140 W above 117 W + 10 %"]

    # Back at idle, the cool-down ends after three reads (the mean power of 3 s).
    fake.gpus[0].update(power_mW=117_500, temperature_C=37)
    with log_lines() as lines:
        cool_down_after(cfg, RunKey("local", "vgg16", "night-rep00"))
    assert lines[-1].startswith("cool-down: back at the campaign's first idle baseline after ")
    assert ": 37 C, 117.5 W (mean of the last 3 s)" in lines[-1]
