"""The idle baseline and the cool-down that waits for the GPU to be back at the campaign's first one (fake NVML)."""

import csv
import json
from pathlib import Path

import pytest

from conftest import log_lines
from fake_nvml import FakeNvml, gpu
from ect.profiling.thermal import Baseline, Tolerance, baseline_of, campaign_baseline, measure_idle_baseline
from ect.profiling.warmup import cool_down

# One NVML read a second of an NVIDIA H200 (driver 580.159.04, 2026-12-04): 15 s idle in a process without a CUDA
# context (76.8 W, 34 C, SM clock 345 MHz), 26 s of full matmul load (690 W, 55-56 C), then 60 s of idle in the same
# process, which holds its CUDA context (117.4 W, 36 C within 2 s, SM clock 1,980 MHz).
H200 = [{key: float(value) if key != "phase" else value for key, value in row.items()}
        for row in csv.DictReader(open(Path(__file__).parent.parent / "fixtures" / "h200_cooldown.csv"))]
IN_PROCESS_IDLE = Baseline(36.0, 117.4, "c-rep00", 1.0)  # the first run's idle baseline: framework loaded
NO_CONTEXT_IDLE = Baseline(34.0, 76.8, "c-rep00", 1.0)  # a GPU no process uses


class Replay:
    """A fake clock whose sleep moves a fake GPU along a trace of (t_s, power_W, temperature_C) rows."""

    def __init__(self, fake: FakeNvml, rows: list[dict]):
        self.fake, self.rows, self.now, self.slept = fake, rows, 0.0, []
        self.sleep(0.0)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        row = [r for r in self.rows if r["t_s"] <= self.now + 1e-9 + self.rows[0]["t_s"]][-1]
        self.fake.gpus[0].update(power_mW=row["power_W"] * 1000, temperature_C=row["temperature_C"])


def after_the_load() -> list[dict]:
    return [row for row in H200 if row["phase"] in ("load", "cooldown")][-5 - 60:]  # 5 s of load, then idle


def test_the_cool_down_ends_once_the_gpu_is_back_at_the_baseline():
    fake = FakeNvml([gpu(0)])
    replay = Replay(fake, after_the_load())
    with log_lines() as lines:
        result = cool_down(300, IN_PROCESS_IDLE, Tolerance(2, 10), nvml=fake, env={}, sleep=replay.sleep,
                           clock=replay.clock)
    # The load ends at 5 s; 36 C and the 3 s mean power under 117.4 W x 1.1 = 129.1 W from 9 s on.
    assert result.reached is True and 7 <= result.seconds <= 10, result
    assert result.temperature_C == 36 and result.power_W == pytest.approx(117.4, abs=2)
    assert lines[0] == ("cool-down: until the GPU is back at the campaign's first idle baseline 36 C, 117.4 W "
                        "(run c-rep00): at most 38 C and at most 129.1 W; at most 300 s")
    assert lines[-1].startswith(f"cool-down: back at the campaign's first idle baseline after {result.seconds:.0f} s: "
                                "36 C, ")
    assert fake.initialised == 0  # NVML shut down again


def test_the_cool_down_waits_until_its_maximum_when_the_gpu_stays_above_the_baseline():
    """Against the idle of a GPU no process uses (76.8 W) the GPU of a process with a CUDA context (117 W) is never
    back: the cool-down waits COOLDOWN, warns and says by how much; it reports progress every 10 s."""
    fake = FakeNvml([gpu(0)])
    replay = Replay(fake, after_the_load())
    with log_lines() as lines:
        result = cool_down(45, NO_CONTEXT_IDLE, Tolerance(2, 10), nvml=fake, env={}, sleep=replay.sleep,
                           clock=replay.clock)
    assert result.reached is False and result.seconds == pytest.approx(45)
    assert sum(replay.slept) == pytest.approx(45) and max(replay.slept) <= 1.0
    progress = [line for line in lines if line.startswith("cool-down: ") and "/45 s, GPU at" in line]
    assert [line.split()[1] for line in progress] == ["10/45", "20/45", "30/45", "40/45"]
    assert lines[-1].startswith("warning: cool-down: the maximum of 45 s (COOLDOWN) passed and the GPU is not back "
                                "at the campaign's first idle baseline 34 C, 76.8 W (run c-rep00): idle power 117.4 W "
                                "above 76.8 W + 10 %"), lines[-1]


