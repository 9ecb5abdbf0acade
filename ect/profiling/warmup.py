"""Warm-up and cool-down between measurements, as the original did (10 minutes before, 5 between runs)."""

from __future__ import annotations

import logging
import time

PROGRESS_EVERY_S = 60.0

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


def cool_down(seconds: float, sleep=time.sleep) -> None:
    """Idles for `seconds`, so that one run's heat does not bias the next run's energy."""
    log.info(f"cool-down: {seconds:.0f} s")
    remaining = seconds
    while remaining > 0:
        step = min(PROGRESS_EVERY_S, remaining)
        sleep(step)
        remaining -= step
        if remaining > 0:
            log.info(f"cool-down: {seconds - remaining:.0f}/{seconds:.0f} s")
