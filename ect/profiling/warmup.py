"""Warm-up before measurements, as the original did (10 minutes), and the cool-down between runs: until the GPU is
back at the campaign's first idle baseline (ect.profiling.thermal), COOLDOWN minutes at most."""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from dataclasses import dataclass

from ect.profiling.thermal import Baseline, Tolerance
from ect.sensors import gpu_sensor

PROGRESS_EVERY_S = 60.0
POLL_S = 1.0  # the cool-down reads the GPUs once a second
LOG_EVERY_S = 10.0
POWER_READINGS = 3  # the cool-down's power: the mean of the last 3 reads (NVML's power is itself a 1 s average)

log = logging.getLogger(__name__)


def warm_up(seconds: float) -> int:
    """Keeps the compute device busy with matrix products for `seconds`: keras.ops on the default device of the
    backend Keras runs on (its first visible GPU, else the CPU).

    Brings clocks, fans and temperatures to their working state before the first measurement.
    Returns the number of products computed.
    """
    import keras
    from keras import ops

    matrix = keras.random.uniform((1024, 1024), seed=0)
    log.info(f"warm-up: {seconds:.0f} s of matrix products on {device_name(matrix)} ({keras.backend.backend()})")
    started = last_report = time.monotonic()
    products = 0
    while time.monotonic() - started < seconds:
        matrix = ops.matmul(matrix, matrix)
        matrix = matrix / (ops.max(ops.abs(matrix)) + 1.0)
        ops.convert_to_numpy(matrix[0, 0])  # wait for the device
        products += 1
        if time.monotonic() - last_report >= PROGRESS_EVERY_S:
            last_report = time.monotonic()
            log.info(f"warm-up: {last_report - started:.0f}/{seconds:.0f} s")
    return products


def device_name(tensor) -> str:
    """The device a backend tensor lives on, as "gpu:0" or "cpu:0" (PyTorch: "cuda:0")."""
    device = tensor.device  # TensorFlow: ".../device:GPU:0"; JAX: a Device, "cuda:0"; PyTorch: a torch.device
    if getattr(device, "type", None) is not None:
        return f"{device.type}:{device.index or 0}"
    return str(device).rpartition("device:")[2].lower()


@dataclass(frozen=True)
class CoolDown:
    """How a cool-down ended: seconds waited; `reached`: back within the tolerance of the baseline (None: nothing was
    compared, without a GPU or a baseline); the last temperature (hottest GPU, C) and mean idle power (W) read."""

    seconds: float
    reached: bool | None
    temperature_C: float | None = None
    power_W: float | None = None


def cool_down(seconds: float, reference: Baseline | None = None, tolerance: Tolerance = Tolerance(),
              gpu_devices="all", sleep=time.sleep, clock=time.monotonic, nvml=None, env=os.environ) -> CoolDown:
    """Waits, at most `seconds`, until the GPUs that `gpu_devices` selects are back at `reference` (the campaign's
    first idle baseline): the hottest one's temperature at most tolerance C above it and their power, averaged over
    the last POWER_READINGS reads (one a second), at most tolerance % above it (lower is fine). Past `seconds` it
    logs a warning and returns. Without a GPU there is nothing to cool down: it returns at once; without a reference
    (the campaign's runs measured no idle baseline: IDLE_BASELINE 0) it waits the whole `seconds`."""
    if seconds <= 0:
        return CoolDown(0.0, None)
    sensor = gpu_sensor(gpu_devices, nvml=nvml, env=env)
    if sensor is None:
        log.info("cool-down: no GPU measured here, nothing to cool down")
        return CoolDown(0.0, None)
    if reference is None or not reference.comparable:
        log.info(f"cool-down: {seconds:.0f} s (no idle baseline of this campaign to wait for)")
        _wait(seconds, sleep)
        return CoolDown(seconds, None)
    highest_C, highest_W = reference.limits(tolerance)
    target = " and ".join(([] if highest_C is None else [f"at most {highest_C:.3g} C"])
                          + ([] if highest_W is None else [f"at most {highest_W:.4g} W"]))
    log.info(f"cool-down: until the GPU is back at the campaign's first idle baseline {reference.describe()}: "
             f"{target}; at most {seconds:.0f} s")
    sensor.start()
    try:
        return _wait_for(reference, tolerance, seconds, sensor, sleep, clock)
    finally:
        sensor.stop()


def _wait_for(reference: Baseline, tolerance: Tolerance, seconds: float, sensor, sleep, clock) -> CoolDown:
    started = logged = clock()
    powers: deque[float] = deque(maxlen=POWER_READINGS)
    while True:
        rows = sensor.read(boundary=False)
        elapsed = clock() - started
        if not rows:
            log.warning(f"cool-down: the GPU cannot be read ({sensor.error}); waiting the remaining "
                        f"{max(seconds - elapsed, 0):.0f} s")
            _wait(seconds - elapsed, sleep)
            return CoolDown(max(seconds, elapsed), None)
        temperatures = [row["temperature_C"] for row in rows if row.get("temperature_C") is not None]
        temperature = max(temperatures) if temperatures else None
        powers.append(math.fsum(row["power_W"] for row in rows))
        power = math.fsum(powers) / len(powers)
        hotter = reference.hotter(temperature, power, tolerance)
        state = (f"{'?' if temperature is None else f'{temperature:.3g}'} C, {power:.4g} W "
                 f"(mean of the last {len(powers)} s)")
        if not hotter and len(powers) == POWER_READINGS:
            log.info(f"cool-down: back at the campaign's first idle baseline after {elapsed:.0f} s: {state}")
            return CoolDown(elapsed, True, temperature, power)
        if elapsed >= seconds:
            log.warning(f"cool-down: the maximum of {seconds:.0f} s (COOLDOWN) passed and the GPU is not back at the "
                        f"campaign's first idle baseline {reference.describe()}: {'; '.join(hotter) or state}; "
                        "going on (the next run's manifest says whether it starts hot)")
            return CoolDown(elapsed, not hotter, temperature, power)
        if clock() - logged >= LOG_EVERY_S:
            logged = clock()
            log.info(f"cool-down: {elapsed:.0f}/{seconds:.0f} s, GPU at {state}; target {reference.describe()} "
                     f"+ {tolerance.temperature_C:g} C / + {tolerance.power_pct:g} %")
        sleep(min(POLL_S, seconds - elapsed))


def _wait(seconds: float, sleep) -> None:
    """Idles for `seconds`, saying so every PROGRESS_EVERY_S."""
    remaining = seconds
    while remaining > 0:
        step = min(PROGRESS_EVERY_S, remaining)
        sleep(step)
        remaining -= step
        if remaining > 0:
            log.info(f"cool-down: {seconds - remaining:.0f}/{seconds:.0f} s")
