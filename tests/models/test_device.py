"""GPU selection and memory limits per Keras backend. This machine has no GPU: the environment a backend is given
before its import, and the refusals, are checked with a fake NVML and fake frameworks; the CPU-only result ([]) of
each installed framework for real, each in its own process (one backend per process, chosen before the import)."""

import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from conftest import REPO
from ect.errors import ConfigError
from ect.models.device import GPU_CONFIGURATORS, MIB, JaxGpus, TorchGpus, configure_gpus

GIB = 2**30


class FakeNvml:
    """pynvml with GPUs of these total memories in bytes (None: no driver)."""

    class NVMLError(Exception):
        pass

    def __init__(self, totals):
        self.totals = totals

    def nvmlInit(self):
        if self.totals is None:
            raise self.NVMLError("Driver Not Loaded")

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return len(self.totals)

    def nvmlDeviceGetHandleByIndex(self, index):
        return index

    def nvmlDeviceGetMemoryInfo(self, handle):
        return SimpleNamespace(total=self.totals[handle])


def fake_jax(monkeypatch, gpu_names):
    devices = [SimpleNamespace(platform="gpu", device_kind=name) for name in gpu_names]
    monkeypatch.setitem(sys.modules, "jax", SimpleNamespace(devices=lambda: devices or [
        SimpleNamespace(platform="cpu", device_kind="cpu")]))


def fake_torch(monkeypatch, totals):
    fractions = {}
    cuda = SimpleNamespace(
        device_count=lambda: len(totals),
        get_device_name=lambda i: f"NVIDIA H200 #{i}",
        get_device_properties=lambda i: SimpleNamespace(total_memory=totals[i]),
        set_per_process_memory_fraction=lambda fraction, i: fractions.__setitem__(i, fraction))
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(cuda=cuda))
    return fractions


