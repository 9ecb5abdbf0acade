"""Warm-up and cool-down between measurements, as the original did (10 minutes before, 5 between runs)."""

from __future__ import annotations

import logging
import time

PROGRESS_EVERY_S = 60.0

log = logging.getLogger(__name__)


def warm_up(seconds: float) -> int:
    """Keeps the compute device busy with matrix products (the GPU if TensorFlow sees one) for `seconds`.

    Brings clocks, fans and temperatures to their working state before the first measurement.
    Returns the number of products computed.
    """
    import tensorflow as tf

    device = "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
    log.info(f"warm-up: {seconds:.0f} s of matrix products on {device}")
    with tf.device(device):
        matrix = tf.random.stateless_uniform((1024, 1024), seed=(0, 0))
        started = last_report = time.monotonic()
        products = 0
        while time.monotonic() - started < seconds:
            matrix = tf.linalg.matmul(matrix, matrix)
            matrix = matrix / (tf.reduce_max(tf.abs(matrix)) + 1.0)
            float(matrix[0, 0])  # wait for the device
            products += 1
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                log.info(f"warm-up: {last_report - started:.0f}/{seconds:.0f} s")
    return products


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
