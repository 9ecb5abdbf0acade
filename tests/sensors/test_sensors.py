"""Sensors against test doubles (a fake pynvml, a powercap-style folder) and against this machine."""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from ect.sensors import (DEFAULT_CPU_TDP_W, CpuPowerEstimate, NvmlSensor, ProcessSensor, RaplSensor, wraparound_delta,
                         select_sensors)

from fake_nvml import FakeNotSupported, FakeNvml, gpu


def started(sensor):
    assert sensor.probe().available
    sensor.start()
    assert sensor.error is None
    return sensor


def test_nvml_reads_every_column_with_the_energy_counter():
    fake = FakeNvml([gpu(0, energy_mJ=5_000_123), gpu(1, energy_mJ=7_000_000, power_mW=250001)])
    sensor = started(NvmlSensor(env={}, nvml=fake))
    rows = sensor.read()
    assert rows[0] == {
        "gpu_index": 0, "name": "NVIDIA H200", "power_W": 119.17, "energy_counter_mJ": 5_000_123,
        "utilization_gpu_pct": 87, "utilization_memory_pct": 41, "memory_used_MiB": 3072.5,
        "memory_total_MiB": 81920.0, "temperature_C": 54, "power_limit_W": 700.0,
    }
    assert [row["power_W"] for row in rows] == [119.17, 250.001]
    fake.gpus[0]["energy_mJ"] = 5_001_000
    assert sensor.read()[0]["energy_counter_mJ"] == 5_001_000
    info = sensor.info()
    assert info["driver_version"] == "570.86.15"
    assert info["selection"] == "all GPUs NVML sees"
    assert info["devices"][1] == {"index": 1, "name": "NVIDIA H200", "uuid": "GPU-aaaa1-0000",
                                  "has_energy_counter": True, "power_limit_W": 700.0, "memory_total_MiB": 81920.0}
    sensor.stop()
    sensor.stop()
    assert fake.initialised == 0


def test_nvml_describes_the_gpus_before_start_and_leaves_nvml_as_it_was():
    fake = FakeNvml([gpu(0, energy_mJ=1), gpu(1)], nvml_version="12.570.86.15")
    sensor = NvmlSensor(env={}, nvml=fake)
    assert sensor.probe().available and fake.initialised == 0
    info = sensor.info()
    assert fake.initialised == 0
    assert info["driver_version"] == "570.86.15" and info["nvml_version"] == "12.570.86.15"
    assert [(d["index"], d["name"], d["uuid"], d["has_energy_counter"]) for d in info["devices"]] == [
        (0, "NVIDIA H200", "GPU-aaaa0-0000", True), (1, "NVIDIA H200", "GPU-aaaa1-0000", False)]
    started(sensor)
    assert sensor.info()["devices"] == info["devices"]
    sensor.stop()
    assert sensor.info()["devices"] == info["devices"] and fake.initialised == 0  # what the run measured, kept


def test_nvml_description_values_the_gpu_or_driver_cannot_give_are_null_not_fatal():
    # No nvmlSystemGetNVMLVersion in the binding, no driver version, a GPU that gives no name, UUID, limit or memory.
    fake = FakeNvml([gpu(0, energy_mJ=None, unsupported={"name", "uuid", "power_limit", "memory"})], driver_version=None)
    sensor = started(NvmlSensor(env={}, nvml=fake))
    (row,) = sensor.read()
    assert row["power_W"] == 119.17 and row["name"] is None and row["power_limit_W"] is None
    assert sensor.info()["devices"] == [{"index": 0, "name": None, "uuid": None, "has_energy_counter": False,
                                         "power_limit_W": None, "memory_total_MiB": None}]
    assert sensor.info()["driver_version"] is None and sensor.info()["nvml_version"] is None
    assert sensor.error is None