def test_a_hotter_gpu_is_waited_for_by_its_temperature_alone():
    fake = FakeNvml([gpu(0, power_mW=100_000), gpu(1, power_mW=100_000)])
    rows = [{"t_s": t, "power_W": 100.0, "temperature_C": max(60 - 2 * t, 40)} for t in range(0, 100)]
    replay = Replay(fake, rows)  # GPU 0 cools by 2 C a second; GPU 1 stays at 54 C
    result = cool_down(600, Baseline(40.0, None), Tolerance(2, 10), nvml=fake, env={}, sleep=replay.sleep,
                       clock=replay.clock)
    assert result.reached is False and result.temperature_C == 54  # the hottest GPU counts
    fake.gpus[1]["temperature_C"] = 41
    replay = Replay(fake, rows)
    result = cool_down(600, Baseline(40.0, None), Tolerance(2, 10), nvml=fake, env={}, sleep=replay.sleep,
                       clock=replay.clock)
    assert result.reached is True and result.seconds == 9 and result.temperature_C == 42


@pytest.mark.parametrize("gpus, fake", [("none", FakeNvml([gpu(0)])), ("all", FakeNvml([]))], ids=["none", "no-gpu"])
def test_without_a_gpu_there_is_nothing_to_cool_down(gpus, fake):
    slept = []
    with log_lines() as lines:
        result = cool_down(300, IN_PROCESS_IDLE, gpu_devices=gpus, nvml=fake, env={}, sleep=slept.append)
    assert (result.seconds, result.reached, slept) == (0.0, None, [])
    assert lines == ["cool-down: no GPU measured here, nothing to cool down"]


def test_without_a_baseline_the_cool_down_waits_the_whole_time():
    slept = []
    with log_lines() as lines:
        result = cool_down(150, None, nvml=FakeNvml([gpu(0)]), env={}, sleep=slept.append)
    assert result.reached is None and sum(slept) == 150 and max(slept) <= 60
    assert lines[0] == "cool-down: 150 s (no idle baseline of this campaign to wait for)"
    assert lines[-1] == "cool-down: 120/150 s"


def write_manifest(folder: Path, idle_baseline) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({"run_id": folder.name, "status": "completed",
                                                      "idle_baseline": idle_baseline}))


def idle(start, temperature, power):
    return {"start_unix_s": start, "start_temperature_C": temperature, "gpu_power_W_total": power}


def test_the_campaigns_first_baseline_is_its_earliest_run_with_one(tmp_path):
    local = tmp_path / "raw" / "local"
    write_manifest(local / "vgg16" / "night-rep00", idle(1000.0, 36, 117.0))
    write_manifest(local / "resnet50" / "night-rep00", idle(1500.0, 39, 120.0))
    write_manifest(local / "resnet50" / "night-jax-rep01", idle(900.5, 35, 116.0))  # the same campaign, on jax
    write_manifest(local / "vgg16" / "night-rep01", None)  # measured without one
    write_manifest(local / "vgg16" / "other-rep00", idle(10.0, 30, 80.0))  # another campaign
    write_manifest(local / "vgg16" / "night-rep02", idle(800.0, None, None))  # no GPU: nothing to compare with

    first = campaign_baseline(local, "night")
    assert first == Baseline(35.0, 116.0, "resnet50/night-jax-rep01", 900.5)
    assert campaign_baseline(local, "night", exclude=local / "resnet50" / "night-jax-rep01") == Baseline(
        36.0, 117.0, "vgg16/night-rep00", 1000.0)
    # Architectures share run ids (one per repetition): only the run's own folder is left out.
    assert campaign_baseline(local, "night", exclude=local / "vgg16" / "night-rep00") == first
    assert campaign_baseline(local, "night", before_unix_s=900.0) is None
    assert campaign_baseline(local, "nobody") is None
    assert campaign_baseline(tmp_path / "missing", "night") is None
    assert baseline_of({"start_temperature_C": "hot", "gpu_power_W_total": 100}) == Baseline(None, 100.0)


