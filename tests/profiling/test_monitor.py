"""Measurement windows and the sampler's scheduling, against analytically known power traces."""

import csv
import threading
import time
from types import SimpleNamespace

import pytest

from ect.profiling.monitor import EnergyMonitor
from ect.profiling.sampler import Sampler
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms
from ect.sensors.estimate import CpuPowerEstimate
from ect.sensors.process import ProcessSensor
from test_energy import REL, linear_energy, linear_power


class FakeClock:
    """Unix time in whole milliseconds, as the sampler records it."""

    def __init__(self, t0_ms=1_795_000_000_000):
        self.t_ms = t0_ms

    def advance(self, seconds):
        self.t_ms += round(seconds * 1000)

    @property
    def t(self):
        return self.t_ms / 1000

    def __call__(self):
        return self.t_ms / 1000


class FakeGpu:
    """Linear power in the fake clock's time; optionally an exact energy counter (mJ): counter=True on every
    read, "boundaries" only on boundary reads (as the NVML sensor between its once-a-second reads)."""

    name, kind = "nvml", "gpu"

    def __init__(self, clock, index=0, counter=True):
        self.clock, self.index, self.counter, self.error = clock, index, counter, None
        self.t0_ms = clock.t_ms

    def start(self): pass
    def stop(self): pass
    def info(self): return {"devices": [{"index": self.index, "name": "Fake GPU"}]}

    def read(self, boundary=True):
        t = (self.clock.t_ms - self.t0_ms) / 1000
        counted = self.counter is True or (self.counter == "boundaries" and boundary)
        return [{"gpu_index": self.index, "name": "Fake GPU", "power_W": linear_power(t),
                 "energy_counter_mJ": linear_energy(0, t) * 1e3 if counted else None,
                 "utilization_gpu_pct": 50, "power_limit_W": 700.0}]


class FakeCpu:
    name, kind = "estimate", "cpu"

    def __init__(self, clock):
        self.clock, self.error, self.t0_ms = clock, None, clock.t_ms

    def start(self): pass
    def stop(self): pass
    def info(self): return {}

    def read(self, boundary=True):
        return [{"process_cpu_pct": 50.0, "cpu_power_estimated_W": 2 * linear_power((self.clock.t_ms - self.t0_ms) / 1000)}]


def fake_choice(clock, counter=True):
    return SimpleNamespace(gpu=[FakeGpu(clock, 0, counter), FakeGpu(clock, 1, False)], cpu=[FakeCpu(clock)],
                           cpu_energy_source="estimated", report={})


def test_monitor_windows_use_the_counter_where_present_and_integrate_otherwise(tmp_path):
    clock = FakeClock()
    monitor = EnergyMonitor(tmp_path, interval_s=0.1, choice=fake_choice(clock))
    monitor.sampler.clock = clock
    monitor.sampler.sample_now()
    clock.advance(1.0)
    monitor.begin_window("training")  # at t = 1
    for _ in range(30):
        clock.advance(0.1)
        monitor.sampler.sample_now()
    clock.advance(0.05)
    m = monitor.end_window("training")  # at t = 4.05
    monitor.sampler.stop()

    assert m.duration_s == pytest.approx(3.05, rel=REL)
    assert m.gpu_energy_source == {0: "counter", 1: "integrated"}
    assert m.gpu_energy_J[0] == pytest.approx(linear_energy(1.0, 4.05), rel=REL)
    assert m.gpu_energy_J[1] == pytest.approx(linear_energy(1.0, 4.05), rel=REL)
    assert m.cpu_energy_source == "estimated"
    assert m.cpu_energy_J == pytest.approx(2 * linear_energy(1.0, 4.05), rel=REL)
    assert m.dram_energy_J is None and m.dram_energy_source == "unavailable"
    assert m.total_energy_J == pytest.approx(4 * linear_energy(1.0, 4.05), rel=REL)
    assert monitor.windows["training"] is m

    with open(tmp_path / "gpu.csv") as handle:
        gpu_rows = list(csv.DictReader(handle))
    assert tuple(gpu_rows[0]) == GPU_COLUMNS and len(gpu_rows) == 2 * 34
    assert gpu_rows[0]["energy_counter_mJ"] != "" and gpu_rows[1]["energy_counter_mJ"] == ""
    assert float(gpu_rows[2]["power_W"]) == linear_power(1.0)  # full precision, not whole watts
    with open(tmp_path / "cpu.csv") as handle:
        cpu_rows = list(csv.DictReader(handle))
    assert tuple(cpu_rows[0]) == CPU_COLUMNS and len(cpu_rows) == 34
    assert cpu_rows[0]["cpu_power_source"] == "estimate" and cpu_rows[0]["rapl_package_energy_uJ"] == ""
    assert cpu_rows[0]["timestamp"].endswith("Z") and len(cpu_rows[0]["timestamp"]) == len("2026-11-28T15:00:00.000Z")