def test_nvml_reads_the_costly_counter_at_boundaries_and_once_a_second_between(monkeypatch):
    import ect.sensors.nvml as nvml_module

    now = [100.0]
    monkeypatch.setattr(nvml_module.time, "monotonic", lambda: now[0])
    sensor = started(NvmlSensor(env={}, nvml=FakeNvml([gpu(0, energy_mJ=5_000_000)])))
    counters = []
    for step in range(12):  # ticks every 0.125 s (exact in binary), no boundary
        counters.append(sensor.read(boundary=False)[0]["energy_counter_mJ"])
        now[0] += 0.125
    assert [c is not None for c in counters] == [True] + [False] * 7 + [True] + [False] * 3
    assert sensor.read(boundary=True)[0]["energy_counter_mJ"] == 5_000_000  # a window edge: always read
    assert sensor.read(boundary=False)[0]["energy_counter_mJ"] is None
    assert sensor.read(boundary=False)[0]["power_W"] == 119.17  # everything else on every sample


def test_nvml_without_energy_counter_reports_none():
    sensor = started(NvmlSensor(env={}, nvml=FakeNvml([gpu(0, energy_mJ=None)])))
    assert sensor.read()[0]["energy_counter_mJ"] is None
    assert sensor.read()[0]["power_W"] == 119.17
    assert sensor.info()["devices"][0]["has_energy_counter"] is False
    assert sensor.has_energy_counter == {0: False}


def test_nvml_gpu_lost_mid_run_ends_the_sensor_with_an_error():
    fake = FakeNvml([gpu(0, energy_mJ=1), gpu(1, energy_mJ=1)])
    sensor = started(NvmlSensor(env={}, nvml=fake))
    assert len(sensor.read()) == 2
    fake.fail_power = True
    assert sensor.read() == []
    assert sensor.error.startswith("GPU 0 lost mid-run") and "GPU is lost" in sensor.error
    fake.fail_power = False
    assert sensor.read() == []
    sensor.stop()
    sensor.stop()
    assert fake.initialised == 0


@pytest.mark.parametrize("env, expected", [
    ({"CUDA_VISIBLE_DEVICES": "1"}, [1]),
    ({"CUDA_VISIBLE_DEVICES": "2,0"}, [2, 0]),
    ({"CUDA_VISIBLE_DEVICES": "GPU-aaaa2-0000"}, [2]),
    ({"CUDA_VISIBLE_DEVICES": "GPU-aaaa1"}, [1]),  # a UUID prefix, as CUDA accepts
    ({"CUDA_VISIBLE_DEVICES": "0,-1,1"}, [0]),  # CUDA stops at the first invalid entry
    ({"NVIDIA_VISIBLE_DEVICES": "all"}, [0, 1, 2]),
    ({"NVIDIA_VISIBLE_DEVICES": "1,2"}, [1, 2]),
    ({"NVIDIA_VISIBLE_DEVICES": "GPU-aaaa0-0000"}, [0]),
    ({"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_VISIBLE_DEVICES": "all"}, [0]),
    ({}, [0, 1, 2]),
])
def test_nvml_selects_the_visible_gpus(env, expected):
    sensor = started(NvmlSensor(env=env, nvml=FakeNvml([gpu(0), gpu(1), gpu(2)])))
    assert [row["gpu_index"] for row in sensor.read()] == expected


def test_nvml_inside_a_container_sees_the_nvidia_visible_gpus_renumbered():
    # `docker run --gpus device=3` sets NVIDIA_VISIBLE_DEVICES=3; NVML in the container sees that GPU as 0.
    sensor = started(NvmlSensor(env={"NVIDIA_VISIBLE_DEVICES": "3"}, nvml=FakeNvml([gpu(3)])))
    assert [row["gpu_index"] for row in sensor.read()] == [0]


@pytest.mark.parametrize("env", [{"CUDA_VISIBLE_DEVICES": ""}, {"CUDA_VISIBLE_DEVICES": "-1"},
                                 {"NVIDIA_VISIBLE_DEVICES": "none"}, {"NVIDIA_VISIBLE_DEVICES": "void"}])
