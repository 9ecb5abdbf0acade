"""CPU utilisation and memory of the training process and its children, through psutil."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

import psutil

from ect.sensors.base import Availability, Sensor


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# Listing descendants reads /proc/<pid>/stat of every process on the machine: the most expensive part of
# a sample by far, so the list is refreshed only this often (the known children are measured every sample).
CHILDREN_REFRESH_S = 2.0
# CPU times advance in clock ticks (10 ms): a utilisation measured over a few ms is one tick or none, e.g. 0 % or
# 600 % of the machine. A read sooner than this after the last measured one (the extra samples at window and phase
# edges) repeats that measurement, the utilisation of the latest span at least this long; one this soon after
# start() has none (empty: not measured).
MIN_CPU_SPAN_S = 0.05


class ProcessSensor(Sensor):
    """CPU % (0..100 for the whole machine) and RSS of a process and all its descendants."""

    name = "process"
    kind = "cpu"
    settle_s = MIN_CPU_SPAN_S  # a read sooner after start() has no utilisation (None)

    def __init__(self, pid: int | None = None):
        self.pid = os.getpid() if pid is None else pid
        self.error: str | None = None
        self.last_process_cpu_pct: float | None = None  # read by CpuPowerEstimate in the same sample
        self._process: psutil.Process | None = None
        # Kept across reads: cpu_percent() measures since the previous call on the same object.
        self._children: dict[psutil.Process, psutil.Process] = {}
        self._children_listed = -float("inf")  # time.monotonic() of the last listing
        self._counted: set[psutil.Process] = set()  # children whose CPU span has started
        self._cpu_count = psutil.cpu_count() or 1
        self._clock = time.monotonic
        # (clock, process %, system %) of the last measured span; the percentages None until one is measured
        self._measured: tuple[float, float | None, float | None] | None = None

    def probe(self) -> Availability:
        try:
            return Availability(True, f"process {self.pid} ({psutil.Process(self.pid).name()}) and its children")
        except psutil.Error as error:
            return Availability(False, f"process {self.pid}: {error}")

    def start(self) -> None:
        try:
            self._process = psutil.Process(self.pid)
            self._process.cpu_percent(None)
            self._children, self._children_listed, self._counted = {}, -float("inf"), set()
            self._children_usage()
        except psutil.Error as error:
            self.error = f"process {self.pid} gone: {error}"
        psutil.cpu_percent(None)
        self._measured = (self._clock(), None, None)

    def _children_usage(self, measure: bool = True) -> tuple[float, int]:
        """(CPU % since the last measuring call, RSS bytes) summed over the children; a new child counts from now.
        Without `measure`, the CPU % is 0 and the children's CPU spans go on (a new child's starts)."""
        if time.monotonic() - self._children_listed >= CHILDREN_REFRESH_S:
            children = self._process.children(recursive=True)
            self._children = {child: self._children.get(child, child) for child in children}
            self._counted &= set(self._children.values())
            self._children_listed = time.monotonic()
        cpu_pct, rss_bytes = 0.0, 0
        for child in self._children.values():
            try:
                if measure or child not in self._counted:
                    pct = child.cpu_percent(None)  # a new child's first call: 0, and its span starts
                    cpu_pct += pct if measure else 0.0
                    self._counted.add(child)
                rss_bytes += child.memory_info().rss
            except psutil.Error:
                pass  # exited since it was listed; its CPU time since the previous read is lost
        return cpu_pct, rss_bytes

    def read(self, boundary: bool = True) -> list[dict]:
        if self.error is not None or self._process is None:
            return []
        now = self._clock()
        since, process_pct, system_pct = self._measured
        measure = now - since >= MIN_CPU_SPAN_S  # else the last span's utilisation, none yet right after start()
        try:
            with self._process.oneshot():
                cpu_pct = self._process.cpu_percent(None) if measure else 0.0
                rss_bytes = self._process.memory_info().rss
            children_cpu_pct, children_rss_bytes = self._children_usage(measure)
        except psutil.Error as error:
            self.error = f"process {self.pid} gone: {error}"
            return []
        if measure:
            process_pct, system_pct = (cpu_pct + children_cpu_pct) / self._cpu_count, psutil.cpu_percent(None)
            self._measured = (now, process_pct, system_pct)
        self.last_process_cpu_pct = process_pct
        return [{"process_cpu_pct": process_pct, "process_rss_MiB": (rss_bytes + children_rss_bytes) / 2**20,
                 "system_cpu_pct": system_pct}]

    def info(self) -> dict:
        return {"pid": self.pid, "cpu_count": psutil.cpu_count(), "cpu_model": cpu_model()}
