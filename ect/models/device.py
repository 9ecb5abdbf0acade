"""Which GPUs a run's framework may use, and how much of their memory: one small class per Keras backend.

configure_gpus runs in the run's process after select_backend and before Keras or the framework is imported. JAX
and PyTorch take their GPUs from CUDA_VISIBLE_DEVICES (and JAX its memory limit from XLA's variables) when they
start CUDA, so those are set first; TensorFlow is told through tf.config before it touches a GPU. As Zeus keeps one
class per GPU vendor behind one interface, each backend is one class behind GPU_CONFIGURATORS.

GPUS are indices among the GPUs the process may see: all of the host's, or those of a CUDA_VISIBLE_DEVICES set
outside ect. Under JAX and PyTorch they count in PCI bus order (CUDA_DEVICE_ORDER), as NVML and the sensors do.
Call configure_gpus once per process: it narrows CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

import logging
import os
from typing import Any, MutableMapping

from ect.backends import get_backend
from ect.errors import ConfigError

log = logging.getLogger(__name__)

MIB = 2**20  # GPU_MEM_LIMIT is in MB of 2**20 bytes, as TensorFlow's memory_limit


class BackendGpus:
    """The GPUs of one backend. configure() restricts the framework to the selected GPUs ("all", "none" or
    indices), caps each one's memory at `memory_limit_mb` (None: no cap) and returns the visible GPUs' names."""

    backend = ""
    framework = ""  # as messages name it

    def __init__(self, env: MutableMapping[str, str] = os.environ, nvml: Any = None):
        self.env = env
        self.nvml = nvml  # the pynvml module; None: imported when needed

    def configure(self, gpus: str | tuple[int, ...], memory_limit_mb: int | None) -> list[str]:
        raise NotImplementedError


class TensorFlowGpus(BackendGpus):
    backend, framework = "tensorflow", "TensorFlow"

    def configure(self, gpus, memory_limit_mb):
        import tensorflow as tf

        physical = tf.config.list_physical_devices("GPU")
        if gpus == "none":
            selected = []
        elif gpus == "all":
            selected = physical
        else:
            _check_indices(gpus, len(physical), "TensorFlow sees")
            selected = [physical[i] for i in gpus]
        tf.config.set_visible_devices(selected, "GPU")
        for gpu in selected:
            if memory_limit_mb is not None:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit_mb)])
        return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in selected]


class CudaEnvironmentGpus(BackendGpus):
    """A backend that reads CUDA_VISIBLE_DEVICES when it starts CUDA: the environment first, then the import."""

    def configure(self, gpus, memory_limit_mb):
        self.restrict(gpus)
        self.before_import(gpus, memory_limit_mb)
        names = self.visible_gpus(memory_limit_mb)
        if gpus not in ("all", "none") and len(names) < len(gpus):
            raise ConfigError(
                f"GPUS={list(gpus)}: {self.framework} sees {len(names)} GPU(s) "
                f"(CUDA_VISIBLE_DEVICES={self.env.get('CUDA_VISIBLE_DEVICES')}); is its CUDA build installed? "
                f"{get_backend(self.backend).install}")
        return names

    def restrict(self, gpus) -> None:
        """CUDA_VISIBLE_DEVICES from GPUS: "none" hides every GPU, indices pick among the visible ones."""
        if gpus == "all":
            return
        if gpus == "none":
            self.env["CUDA_VISIBLE_DEVICES"] = ""
            return
        if "CUDA_VISIBLE_DEVICES" in self.env:  # set outside ect: GPUS picks among those
            outer = self.env["CUDA_VISIBLE_DEVICES"]
            visible = _cuda_tokens(outer)
            _check_indices(gpus, len(visible), f"{self.framework} can see", f" (CUDA_VISIBLE_DEVICES={outer})")
            chosen = [visible[i] for i in gpus]
        else:
            totals, _ = self.gpu_memory()
            if totals is not None:
                _check_indices(gpus, len(totals), f"{self.framework} can see", " (NVML)")
            chosen = [str(i) for i in gpus]  # without NVML, the framework's count after the import decides
        self.env.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
        self.env["CUDA_VISIBLE_DEVICES"] = ",".join(chosen)

    def before_import(self, gpus, memory_limit_mb) -> None:
        pass

    def visible_gpus(self, memory_limit_mb) -> list[str]:
        """Imports the framework; caps each visible GPU's memory where it can be done now; their names."""
        raise NotImplementedError

    def gpu_memory(self) -> tuple[list[int] | None, str]:
        """Total memory in bytes of each GPU NVML sees, in NVML's order, and "NVML"; (None, why) when NVML
        cannot tell."""
        nvml = self.nvml
        if nvml is None:
            try:
                import pynvml as nvml
            except ImportError:
                return None, "no module pynvml (nvidia-ml-py)"
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as error:
            return None, f"NVML unavailable: {error}"
        try:
            return [nvml.nvmlDeviceGetMemoryInfo(nvml.nvmlDeviceGetHandleByIndex(i)).total
                    for i in range(nvml.nvmlDeviceGetCount())], "NVML"
        except nvml.NVMLError as error:
            return None, f"NVML error: {error}"
        finally:
            try:
                nvml.nvmlShutdown()
            except nvml.NVMLError:
                pass