def test_nvml_no_visible_gpu_is_unavailable(env):
    fake = FakeNvml([gpu(0)])
    found = NvmlSensor(env=env, nvml=fake).probe()
    assert not found.available and "no GPU selected" in found.reason
    assert fake.initialised == 0


def test_nvml_explicit_devices_override_the_environment():
    sensor = started(NvmlSensor(devices=[0, 2], env={"CUDA_VISIBLE_DEVICES": "1"}, nvml=FakeNvml([gpu(0), gpu(1), gpu(2)])))
    assert [row["gpu_index"] for row in sensor.read()] == [0, 2]
    assert sensor.info()["selection"] == "devices=[0, 2]"


def test_nvml_nonexistent_gpu_is_unavailable_and_named():
    fake = FakeNvml([gpu(0), gpu(1)])
    found = NvmlSensor(devices=[1, 5], env={}, nvml=fake).probe()
    assert not found.available and "5" in found.reason and "2 GPU(s)" in found.reason
    found = NvmlSensor(env={"CUDA_VISIBLE_DEVICES": "GPU-ffff"}, nvml=fake).probe()
    assert not found.available and "GPU-ffff" in found.reason
    assert fake.initialised == 0


def test_nvml_probe_describes_the_gpus_and_releases_nvml():
    fake = FakeNvml([gpu(0, energy_mJ=1), gpu(1)])
    sensor = NvmlSensor(env={}, nvml=fake)
    found = sensor.probe()
    assert found.available and found.reason.startswith("2 GPU(s): NVIDIA H200 (0), NVIDIA H200 (1)")
    assert sensor.has_energy_counter == {0: True, 1: False}
    assert fake.initialised == 0


def test_nvml_on_this_machine_without_a_driver_is_unavailable_not_an_error():
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        pass
    else:
        pynvml.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    sensor = NvmlSensor()
    found = sensor.probe()
    assert not found.available and found.reason.startswith("NVML unavailable:") and "driver" in found.reason
    sensor.start()  # even a start without NVML only records the error
    assert sensor.error and sensor.read() == []
    sensor.stop()


# --- RAPL ----------------------------------------------------------------------------------------------------

MAX_UJ = 262143328850


