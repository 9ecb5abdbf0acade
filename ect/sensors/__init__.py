"""Energy and utilisation sensors behind one interface: nvml (GPU), rapl, process and estimate (CPU)."""

from ect.sensors.base import Availability, Sensor
from ect.sensors.estimate import DEFAULT_CPU_TDP_W, CpuPowerEstimate
from ect.sensors.nvml import NvmlSensor
from ect.sensors.process import ProcessSensor
from ect.sensors.rapl import RaplSensor, wraparound_delta
from ect.sensors.select import SensorChoice, gpu_sensor, select_sensors

__all__ = [
    "Availability", "Sensor", "NvmlSensor", "RaplSensor", "wraparound_delta", "ProcessSensor", "CpuPowerEstimate",
    "DEFAULT_CPU_TDP_W", "SensorChoice", "gpu_sensor", "select_sensors",
]
