"""A run's idle baseline and the GPU host's thermal state between runs.

Before each run's measurement window the run measures a short idle window ("idle_baseline"): each sensor's idle power
and the GPUs' temperature at its start. It runs in the training process after the framework has started, so it is
the idle of a process that holds a GPU context: on an H200 (driver 580) 115-117 W at a 1,980 MHz SM clock, where a
GPU no process uses idles at 77 W. The campaign's first baseline (the earliest of its runs' idle baselines) is the
reference: a run whose start temperature or idle power is above it by more than the tolerance started hot, and the
cool-down between runs waits until the GPUs are back within the tolerance of it (ect.profiling.warmup.cool_down).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from ect.raw.layout import MANIFEST_FILE, campaign_of
from ect.raw.manifest import read_manifest

IDLE_WINDOW = "idle_baseline"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tolerance:
    """How far above a baseline a GPU may be and still count as back at it: temperature in C, idle power in %."""

    temperature_C: float = 2.0
    power_pct: float = 10.0

    @classmethod
    def of(cls, experiment) -> Tolerance:
        """COOLDOWN_TOLERANCE_C and COOLDOWN_TOLERANCE_PCT of the experiment settings."""
        return cls(experiment.cooldown_tolerance_c, experiment.cooldown_tolerance_pct)

    def to_dict(self) -> dict:
        return {"temperature_C": self.temperature_C, "power_pct": self.power_pct}


@dataclass(frozen=True)
class Baseline:
    """A GPU host's idle state: the hottest measured GPU's temperature and the measured GPUs' idle power together
    (None where not measured)."""

    temperature_C: float | None
    gpu_power_W: float | None
    run: str | None = None  # "<architecture>/<run id>" (one run id per repetition: architectures share it)
    start_unix_s: float | None = None

    @property
    def comparable(self) -> bool:
        return self.temperature_C is not None or self.gpu_power_W is not None

    def limits(self, tolerance: Tolerance) -> tuple[float | None, float | None]:
        """The highest temperature (C) and idle power (W) still within the tolerance of this baseline."""
        temperature = None if self.temperature_C is None else self.temperature_C + tolerance.temperature_C
        power = None if self.gpu_power_W is None else self.gpu_power_W * (1 + tolerance.power_pct / 100)
        return temperature, power

    def hotter(self, temperature_C: float | None, gpu_power_W: float | None, tolerance: Tolerance) -> list[str]:
        """Why a state is above this baseline by more than the tolerance; empty when it is within it (lower is fine:
        a process without a GPU context idles lower)."""
        highest_C, highest_W = self.limits(tolerance)
        reasons = []
        if highest_C is not None and temperature_C is not None and temperature_C > highest_C:
            reasons.append(f"temperature {temperature_C:.3g} C above {self.temperature_C:.3g} C + "
                           f"{tolerance.temperature_C:g} C")
        if highest_W is not None and gpu_power_W is not None and gpu_power_W > highest_W:
            reasons.append(f"idle power {gpu_power_W:.4g} W above {self.gpu_power_W:.4g} W + {tolerance.power_pct:g} %")
        return reasons

    def describe(self) -> str:
        parts = ([] if self.temperature_C is None else [f"{self.temperature_C:.3g} C"]) + \
            ([] if self.gpu_power_W is None else [f"{self.gpu_power_W:.4g} W"])
        return ", ".join(parts) + (f" (run {self.run})" if self.run else "")

    def to_dict(self) -> dict:
        return {"run": self.run, "start_unix_s": self.start_unix_s, "temperature_C": self.temperature_C,
                "gpu_power_W": self.gpu_power_W}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def baseline_of(record, run: str | None = None) -> Baseline | None:
    """The Baseline of a manifest's idle_baseline record; None when it has none to compare with."""
    if not isinstance(record, dict):
        return None
    baseline = Baseline(_number(record.get("start_temperature_C")), _number(record.get("gpu_power_W_total")), run,
                        _number(record.get("start_unix_s")))
    return baseline if baseline.comparable else None