def zone(folder: Path, name: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


@pytest.fixture
def powercap(tmp_path) -> Path:
    root = tmp_path / "powercap"
    zone(root / "intel-rapl:0", "package-0", 1_000_000)
    zone(root / "intel-rapl:0" / "intel-rapl:0:0", "core", 500)
    zone(root / "intel-rapl:0" / "intel-rapl:0:1", "dram", 2_000)
    zone(root / "intel-rapl:1", "package-1", 3_000_000)
    zone(root / "intel-rapl:1" / "intel-rapl:1:0", "dram", 4_000)
    zone(root / "intel-rapl:2", "psys", 10)
    return root


def set_energy(root: Path, zone_path: str, energy_uj: int) -> None:
    (root / zone_path / "energy_uj").write_text(f"{energy_uj}\n")


def test_counter_delta():
    assert wraparound_delta(100, 250, 1000) == 150
    assert wraparound_delta(100, 100, 1000) == 0
    assert wraparound_delta(900, 50, 1000) == 150  # wrapped: 100 to reach the max, then 50
    assert wraparound_delta(MAX_UJ - 1, 1, MAX_UJ) == 2
    assert wraparound_delta(0, MAX_UJ, MAX_UJ) == MAX_UJ


def test_rapl_cumulative_energy_is_exact(powercap):
    sensor = RaplSensor(powercap)
    found = sensor.probe()
    assert found.available and "package-0" in found.reason and "core" not in found.reason and "psys" not in found.reason
    sensor.start()
    assert sensor.read() == [{"rapl_package_energy_uJ": 0, "rapl_dram_energy_uJ": 0}]
    set_energy(powercap, "intel-rapl:0", 1_500_001)
    set_energy(powercap, "intel-rapl:1", 3_250_000)
    set_energy(powercap, "intel-rapl:0/intel-rapl:0:1", 2_100)
    set_energy(powercap, "intel-rapl:0/intel-rapl:0:0", 9_999_999)  # core: ignored
    assert sensor.read() == [{"rapl_package_energy_uJ": 750_001, "rapl_dram_energy_uJ": 100}]
    set_energy(powercap, "intel-rapl:1/intel-rapl:1:0", 4_010)
    assert sensor.read() == [{"rapl_package_energy_uJ": 750_001, "rapl_dram_energy_uJ": 110}]
    assert sorted(z["name"] for z in sensor.info()["zones"]) == ["dram", "dram", "package-0", "package-1"]
    sensor.stop()


def test_rapl_counter_wrap_around(powercap):
    set_energy(powercap, "intel-rapl:0", MAX_UJ - 1_000)
    sensor = RaplSensor(powercap)
    sensor.start()
    set_energy(powercap, "intel-rapl:0", MAX_UJ - 10)
    assert sensor.read()[0]["rapl_package_energy_uJ"] == 990
    set_energy(powercap, "intel-rapl:0", 5_000)  # wrapped
    assert sensor.read()[0]["rapl_package_energy_uJ"] == 1_000 + 5_000
    set_energy(powercap, "intel-rapl:0", 6_000)
    assert sensor.read()[0]["rapl_package_energy_uJ"] == 7_000


def test_rapl_without_dram_zone_reports_none(tmp_path):
    zone(tmp_path / "intel-rapl:0", "package-0", 10)
    sensor = RaplSensor(tmp_path)
    sensor.start()
    assert sensor.read() == [{"rapl_package_energy_uJ": 0, "rapl_dram_energy_uJ": None}]


def test_rapl_counts_a_zone_listed_flat_and_nested_once(tmp_path):
    # /sys/class/powercap lists every zone at the top level as a link into its parent's folder.
    zone(tmp_path / "intel-rapl:0", "package-0", 10)
    zone(tmp_path / "intel-rapl:0" / "intel-rapl:0:1", "dram", 10)
    (tmp_path / "intel-rapl:0:1").symlink_to(tmp_path / "intel-rapl:0" / "intel-rapl:0:1")
    sensor = RaplSensor(tmp_path)
    sensor.start()
    assert len(sensor.info()["zones"]) == 2


def test_rapl_permission_denied_says_how_to_fix_it(powercap, monkeypatch):
    denied = powercap / "intel-rapl:1" / "energy_uj"
    read_text = Path.read_text

    def read_text_denied(self, *args, **kwargs):
        if self == denied:
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text_denied)
    found = RaplSensor(powercap).probe()
    assert not found.available
    assert str(denied) in found.reason
    assert "chmod a+r" in found.reason and "/sys/class/powercap:/sys/class/powercap:ro" in found.reason


def test_rapl_counter_unreadable_mid_run_ends_the_sensor(powercap):
    sensor = RaplSensor(powercap)
    sensor.start()
    (powercap / "intel-rapl:0" / "energy_uj").unlink()
    assert sensor.read() == [] and "energy_uj" in sensor.error
    set_energy(powercap, "intel-rapl:0", 1)
    assert sensor.read() == []


def test_rapl_missing_root_or_no_package_is_unavailable(tmp_path):
    found = RaplSensor(tmp_path / "absent").probe()
    assert not found.available and "no RAPL powercap zones" in found.reason
    zone(tmp_path / "intel-rapl:0", "psys", 10)
    assert not RaplSensor(tmp_path).probe().available


# --- process and estimate ------------------------------------------------------------------------------------


