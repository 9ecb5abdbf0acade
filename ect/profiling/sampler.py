"""A background sampler: reads every selected sensor at a fixed interval and appends rows to gpu.csv and cpu.csv."""

from __future__ import annotations

import csv
import math
import threading
import time
from pathlib import Path

from ect.errors import MeasurementError
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms
from ect.raw.layout import CPU_FILE, GPU_FILE

FLUSH_EVERY_S = 1.0


class _CsvLog:
    """An append-only CSV whose rows reach the disk at least every FLUSH_EVERY_S (a crash keeps them)."""

    def __init__(self, path: Path, columns: tuple[str, ...]):
        self.handle = open(path, "a", newline="")
        self.writer = csv.DictWriter(self.handle, columns, extrasaction="ignore")
        if self.handle.tell() == 0:
            self.writer.writeheader()
        self.flushed = time.monotonic()

    def write(self, rows: list[dict]) -> None:
        self.writer.writerows(rows)
        if time.monotonic() - self.flushed >= FLUSH_EVERY_S:
            self.flush()

    def flush(self) -> None:
        self.handle.flush()
        self.flushed = time.monotonic()

    def close(self) -> None:
        self.flush()
        self.handle.close()


class Sampler:
    """Samples `choice`'s sensors every `interval_s` on a thread, keeps the samples in memory and on disk.

    Ticks are drift-free: the thread sleeps until start + k * interval, not a fixed time after each
    sample; ticks missed while a sample was slow are skipped, not crowded together. Timestamps are
    taken at millisecond resolution, the resolution of the CSV files, so that both agree exactly.
    """

    def __init__(self, choice, folder: Path | None, interval_s: float, clock=time.time, monotonic=time.monotonic):
        if interval_s <= 0:
            raise MeasurementError(f"sampling interval must be > 0 s, got {interval_s}")
        self.choice = choice
        self.interval_s = interval_s
        self.clock = clock
        self.monotonic = monotonic
        self.times_ms: list[int] = []
        self.gpu_rows: list[list[dict]] = []  # per sample, one dict per GPU
        self.cpu_rows: list[dict] = []
        self.missed_ticks = 0
        self.cpu_power_source = "rapl" if any(s.name == "rapl" for s in choice.cpu) else "estimate"
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._gpu_log = _CsvLog(folder / GPU_FILE, GPU_COLUMNS) if folder and choice.gpu else None
        self._cpu_log = _CsvLog(folder / CPU_FILE, CPU_COLUMNS) if folder else None

    def start(self) -> None:
        """Starts the sensors, takes the first sample once every sensor can give every value, then starts the thread.

        The wait is here, in the caller's thread: a window begun right after start() has every sensor's values (the
        process's CPU utilisation, hence the estimated CPU power) in its first sample, not only from the thread's
        first tick, which a busy CPU delays (0.27 s and 0.57 s were seen on two cores running two DAGs)."""
        sensors = (*self.choice.gpu, *self.choice.cpu)
        for sensor in sensors:
            sensor.start()
        time.sleep(max((sensor.settle_s for sensor in sensors), default=0.0))
        self.sample_now()
        self._thread = threading.Thread(target=self._run, name="ect-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        origin = self.monotonic()
        tick = 1
        while not self._stop.is_set():
            delay = origin + tick * self.interval_s - self.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self.sample_now(boundary=False)
            behind = math.floor((self.monotonic() - origin) / self.interval_s)
            if behind > tick:
                self.missed_ticks += behind - tick
                tick = behind
            tick += 1

    def sample_now(self, boundary: bool = True) -> int:
        """Reads every sensor once (also from other threads, e.g. at window boundaries); returns its time in ms.

        The periodic ticks pass boundary=False: sensors may then skip costly values (the NVML energy counter)."""
        with self._lock:
            t_ms = round(self.clock() * 1000)
            if self.times_ms and t_ms <= self.times_ms[-1]:
                t_ms = self.times_ms[-1] + 1  # timestamps stay strictly increasing
            gpu = [row for sensor in self.choice.gpu for row in sensor.read(boundary)]
            cpu: dict = {"cpu_power_source": self.cpu_power_source}
            for sensor in self.choice.cpu:  # the estimate reads the process sensor's value: order matters
                for row in sensor.read(boundary):
                    cpu.update(row)
            self.times_ms.append(t_ms)
            self.gpu_rows.append(gpu)
            self.cpu_rows.append(cpu)
            stamp = iso_utc_ms(t_ms)
            if self._gpu_log and gpu:
                self._gpu_log.write([{"timestamp": stamp, **row} for row in gpu])
            if self._cpu_log:
                self._cpu_log.write([{"timestamp": stamp, **cpu}])
            return t_ms

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        try:
            self.sample_now()
        finally:
            for log in (self._gpu_log, self._cpu_log):
                if log:
                    log.close()
            for sensor in (*self.choice.gpu, *self.choice.cpu):
                sensor.stop()