def test_a_counter_read_only_at_the_window_edges_still_gives_the_exact_counter_energy(tmp_path):
    clock = FakeClock()
    choice = SimpleNamespace(gpu=[FakeGpu(clock, 0, "boundaries")], cpu=[FakeCpu(clock)],
                             cpu_energy_source="estimated", report={})
    monitor = EnergyMonitor(tmp_path, interval_s=0.1, choice=choice)
    monitor.sampler.clock = clock
    clock.advance(0.5)
    monitor.begin_window("epoch")  # at t = 0.5
    for _ in range(20):
        clock.advance(0.1)
        monitor.sampler.sample_now(boundary=False)  # the sampler thread's ticks
    clock.advance(0.03)
    m = monitor.end_window("epoch")  # at t = 2.53
    monitor.sampler.stop()
    assert m.gpu_energy_source == {0: "counter"}
    assert m.gpu_energy_J[0] == pytest.approx(linear_energy(0.5, 2.53), rel=REL)
    with open(tmp_path / "gpu.csv") as handle:
        counters = [row["energy_counter_mJ"] for row in csv.DictReader(handle)]
    assert counters[0] != "" and counters[1:21] == [""] * 20 and counters[21] != "" and counters[22] != ""


def test_no_gpu_means_no_gpu_file_and_no_gpu_energy(tmp_path):
    clock = FakeClock()
    choice = SimpleNamespace(gpu=[], cpu=[FakeCpu(clock)], cpu_energy_source="estimated", report={})
    monitor = EnergyMonitor(tmp_path, interval_s=0.1, choice=choice)
    monitor.sampler.clock = clock
    monitor.begin_window("w")
    clock.advance(1)
    m = monitor.end_window("w")
    monitor.sampler.stop()
    assert m.gpu_energy_J == {} and not (tmp_path / "gpu.csv").exists()


def test_window_names_are_checked():
    monitor = EnergyMonitor(None, interval_s=0.1, choice=fake_choice(FakeClock()))
    monitor.begin_window("a")
    with pytest.raises(ValueError, match="already open"):
        monitor.begin_window("a")
    with pytest.raises(ValueError, match="never begun"):
        monitor.end_window("b")


class Schedule:
    """A fake monotonic clock driven by the sampler's own waits and by slow sensor reads."""

    def __init__(self, read_durations):
        self.now = 0.0
        self.read_durations = list(read_durations)
        self.sample_times = []

    def monotonic(self):
        return self.now


def test_ticks_are_drift_free_and_late_ticks_are_skipped():
    schedule = Schedule([0.003] * 5 + [0.25] + [0.003] * 5)

    class SlowCpu(FakeCpu):
        def read(self, boundary=True):
            schedule.sample_times.append(schedule.now)
            schedule.now += schedule.read_durations.pop(0) if schedule.read_durations else 0.0
            return []

    choice = SimpleNamespace(gpu=[], cpu=[SlowCpu(FakeClock())], cpu_energy_source="estimated", report={})
    sampler = Sampler(choice, None, interval_s=0.1, clock=lambda: 1e9 + schedule.now, monotonic=schedule.monotonic)

    def wait(delay):
        schedule.now += delay
        if len(schedule.sample_times) >= 11:
            sampler._stop.set()
        return sampler._stop.is_set()

    sampler._stop.wait = wait
    sampler._run()
    times = schedule.sample_times
    # Samples land on the 100 ms grid (not 0.103, 0.206, ... as a fixed sleep after each read would);
    # the 250 ms read at t = 0.6 ends at 0.85: the ticks at 0.7 and 0.8 are skipped, not fired late in a burst.
    assert times[:6] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], abs=1e-12)
    assert times[6:9] == pytest.approx([0.9, 1.0, 1.1], abs=1e-12)
    assert sampler.missed_ticks == 2


def test_a_starved_sampler_thread_still_leaves_every_reading_at_the_window_edges(tmp_path, monkeypatch):
    """A busy CPU delays the sampler thread (its first tick came 0.27 s and 0.57 s late): a window begun right after
    the monitor starts and ended later must still have the real CPU sensors' energy readings at both edges."""
    released = threading.Event()
    run = Sampler._run

    def starved(sampler):
        released.wait()  # no CPU time for the thread until the window is over
        run(sampler)

    monkeypatch.setattr(Sampler, "_run", starved)
    process = ProcessSensor()
    choice = SimpleNamespace(gpu=[], cpu=[process, CpuPowerEstimate(process)], cpu_energy_source="estimated", report={})
    try:
        with EnergyMonitor(tmp_path, interval_s=0.1, choice=choice) as monitor:
            monitor.begin_window("training")
            busy_until = time.monotonic() + 0.3
            while time.monotonic() < busy_until:
                pass
            m = monitor.end_window("training")
            released.set()
    finally:
        released.set()

    with open(tmp_path / "cpu.csv") as handle:
        rows = list(csv.DictReader(handle))
    stamps = [row["timestamp"] for row in rows]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    read = [row["timestamp"] for row in rows if row["cpu_power_estimated_W"] != ""]
    start, end = iso_utc_ms(round(m.start * 1000)), iso_utc_ms(round(m.end * 1000))
    assert start in read and end in read, (start, end, rows)
    assert m.cpu_energy_source == "estimated" and m.cpu_energy_J > 0 and m.samples >= 2
