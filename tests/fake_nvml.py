"""A fake pynvml over a list of fake GPUs, for the sensor tests and for profiled runs without a GPU."""

from types import SimpleNamespace


class FakeNVMLError(Exception):
    pass


class FakeNotSupported(FakeNVMLError):
    pass


class FakeNvml:
    """The pynvml functions the sensor uses, over a list of fake GPUs; handles are the GPU indices.

    A GPU's "unsupported" names the functions that raise NotSupported for it; nvml_version=None leaves
    nvmlSystemGetNVMLVersion out, as older bindings do."""

    NVMLError = FakeNVMLError
    NVMLError_NotSupported = FakeNotSupported
    NVML_TEMPERATURE_GPU = 0

    def __init__(self, gpus, nvml_version: str | None = None, driver_version: bytes | None = b"570.86.15"):
        self.gpus = gpus
        self.initialised = 0
        self.fail_power = False
        self.driver_version = driver_version
        if nvml_version is not None:
            self.nvmlSystemGetNVMLVersion = lambda: nvml_version

    def _ask(self, handle, function):
        if function in self.gpus[handle].get("unsupported", ()):
            raise FakeNotSupported("Not Supported")

    def nvmlInit(self):
        self.initialised += 1

    def nvmlShutdown(self):
        if self.initialised == 0:
            raise FakeNVMLError("Uninitialized")
        self.initialised -= 1

    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        if index >= len(self.gpus):
            raise FakeNVMLError("Invalid Argument")
        return index

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for index, gpu in enumerate(self.gpus):
            if gpu["uuid"] == uuid:
                return index
        raise FakeNVMLError("Not Found")

    def nvmlDeviceGetUUID(self, handle):
        self._ask(handle, "uuid")
        return self.gpus[handle]["uuid"]

    def nvmlDeviceGetName(self, handle):
        self._ask(handle, "name")
        return self.gpus[handle]["name"]

    def nvmlDeviceGetPowerUsage(self, handle):
        if self.fail_power:
            raise FakeNVMLError("GPU is lost")
        return self.gpus[handle]["power_mW"]

    def nvmlDeviceGetTotalEnergyConsumption(self, handle):
        counter = self.gpus[handle].get("energy_mJ")
        if counter is None:
            raise FakeNotSupported("Not Supported")
        return counter

    def nvmlDeviceGetUtilizationRates(self, handle):
        return SimpleNamespace(gpu=87, memory=41)

    def nvmlDeviceGetMemoryInfo(self, handle):
        self._ask(handle, "memory")
        return SimpleNamespace(used=3 * 2**30 + 2**19, total=80 * 2**30)

    def nvmlDeviceGetTemperature(self, handle, sensor):
        assert sensor == self.NVML_TEMPERATURE_GPU
        return self.gpus[handle].get("temperature_C", 54)

    def nvmlDeviceGetEnforcedPowerLimit(self, handle):
        self._ask(handle, "power_limit")
        return 700000

    def nvmlSystemGetDriverVersion(self):
        if self.driver_version is None:
            raise FakeNVMLError("Unknown Error")
        return self.driver_version


def gpu(index, energy_mJ=None, power_mW=119170, unsupported=()):
    return {"uuid": f"GPU-aaaa{index}-0000", "name": b"NVIDIA H200", "power_mW": power_mW, "energy_mJ": energy_mJ,
            "unsupported": set(unsupported)}
