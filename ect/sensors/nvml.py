"""NVIDIA GPUs through NVML (the `pynvml` module of nvidia-ml-py)."""

from __future__ import annotations

import math
import os
import time
from typing import Any, Mapping, Sequence

from ect.errors import GpuSelectionError
from ect.sensors.base import Availability, Sensor


# Reading the total-energy counter costs about 4 ms of CPU on an H200 (driver 580; every other query a few
# microseconds), and it updates only every 100 ms there. It is read at every window boundary and at most
# this often in between; the other samples leave it empty.
COUNTER_EVERY_S = 1.0


def _text(value: str | bytes) -> str:
    # Older bindings return bytes for names, UUIDs and versions.
    return value.decode() if isinstance(value, bytes) else value


def requested_gpus(devices: Sequence[int] | None, env: Mapping[str, str]) -> tuple[list[str] | None, str, str]:
    """Which GPUs were asked for: (tokens or None for all, how they were chosen, source).

    Tokens are NVML indices or GPU UUIDs (or UUID prefixes, as CUDA accepts them).
    """
    if devices is not None:
        return [str(i) for i in devices], f"devices={list(devices)}", "devices"
    if "CUDA_VISIBLE_DEVICES" in env:
        value = env["CUDA_VISIBLE_DEVICES"]
        tokens = []
        for token in value.split(","):
            token = token.strip()
            if not token or token.startswith("-"):
                break  # CUDA ignores everything from the first invalid entry on ("-1" hides all GPUs)
            tokens.append(token)
        return tokens, f"CUDA_VISIBLE_DEVICES={value}", "cuda"
    if "NVIDIA_VISIBLE_DEVICES" in env:
        value = env["NVIDIA_VISIBLE_DEVICES"]
        if value.strip().lower() == "all":
            return None, f"NVIDIA_VISIBLE_DEVICES={value}", "nvidia"
        if value.strip().lower() in ("", "none", "void"):
            return [], f"NVIDIA_VISIBLE_DEVICES={value}", "nvidia"
        tokens = [token.strip() for token in value.split(",") if token.strip()]
        return tokens, f"NVIDIA_VISIBLE_DEVICES={value}", "nvidia"
    return None, "all GPUs NVML sees", "all"