def test_process_sensor_reads_this_process():
    sensor = ProcessSensor()
    assert sensor.probe().available
    sensor.start()
    time.sleep(0.5)  # psutil's CPU % is CPU time over wall time since start(): over a few ms, clock ticks dominate
    [row] = sensor.read()
    assert set(row) == {"process_cpu_pct", "process_rss_MiB", "system_cpu_pct"}
    # Normalised by the CPU count, so <= 100 up to the clock-tick granularity (10 ms in 500 ms: 2 %).
    assert row["process_rss_MiB"] > 0 and 0 <= row["process_cpu_pct"] <= 105 and 0 <= row["system_cpu_pct"] <= 100
    assert sensor.last_process_cpu_pct == row["process_cpu_pct"]
    info = sensor.info()
    assert info["pid"] == os.getpid() and info["cpu_count"] >= 1 and isinstance(info["cpu_model"], str)


def test_a_process_read_within_a_few_ms_of_the_last_measurement_repeats_it(monkeypatch):
    """CPU times advance in 10 ms ticks: over 1 ms a busy process shows 0 % or ~1000 %. An edge sample that close to
    the last measurement repeats it; the next read after MIN_CPU_SPAN_S measures the whole span since."""
    import ect.sensors.process

    now = [100.0]
    sensor = ProcessSensor()
    sensor._clock = lambda: now[0]
    sensor.start()
    calls = []  # this process's measurements (not its children's)
    real = psutil.Process.cpu_percent

    def counted(process, interval=None):
        calls.extend([process.pid] if process.pid == os.getpid() else [])
        return real(process, interval)

    monkeypatch.setattr(psutil.Process, "cpu_percent", counted)
    now[0] += ect.sensors.process.MIN_CPU_SPAN_S / 10  # the sample right after start(): no span to measure yet
    [at_start] = sensor.read()
    assert calls == [] and at_start["process_cpu_pct"] is None and at_start["system_cpu_pct"] is None
    assert at_start["process_rss_MiB"] > 0 and CpuPowerEstimate(sensor).read() == []
    busy_until = time.monotonic() + 0.3
    while time.monotonic() < busy_until:
        pass
    now[0] += 0.3
    [first] = sensor.read()
    assert len(calls) == 1 and first["process_cpu_pct"] > 0
    now[0] += ect.sensors.process.MIN_CPU_SPAN_S / 10  # an edge sample a few ms later
    [edge] = sensor.read()
    assert len(calls) == 1, "psutil asked about a span too short to measure"
    assert (edge["process_cpu_pct"], edge["system_cpu_pct"]) == (first["process_cpu_pct"], first["system_cpu_pct"])
    assert edge["process_rss_MiB"] > 0 and sensor.last_process_cpu_pct == first["process_cpu_pct"]
    now[0] += ect.sensors.process.MIN_CPU_SPAN_S
    sensor.read()
    assert len(calls) == 2  # measured again, over the span since the first read


def test_process_sensor_counts_busy_children(monkeypatch):
    import ect.sensors.process

    sensor = ProcessSensor()
    sensor.start()
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        sensor.read()  # listed before the refresh interval ends: not seen yet (servers other tests keep may be)
        assert child.pid not in {process.pid for process in sensor._children}
        monkeypatch.setattr(ect.sensors.process, "CHILDREN_REFRESH_S", 0.0)
        sensor.read()  # the child's first sighting: its CPU counts from here
        time.sleep(0.6)
        [row] = sensor.read()
    finally:
        child.kill()
        child.wait()
    assert row["process_cpu_pct"] > 10 / os.cpu_count()
    [row] = sensor.read()  # the child is gone: no error
    assert sensor.error is None


def test_process_sensor_on_a_dead_process_records_an_error():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    sensor = ProcessSensor(child.pid)
    sensor.start()
    child.kill()
    child.wait()
    assert sensor.read() == []
    assert str(child.pid) in sensor.error
    assert sensor.read() == []

    dead = ProcessSensor(child.pid)
    assert not dead.probe().available
    dead.start()
    assert dead.read() == [] and dead.error