def campaign_baseline(environment_folder: Path, campaign: str, before_unix_s: float | None = None,
                      exclude: Path | None = None) -> Baseline | None:
    """The campaign's first baseline: the earliest idle baseline among the campaign's run folders of one environment
    (environment_folder/<architecture>/<run id>/manifest.json; a failed run's counts, it measured its idle state),
    earlier than `before_unix_s` and not of the run folder `exclude`; None when there is none."""
    found = []
    for path in sorted(Path(environment_folder).glob(f"*/*/{MANIFEST_FILE}")):
        folder = path.parent
        if (exclude is not None and folder == Path(exclude)) or campaign_of(folder.name) != campaign:
            continue
        manifest = read_manifest(folder)
        baseline = baseline_of(manifest.idle_baseline if manifest else None, f"{folder.parent.name}/{folder.name}")
        if baseline is None or baseline.start_unix_s is None:
            continue
        if before_unix_s is None or baseline.start_unix_s < before_unix_s:
            found.append(baseline)
    return min(found, key=lambda b: b.start_unix_s, default=None)


def _temperatures_at(sampler, time_ms: int) -> dict[int, float]:
    """Each GPU's temperature in the first sample at or after `time_ms` (a window's edge is a sample of its own)."""
    with sampler._lock:
        samples = [(t, rows) for t, rows in zip(sampler.times_ms, sampler.gpu_rows) if t >= time_ms]
    for _, rows in samples[:1]:
        return {row["gpu_index"]: float(row["temperature_C"]) for row in rows if row.get("temperature_C") is not None}
    return {}


def idle_record(measurement, sampler) -> dict:
    """The manifest's idle_baseline of an idle window (Measurement): power per GPU and in all, CPU (package) and DRAM
    power, total power, each GPU's temperature at its start and the hottest's (start_temperature_C)."""
    energy, seconds = measurement.energy, measurement.duration_s

    def power(joules):
        return None if joules is None or seconds <= 0 or math.isnan(joules) else joules / seconds

    temperatures = _temperatures_at(sampler, round(measurement.start * 1000))
    gpu_W = {str(index): power(joules) for index, joules in energy.gpu_J.items()}
    return {
        "start_unix_s": measurement.start, "end_unix_s": measurement.end, "duration_s": seconds,
        "samples": measurement.samples,
        "gpu_power_W": gpu_W or None, "gpu_energy_source": {str(k): v for k, v in energy.gpu_source.items()} or None,
        "gpu_power_W_total": power(energy.gpu_total_J),
        "cpu_power_W": power(energy.cpu_J), "cpu_energy_source": energy.cpu_source,
        "dram_power_W": power(energy.dram_J), "power_W": power(energy.total_J),
        "gpu_temperature_C": {str(index): value for index, value in temperatures.items()} or None,
        "start_temperature_C": max(temperatures.values(), default=None),
    }


def measure_idle_baseline(monitor, seconds: float, folder: Path, tolerance: Tolerance, sleep=time.sleep) -> dict:
    """Measures `seconds` of idle in the monitor's window "idle_baseline" and compares it with the campaign's first
    baseline (the runs of the campaign of the run folder `folder`, .../<environment>/<architecture>/<run id>, in its
    environment's folder, measured before it): the record for the manifest, with `reference` (None: this run is the
    campaign's first), `tolerance`, `hot_start` and its reasons."""
    folder = Path(folder)
    run_id = folder.name
    monitor.begin_window(IDLE_WINDOW)
    sleep(seconds)
    record = idle_record(monitor.end_window(IDLE_WINDOW), monitor.sampler)
    mine = baseline_of(record, f"{folder.parent.name}/{run_id}")
    reference = campaign_baseline(folder.parent.parent, campaign_of(run_id), record["start_unix_s"], exclude=folder)
    reasons = [] if mine is None or reference is None else reference.hotter(
        mine.temperature_C, mine.gpu_power_W, tolerance)
    record.update({"reference": None if reference is None else reference.to_dict(), "tolerance": tolerance.to_dict(),
                   "hot_start": None if mine is None else bool(reasons), "hot_start_reasons": reasons})
    idle = "" if record["power_W"] is None else f"{record['power_W']:.4g} W in all"
    gpu = "" if mine is None else f"; GPU {mine.describe()}"
    log.info(f"idle baseline over {record['duration_s']:.3g} s: {idle}{gpu}"
             + ("" if reference is None else f"; the campaign's first baseline: {reference.describe()}"))
    if reasons:
        log.warning(f"run {mine.run} starts hot: {'; '.join(reasons)} (the campaign's first baseline, tolerance "
                    f"{tolerance.temperature_C:g} C and {tolerance.power_pct:g} %)")
    return record