class NvmlSensor(Sensor):
    """Power, energy counter, utilisation, memory and temperature of each selected NVIDIA GPU."""

    name = "nvml"
    kind = "gpu"

    def __init__(self, devices: Sequence[int] | None = None, env: Mapping[str, str] = os.environ, nvml: Any = None):
        if nvml is None:
            import pynvml as nvml
        self.nvml = nvml
        self.devices = None if devices is None else list(devices)
        self.env = env
        self.error: str | None = None
        self.has_energy_counter: dict[int, bool] = {}  # per NVML index; filled by probe() and start()
        self.selection = ""
        self._handles: dict[int, Any] = {}
        self._names: dict[int, str] = {}
        self._devices_info: list[dict] = []
        self._driver_version: str | None = None
        self._nvml_version: str | None = None
        self._is_described = False  # _devices_info, _driver_version and _nvml_version are filled
        self._initialised = False
        self._counter_read_at = -math.inf

    def _selected_indices(self) -> list[int]:
        """NVML indices of the selected GPUs, in order; raises GpuSelectionError if one does not exist."""
        nvml = self.nvml
        count = nvml.nvmlDeviceGetCount()
        tokens, self.selection, source = requested_gpus(self.devices, self.env)
        if tokens is None:
            return list(range(count))
        uuids = {}
        if not all(token.isdigit() for token in tokens):
            uuids = {i: _text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)}
        indices, missing = [], []
        for token in tokens:
            if token.isdigit():
                found = [int(token)] if int(token) < count else []
            else:
                found = [i for i, uuid in uuids.items() if uuid.startswith(token)]
            if len(found) == 1:
                indices.append(found[0])
            else:
                missing.append(token)
        if missing and source == "nvidia" and len(tokens) == count:
            # Inside a container the runtime has already applied NVIDIA_VISIBLE_DEVICES: NVML sees only those
            # GPUs, renumbered from 0, so host indices no longer match but every GPU NVML sees is a selected one.
            return list(range(count))
        if missing:
            raise GpuSelectionError(f"GPU(s) {', '.join(missing)} selected by {self.selection} do not exist: "
                                    f"NVML sees {count} GPU(s)")
        return list(dict.fromkeys(indices))

    def _has_counter(self, handle: Any) -> bool:
        try:
            self.nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except self.nvml.NVMLError:  # NotSupported before Volta; any error means we cannot rely on it
            return False
        return True

    def probe(self) -> Availability:
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as error:
            return Availability(False, f"NVML unavailable: {error} (no NVIDIA driver?)")
        try:
            indices = self._selected_indices()
            if not indices:
                return Availability(False, f"no GPU selected ({self.selection})")
            handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in indices}
            self.has_energy_counter = {i: self._has_counter(h) for i, h in handles.items()}
            names = ", ".join(f"{self._described('nvmlDeviceGetName', h) or 'unnamed GPU'} ({i})"
                              for i, h in handles.items())
            return Availability(True, f"{len(indices)} GPU(s): {names}; {self.selection}")
        except GpuSelectionError as error:
            return Availability(False, str(error))
        except nvml.NVMLError as error:
            return Availability(False, f"NVML error while probing GPUs: {error}")
        finally:
            # NVML counts nvmlInit calls; this shutdown only undoes probe's own init.
            self._shutdown()

    def _shutdown(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except self.nvml.NVMLError:
            pass

    def start(self) -> None:
        nvml = self.nvml
        try:
            nvml.nvmlInit()
            self._initialised = True
            indices = self._selected_indices()
            self._handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in indices}
            self.has_energy_counter = {i: self._has_counter(h) for i, h in self._handles.items()}
            self._describe(self._handles)
            self._names = {device["index"]: device["name"] for device in self._devices_info}
        except GpuSelectionError as error:
            self.error = str(error)
        except nvml.NVMLError as error:
            self.error = f"NVML failed at start: {type(error).__name__}: {error}"

    def read(self, boundary: bool = True) -> list[dict]:
        if self.error is not None:
            return []
        now = time.monotonic()
        with_counter = boundary or now - self._counter_read_at >= COUNTER_EVERY_S
        if with_counter:
            self._counter_read_at = now
        samples = []
        for index, handle in self._handles.items():
            try:
                samples.append(self._sample(index, handle, with_counter))
            except self.nvml.NVMLError as error:
                self.error = f"GPU {index} lost mid-run: {type(error).__name__}: {error}"
                return []
        return samples

    def _optional(self, query, *args):
        """A side value the GPU may not support (utilisation, temperature, ...): None instead of ending the sensor."""
        try:
            return query(*args)
        except self.nvml.NVMLError_NotSupported:
            return None

    def _sample(self, index: int, handle: Any, with_counter: bool) -> dict:
        nvml = self.nvml
        utilization = self._optional(nvml.nvmlDeviceGetUtilizationRates, handle)
        memory = self._optional(nvml.nvmlDeviceGetMemoryInfo, handle)
        temperature = self._optional(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        limit_mW = self._optional(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        counter_mJ = (nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
                      if with_counter and self.has_energy_counter[index] else None)
        return {
            "gpu_index": index,
            "name": self._names[index],
            "power_W": nvml.nvmlDeviceGetPowerUsage(handle) / 1000,  # mW; full precision, never rounded
            "energy_counter_mJ": counter_mJ,
            "utilization_gpu_pct": None if utilization is None else utilization.gpu,
            "utilization_memory_pct": None if utilization is None else utilization.memory,
            "memory_used_MiB": None if memory is None else memory.used / 2**20,
            "memory_total_MiB": None if memory is None else memory.total / 2**20,
            "temperature_C": temperature,
            "power_limit_W": None if limit_mW is None else limit_mW / 1000,
        }

    def stop(self) -> None:
        self._handles = {}
        if self._initialised:
            self._initialised = False
            self._shutdown()

    def _described(self, function: str, *args) -> Any:
        """A value for the manifest; None where the GPU, driver or binding cannot give it (it never ends the sensor)."""
        query = getattr(self.nvml, function, None)  # nvmlSystemGetNVMLVersion is missing from old bindings
        if query is None:
            return None
        try:
            value = query(*args)
        except self.nvml.NVMLError:
            return None
        return _text(value) if isinstance(value, (str, bytes)) else value

    def _describe(self, handles: dict[int, Any]) -> None:
        """Each selected GPU, the driver and NVML, for the run manifest."""
        devices = []
        for index, handle in handles.items():
            limit_mW = self._described("nvmlDeviceGetEnforcedPowerLimit", handle)
            memory = self._described("nvmlDeviceGetMemoryInfo", handle)
            devices.append({
                "index": index,
                "name": self._described("nvmlDeviceGetName", handle),
                "uuid": self._described("nvmlDeviceGetUUID", handle),
                "has_energy_counter": self.has_energy_counter.get(index),
                "power_limit_W": None if limit_mW is None else limit_mW / 1000,
                "memory_total_MiB": None if memory is None else memory.total / 2**20,
            })
        self._devices_info = devices
        self._driver_version = self._described("nvmlSystemGetDriverVersion")
        self._nvml_version = self._described("nvmlSystemGetNVMLVersion")
        self._is_described = True

    def _describe_before_start(self) -> None:
        # NVML is initialised only between start() and stop(): a description asked for before the run initialises it
        # for itself, so that a manifest written before the measurement already names the GPUs. Errors leave it empty
        # (start() records them).
        nvml = self.nvml
        try:
            nvml.nvmlInit()
        except nvml.NVMLError:
            return
        try:
            handles = {i: nvml.nvmlDeviceGetHandleByIndex(i) for i in self._selected_indices()}
            self.has_energy_counter = {i: self._has_counter(h) for i, h in handles.items()}
            self._describe(handles)
        except (GpuSelectionError, nvml.NVMLError):
            pass
        finally:
            self._shutdown()

    def info(self) -> dict:
        """The selected GPUs (index, name, UUID, energy counter, power limit, total memory), the driver and NVML
        versions: as start() found them, or, before start(), as NVML says now. A value NVML cannot give is None."""
        if not self._is_described:
            self._describe_before_start()
        return {
            "devices": self._devices_info,
            "driver_version": self._driver_version,
            "nvml_version": self._nvml_version,
            "selection": self.selection,
        }