@pytest.mark.parametrize("configurator", [JaxGpus, TorchGpus])
def test_gpu_indices_become_cuda_visible_devices_in_nvml_order(configurator):
    env = {}
    configurator(env, FakeNvml([80 * GIB] * 4)).restrict((3, 1))
    assert env == {"CUDA_VISIBLE_DEVICES": "3,1", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@pytest.mark.parametrize("configurator", [JaxGpus, TorchGpus])
def test_none_hides_every_gpu_and_all_leaves_the_environment_alone(configurator):
    env = {}
    configurator(env, FakeNvml([80 * GIB])).restrict("none")
    assert env == {"CUDA_VISIBLE_DEVICES": ""}
    env = {"CUDA_VISIBLE_DEVICES": "2"}
    configurator(env, FakeNvml([80 * GIB])).restrict("all")
    assert env == {"CUDA_VISIBLE_DEVICES": "2"}


def test_indices_pick_among_the_gpus_an_outer_cuda_visible_devices_shows():
    env = {"CUDA_VISIBLE_DEVICES": "4,6", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    JaxGpus(env, FakeNvml([80 * GIB] * 8)).restrict((1,))
    assert env == {"CUDA_VISIBLE_DEVICES": "6", "CUDA_DEVICE_ORDER": "FASTEST_FIRST"}
    with pytest.raises(ConfigError) as raised:
        TorchGpus({"CUDA_VISIBLE_DEVICES": "4,6"}, FakeNvml([80 * GIB] * 8)).restrict((0, 2))
    assert str(raised.value) == ("GPUS=[0, 2]: GPU indices [2] do not exist; PyTorch can see 2 GPU(s) "
                                 "(CUDA_VISIBLE_DEVICES=4,6)")


@pytest.mark.parametrize("configurator, name", [(JaxGpus, "JAX"), (TorchGpus, "PyTorch")])
def test_missing_indices_are_refused_before_the_import_naming_gpus(configurator, name):
    env = {}
    with pytest.raises(ConfigError) as raised:
        configurator(env, FakeNvml([80 * GIB] * 2)).configure((0, 5), None)
    assert str(raised.value) == f"GPUS=[0, 5]: GPU indices [5] do not exist; {name} can see 2 GPU(s) (NVML)"
    assert env == {}


def test_jax_allocates_as_needed_up_to_the_limit_as_a_fraction_of_gpu_memory(monkeypatch):
    fake_jax(monkeypatch, ["NVIDIA H200", "NVIDIA H200"])
    env = {"XLA_PYTHON_CLIENT_MEM_FRACTION": ".9"}  # the deprecated name: jaxlib refuses both together
    names = JaxGpus(env, FakeNvml([80 * GIB, 80 * GIB])).configure("all", 4096)
    assert names == ["NVIDIA H200", "NVIDIA H200"]
    assert env == {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", "XLA_CLIENT_MEM_FRACTION": "0.05"}


def test_jax_takes_the_fraction_of_the_largest_gpu_so_that_none_gets_more_than_the_limit(monkeypatch):
    fake_jax(monkeypatch, ["small", "large"])
    env = {}
    JaxGpus(env, FakeNvml([40 * GIB, 80 * GIB])).configure("all", 8192)
    assert float(env["XLA_CLIENT_MEM_FRACTION"]) == 0.1


def test_jax_refuses_a_limit_above_the_gpu_memory(monkeypatch):
    fake_jax(monkeypatch, ["NVIDIA H200"])
    with pytest.raises(ConfigError) as raised:
        JaxGpus({}, FakeNvml([80 * GIB])).configure((0,), 100_000)
    assert str(raised.value) == "GPU_MEM_LIMIT=100000 MB is more than the memory of the largest GPU: 81920 MB"


def test_jax_refuses_a_limit_it_cannot_turn_into_a_fraction_when_it_sees_a_gpu(monkeypatch):
    fake_jax(monkeypatch, ["NVIDIA H200"])
    with pytest.raises(ConfigError, match=r"^GPU_MEM_LIMIT=4096 MB: JAX sees 1 GPU\(s\) but their memory is unknown "
                                          r"\(NVML unavailable: Driver Not Loaded\)"):
        JaxGpus({}, FakeNvml(None)).configure("all", 4096)
    fake_jax(monkeypatch, [])  # no GPU: nothing to limit
    env = {}
    assert JaxGpus(env, FakeNvml(None)).configure("all", 4096) == []
    assert "XLA_CLIENT_MEM_FRACTION" not in env


def test_jax_on_no_gpu_runs_on_the_cpu(monkeypatch):
    fake_jax(monkeypatch, [])
    env = {}
    assert JaxGpus(env, FakeNvml([80 * GIB])).configure("none", 4096) == []
    assert env == {"CUDA_VISIBLE_DEVICES": "", "XLA_PYTHON_CLIENT_PREALLOCATE": "false", "JAX_PLATFORMS": "cpu"}


def test_fewer_gpus_than_selected_in_the_framework_is_refused_with_how_to_install_it(monkeypatch):
    fake_jax(monkeypatch, [])  # a CPU-only jaxlib on a GPU host
    with pytest.raises(ConfigError) as raised:
        JaxGpus({}, FakeNvml([80 * GIB] * 2)).configure((1,), None)
    assert str(raised.value).startswith("GPUS=[1]: JAX sees 0 GPU(s) (CUDA_VISIBLE_DEVICES=1); is its CUDA build "
                                        "installed? pip install")


def test_torch_caps_each_visible_gpu_at_the_limit(monkeypatch):
    fractions = fake_torch(monkeypatch, [80 * GIB, 40 * GIB])
    env = {}
    assert TorchGpus(env, FakeNvml([80 * GIB, 40 * GIB])).configure((0, 1), 4096) == [
        "NVIDIA H200 #0", "NVIDIA H200 #1"]
    assert fractions == {0: 4096 * MIB / (80 * GIB), 1: 4096 * MIB / (40 * GIB)}
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_torch_refuses_a_limit_above_a_gpu_s_memory(monkeypatch):
    fake_torch(monkeypatch, [16 * GIB])
    with pytest.raises(ConfigError) as raised:
        TorchGpus({}, FakeNvml(None)).configure("all", 20_000)
    assert str(raised.value) == ("GPU_MEM_LIMIT=20000 MB is more than the memory of GPU 0 (NVIDIA H200 #0): "
                                 "16384 MB")


def test_every_backend_has_a_configurator_and_an_unknown_one_is_refused():
    from ect.backends import BACKENDS

    assert set(GPU_CONFIGURATORS) == set(BACKENDS)
    with pytest.raises(ConfigError, match="unknown backend 'caffe'"):
        configure_gpus("caffe", "all", None)


def _configure_in_a_new_process(backend: str, gpus) -> dict:
    code = (
        "import json, sys\n"
        "from ect.backends import select_backend\n"
        "from ect.errors import ConfigError\n"
        "from ect.models.device import configure_gpus\n"
        f"select_backend({backend!r})\n"
        "try:\n"
        f"    result = {{'names': configure_gpus({backend!r}, {gpus!r}, 1024)}}\n"
        "except ConfigError as error:\n"
        "    result = {'error': str(error)}\n"
        "others = {'tensorflow', 'jax', 'torch'} - {" + repr(backend) + "}\n"
        "result['also_imported'] = sorted(name for name in others if sys.modules.get(name) is not None)\n"
        "print(json.dumps(result))\n")
    env = {key: value for key, value in os.environ.items() if key not in ("KERAS_BACKEND", "CUDA_VISIBLE_DEVICES")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _skip_unless_installed(backend: str) -> None:
    if importlib.util.find_spec(backend) is None:  # not imported here: each backend in its own process
        pytest.skip(f"{backend} is not installed")


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_on_a_cpu_only_host_each_framework_sees_no_gpu(backend):
    _skip_unless_installed(backend)
    result = _configure_in_a_new_process(backend, "all")
    assert result["names"] == []
    if backend != "tensorflow":  # (TensorFlow itself imports JAX where it is installed)
        assert result["also_imported"] == []


@pytest.mark.parametrize("backend, framework", [("tensorflow", "TensorFlow"), ("jax", "JAX")])
def test_on_a_cpu_only_host_a_gpu_index_is_refused(backend, framework):
    _skip_unless_installed(backend)
    result = _configure_in_a_new_process(backend, (0,))
    assert result["error"].startswith(f"GPUS=[0]: GPU indices [0] do not exist; {framework} sees 0 GPU(s)"
                                      if backend == "tensorflow" else "GPUS=[0]: JAX sees 0 GPU(s)")
