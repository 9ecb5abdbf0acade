"""The one interface every energy/utilisation sensor implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str  # why not available, or a short description of what was found


class Sensor(ABC):
    """A source of samples. Lifecycle: probe() -> start() -> read() ... read() -> stop().

    Device errors never escape start() or read(): the sensor records them in `error` and
    read() returns [] from then on, so a GPU lost mid-run ends that sensor, not the run.
    """

    name: str  # "nvml" | "rapl" | "process" | "estimate"
    kind: str  # "gpu" | "cpu"
    error: str | None = None
    # Seconds after start() before read() has every value (a utilisation needs a span of time to be measured over).
    settle_s: float = 0.0

    @abstractmethod
    def probe(self) -> Availability:
        """A cheap check whether this sensor can measure here; never raises."""

    def start(self) -> None:
        """Opens handles and takes reference readings."""

    @abstractmethod
    def read(self, boundary: bool = True) -> list[dict]:
        """One sample: one dict per GPU for GPU sensors, one dict for CPU sensors; [] after an error.

        boundary: the sample opens or closes a measurement window, so every value must be read; between
        boundaries a sensor may leave a costly value out (None) on some samples."""

    def stop(self) -> None:
        """Releases handles; safe to call twice and after a failure."""

    def info(self) -> dict:
        """Static metadata for the run manifest."""
        return {}