def test_a_run_hotter_than_the_first_baseline_is_a_hot_start():
    reference = Baseline(36.0, 117.0, "night-rep00")
    tolerance = Tolerance(2, 10)
    assert reference.hotter(38, 128.7, tolerance) == []
    assert reference.hotter(30, 80, tolerance) == []  # lower is fine
    assert reference.hotter(38.5, 130, tolerance) == ["temperature 38.5 C above 36 C + 2 C",
                                                      "idle power 130 W above 117 W + 10 %"]
    assert Baseline(None, 117.0).hotter(90, 100, tolerance) == []


def monitor_on(fake, folder):
    from ect.profiling.monitor import EnergyMonitor
    from ect.sensors import select_sensors

    choice = select_sensors(gpu_devices="all", nvml=fake, env={}, rapl_root=folder / "no-rapl")
    return EnergyMonitor(folder, interval_s=0.05, choice=choice)


def test_the_idle_baseline_records_each_sensors_idle_power_and_the_start_temperature(tmp_path):
    local = tmp_path / "raw" / "local"
    folder = local / "tiny_cnn" / "night-rep00"
    folder.mkdir(parents=True)
    fake = FakeNvml([gpu(0, power_mW=117_000), gpu(1, power_mW=90_000)])
    fake.gpus[1]["temperature_C"] = 37
    with log_lines() as lines, monitor_on(fake, folder) as monitor:
        record = measure_idle_baseline(monitor, 0.3, folder, Tolerance(2, 10))
    assert 0.3 <= record["duration_s"] < 5 and record["samples"] >= 3
    assert record["gpu_power_W"] == pytest.approx({"0": 117.0, "1": 90.0})
    assert record["gpu_power_W_total"] == pytest.approx(207.0, rel=1e-12)
    assert record["gpu_energy_source"] == {"0": "integrated", "1": "integrated"}
    assert record["gpu_temperature_C"] == {"0": 54.0, "1": 37.0} and record["start_temperature_C"] == 54.0
    assert record["cpu_energy_source"] == "estimated" and record["cpu_power_W"] >= 0
    assert record["power_W"] == pytest.approx(207.0 + record["cpu_power_W"])
    assert (record["reference"], record["hot_start"], record["hot_start_reasons"]) == (None, False, [])
    assert record["tolerance"] == {"temperature_C": 2, "power_pct": 10}
    assert any(line.startswith("idle baseline over 0.3") and "GPU 54 C, 207 W (run tiny_cnn/night-rep00)" in line
               for line in lines), lines

    # The campaign's next run, 4 C hotter than that first baseline: a hot start, said in the log.
    (folder / "manifest.json").write_text(json.dumps({"run_id": "night-rep00", "idle_baseline": record}))
    second = local / "tiny_cnn" / "night-rep01"
    second.mkdir()
    fake.gpus[0]["temperature_C"] = 58
    with log_lines() as lines, monitor_on(fake, second) as monitor:
        hot = measure_idle_baseline(monitor, 0.2, second, Tolerance(2, 10))
    assert hot["hot_start"] is True and hot["hot_start_reasons"] == ["temperature 58 C above 54 C + 2 C"]
    assert hot["reference"] == {"run": "tiny_cnn/night-rep00", "start_unix_s": record["start_unix_s"],
                                "temperature_C": 54.0, "gpu_power_W": record["gpu_power_W_total"]}
    assert "warning: run tiny_cnn/night-rep01 starts hot: temperature 58 C above 54 C + 2 C (the campaign's first " \
           "baseline, tolerance 2 C and 10 %)" in lines


def test_without_a_gpu_the_idle_baseline_has_no_hot_start(tmp_path):
    folder = tmp_path / "raw" / "local" / "tiny_cnn" / "night-rep00"
    folder.mkdir(parents=True)
    with monitor_on(FakeNvml([]), folder) as monitor:
        record = measure_idle_baseline(monitor, 0.2, folder, Tolerance())
    assert record["gpu_power_W"] is None and record["gpu_power_W_total"] is None
    assert record["start_temperature_C"] is None and record["hot_start"] is None
    assert record["cpu_power_W"] is not None