def test_estimate_is_tdp_times_utilisation():
    process = ProcessSensor()
    estimate = CpuPowerEstimate(process, tdp_W=120)
    assert estimate.read() == []  # nothing read from the process yet
    process.last_process_cpu_pct = 37.3
    assert estimate.read() == [{"cpu_power_estimated_W": 120 * 37.3 / 100}]
    assert estimate.info()["tdp_source"] == "config" and estimate.info()["tdp_W"] == 120.0
    assert "TDP 120.0 W (config)" in estimate.probe().reason


def test_estimate_uses_the_default_tdp_and_says_so():
    process = ProcessSensor()
    estimate = CpuPowerEstimate(process)
    process.last_process_cpu_pct = 50.0
    assert estimate.read() == [{"cpu_power_estimated_W": DEFAULT_CPU_TDP_W / 2}]
    assert estimate.info()["tdp_source"] == "default" and estimate.info()["tdp_W"] == 85.0
    assert "(default)" in estimate.probe().reason


def test_estimate_stops_when_the_process_sensor_fails():
    process = ProcessSensor()
    estimate = CpuPowerEstimate(process)
    process.last_process_cpu_pct = 50.0
    process.error = "process 1 gone"
    assert estimate.read() == [] and "process 1 gone" in estimate.error


# --- selection -----------------------------------------------------------------------------------------------


def test_select_on_a_machine_without_gpu_or_rapl(tmp_path):
    choice = select_sensors(rapl_root=tmp_path / "absent")
    assert choice.gpu == []
    assert [s.name for s in choice.cpu] == ["process", "estimate"]
    assert choice.cpu_energy_source == "estimated" and choice.gpu_energy_source == "unavailable"
    assert choice.report["nvml"]["used"] is False and choice.report["nvml"]["reason"]
    assert choice.report["rapl"] == {"used": False, "available": False,
                                     "reason": f"no RAPL powercap zones under {tmp_path / 'absent'}"}
    assert choice.report["estimate"]["used"] is True and choice.report["process"]["used"] is True


def test_select_prefers_rapl_and_a_gpu_counter(powercap):
    fake = FakeNvml([gpu(0, energy_mJ=1), gpu(1, energy_mJ=1)])
    choice = select_sensors(rapl_root=powercap, nvml=fake, env={}, cpu_tdp_W=100)
    assert [s.name for s in choice.gpu] == ["nvml"]
    assert [s.name for s in choice.cpu] == ["process", "rapl"]
    assert choice.cpu_energy_source == "counter" and choice.gpu_energy_source == "counter"
    assert choice.report["estimate"]["used"] is False and "RAPL" in choice.report["estimate"]["reason"]
    assert fake.initialised == 0  # selection probes; only start() holds NVML


def test_select_integrates_power_when_a_gpu_has_no_counter():
    fake = FakeNvml([gpu(0, energy_mJ=1), gpu(1, energy_mJ=None)])
    choice = select_sensors(gpu_devices=[1], nvml=fake, env={})
    assert choice.gpu_energy_source == "integrated"
    assert choice.gpu[0].devices == [1]


def test_select_with_gpus_none():
    choice = select_sensors(gpu_devices="none", nvml=FakeNvml([gpu(0, energy_mJ=1)]), env={})
    assert choice.gpu == [] and choice.gpu_energy_source == "unavailable"
    assert choice.report["nvml"]["used"] is False and "GPUS is none" in choice.report["nvml"]["reason"]


def test_nvml_side_values_a_gpu_does_not_support_are_empty_not_fatal():
    class NoTemperature(FakeNvml):
        def nvmlDeviceGetTemperature(self, handle, sensor):
            raise FakeNotSupported("Not Supported")

    sensor = started(NvmlSensor(env={}, nvml=NoTemperature([gpu(0, energy_mJ=10)])))
    (row,) = sensor.read()
    assert row["temperature_C"] is None and row["power_W"] == 119.17
    assert sensor.error is None and len(sensor.read()) == 1
