"""CPU power estimated from the process's CPU utilisation and the CPU's TDP, where no RAPL counter is readable."""

from __future__ import annotations

from ect.sensors.base import Availability, Sensor
from ect.sensors.process import ProcessSensor

# CodeCarbon's fallback TDP when the CPU model is unknown.
DEFAULT_CPU_TDP_W = 85.0
METHOD = "TDP x process CPU utilisation (share of all CPUs)"


class CpuPowerEstimate(Sensor):
    """cpu_power_estimated_W = tdp_W * process CPU % / 100. CPU only: a GPU is never estimated.

    It uses the value the process sensor read last, so it must be read after the process sensor
    in the same sample (select_sensors puts it after the process sensor in SensorChoice.cpu).
    """

    name = "estimate"
    kind = "cpu"

    def __init__(self, process: ProcessSensor, tdp_W: float | None = None):
        self.process = process
        self.tdp_W = DEFAULT_CPU_TDP_W if tdp_W is None else float(tdp_W)
        self.tdp_source = "default" if tdp_W is None else "config"
        self.error: str | None = None

    def probe(self) -> Availability:
        return Availability(True, f"estimate: TDP x process CPU utilisation, TDP {self.tdp_W} W ({self.tdp_source})")

    def read(self, boundary: bool = True) -> list[dict]:
        if self.process.error is not None:
            self.error = f"no CPU utilisation to estimate from: {self.process.error}"
        if self.error is not None or self.process.last_process_cpu_pct is None:
            return []
        return [{"cpu_power_estimated_W": self.tdp_W * self.process.last_process_cpu_pct / 100}]

    def info(self) -> dict:
        return {"tdp_W": self.tdp_W, "tdp_source": self.tdp_source, "method": METHOD}
