"""Choosing the sensors for a run: measured sources first, and a record of why the others were not used."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from ect.sensors.base import Sensor
from ect.sensors.estimate import CpuPowerEstimate
from ect.sensors.nvml import NvmlSensor
from ect.sensors.process import ProcessSensor
from ect.sensors.rapl import POWERCAP_ROOT, RaplSensor


@dataclass(frozen=True)
class SensorChoice:
    gpu: list[Sensor]  # [NvmlSensor] if available, else []
    cpu: list[Sensor]  # ProcessSensor first (the estimate reads it), then RaplSensor or CpuPowerEstimate
    report: dict  # sensor name -> {"used": bool, "available": bool, "reason": str}
    cpu_energy_source: str  # "counter" (RAPL) | "estimated"
    # "counter" if every selected GPU has an NVML energy counter, else "integrated"; "unavailable" without GPUs.
    # Found by probing; NvmlSensor.start() checks again and info() lists it per GPU.
    gpu_energy_source: str


def gpu_sensor(gpu_devices: Sequence[int] | None | str = "all", nvml: Any = None,
               env: Mapping[str, str] = os.environ) -> NvmlSensor | None:
    """The NVML sensor of the GPUs that `gpu_devices` selects, as select_sensors chooses them (not started); None when
    no GPU is selected or NVML sees none."""
    if gpu_devices == "none":
        return None
    sensor = NvmlSensor(None if gpu_devices in (None, "all") else gpu_devices, env=env, nvml=nvml)
    return sensor if sensor.probe().available else None


def select_sensors(gpu_devices: Sequence[int] | None | str = "all", pid: int | None = None,
                   cpu_tdp_W: float | None = None, rapl_root: Path = POWERCAP_ROOT, nvml: Any = None,
                   env: Mapping[str, str] = os.environ) -> SensorChoice:
    """gpu_devices: "all" (or None: as CUDA_VISIBLE_DEVICES / NVIDIA_VISIBLE_DEVICES allow), "none", or NVML indices."""
    report = {}

    gpu: list[Sensor] = []
    gpu_energy_source = "unavailable"
    nvml_sensor = NvmlSensor(None if gpu_devices in (None, "all", "none") else gpu_devices, env=env, nvml=nvml)
    found = nvml_sensor.probe()
    if gpu_devices == "none":
        report["nvml"] = {"used": False, "available": found.available, "reason": f"GPUS is none ({found.reason})"}
    else:
        report["nvml"] = {"used": found.available, "available": found.available, "reason": found.reason}
        if found.available:
            gpu = [nvml_sensor]
            gpu_energy_source = "counter" if all(nvml_sensor.has_energy_counter.values()) else "integrated"

    process = ProcessSensor(pid)
    found = process.probe()
    report["process"] = {"used": True, "available": found.available, "reason": found.reason}

    rapl = RaplSensor(rapl_root)
    estimate = CpuPowerEstimate(process, cpu_tdp_W)
    found_rapl, found_estimate = rapl.probe(), estimate.probe()
    report["rapl"] = {"used": found_rapl.available, "available": found_rapl.available, "reason": found_rapl.reason}
    if found_rapl.available:
        cpu: list[Sensor] = [process, rapl]
        report["estimate"] = {"used": False, "available": True,
                              "reason": f"not needed: RAPL counters measure CPU energy ({found_estimate.reason})"}
    else:
        cpu = [process, estimate]
        report["estimate"] = {"used": True, "available": True, "reason": found_estimate.reason}
    return SensorChoice(gpu, cpu, report, "counter" if found_rapl.available else "estimated", gpu_energy_source)