class JaxGpus(CudaEnvironmentGpus):
    backend, framework = "jax", "JAX"
    memory_problem: str | None = None  # why GPU_MEM_LIMIT could not be turned into a fraction

    def before_import(self, gpus, memory_limit_mb):
        # Allocate as needed, up to the fraction: not XLA's default of 75 % of every GPU at the first operation.
        self.env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
        if gpus == "none":
            self.env.setdefault("JAX_PLATFORMS", "cpu")
            return
        if memory_limit_mb is None:
            return
        totals, reason = self.gpu_memory()
        if not totals:
            # No GPU known to NVML: refused after the import if JAX sees one all the same.
            self.memory_problem = reason if totals is None else "NVML sees no GPU"
            return
        # One fraction for every GPU (XLA's variable), of the largest: on no GPU more than the limit.
        fraction = memory_fraction(memory_limit_mb, max(totals), "the largest GPU")
        # jaxlib 0.10 reads XLA_CLIENT_MEM_FRACTION and refuses it together with its deprecated older name.
        self.env.pop("XLA_PYTHON_CLIENT_MEM_FRACTION", None)
        self.env["XLA_CLIENT_MEM_FRACTION"] = str(fraction)
        log.info(f"GPU_MEM_LIMIT={memory_limit_mb} MB: JAX may use {fraction:.4g} of each GPU's memory "
                 f"(largest GPU: {max(totals) / MIB:.0f} MB)")

    def visible_gpus(self, memory_limit_mb):
        import jax

        devices = [device for device in jax.devices() if device.platform == "gpu"]
        if devices and memory_limit_mb is not None and self.memory_problem is not None:
            raise ConfigError(f"GPU_MEM_LIMIT={memory_limit_mb} MB: JAX sees {len(devices)} GPU(s) but their memory "
                              f"is unknown ({self.memory_problem}), so the limit cannot be set; install nvidia-ml-py "
                              "and the NVIDIA driver's NVML, or leave GPU_MEM_LIMIT empty")
        return [device.device_kind for device in devices]


class TorchGpus(CudaEnvironmentGpus):
    backend, framework = "torch", "PyTorch"

    def visible_gpus(self, memory_limit_mb):
        import torch

        names = []
        for index in range(torch.cuda.device_count()):
            name = torch.cuda.get_device_name(index)
            if memory_limit_mb is not None:
                total = torch.cuda.get_device_properties(index).total_memory
                torch.cuda.set_per_process_memory_fraction(
                    memory_fraction(memory_limit_mb, total, f"GPU {index} ({name})"), index)
            names.append(name)
        return names


GPU_CONFIGURATORS: dict[str, type[BackendGpus]] = {
    "tensorflow": TensorFlowGpus,
    "jax": JaxGpus,
    "torch": TorchGpus,
}


def configure_gpus(backend: str, gpus: str | tuple[int, ...], memory_limit_mb: int | None) -> list[str]:
    """Restrict the backend's framework to the environment's GPUs ("all", "none" or indices) with at most
    `memory_limit_mb` of each; returns the visible GPUs' names ([]: CPU only). Call it after select_backend and
    before Keras or the framework is imported."""
    get_backend(backend)  # ConfigError naming the known backends
    return GPU_CONFIGURATORS[backend]().configure(gpus, memory_limit_mb)


def memory_fraction(memory_limit_mb: int, total_bytes: int, gpu: str) -> float:
    """GPU_MEM_LIMIT as a fraction of a GPU's memory; ConfigError when the GPU has less."""
    fraction = memory_limit_mb * MIB / total_bytes
    if fraction > 1:
        raise ConfigError(f"GPU_MEM_LIMIT={memory_limit_mb} MB is more than the memory of {gpu}: "
                          f"{total_bytes / MIB:.0f} MB")
    return fraction


def _check_indices(gpus: tuple[int, ...], count: int, who_sees: str, source: str = "") -> None:
    missing = [i for i in gpus if i >= count]
    if missing:
        raise ConfigError(f"GPUS={list(gpus)}: GPU indices {missing} do not exist; {who_sees} {count} GPU(s){source}")


def _cuda_tokens(value: str) -> list[str]:
    """The GPUs a CUDA_VISIBLE_DEVICES value lets CUDA see: it ignores everything from the first invalid entry."""
    tokens = []
    for token in value.split(","):
        token = token.strip()
        if not token or token.startswith("-"):
            break
        tokens.append(token)
    return tokens
