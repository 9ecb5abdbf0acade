"""ect.processes: items done in spawned worker processes, in order, their log records handled here, a dead worker's
items done in this process; one process where children are not allowed or the work is small."""

import logging
import multiprocessing
import os

from ect import processes
from ect.processes import ordered_map, worker_count


def square_and_log(n: int) -> tuple[int, int]:
    logging.getLogger("ect.test_processes").info(f"squared {n}")
    return n * n, os.getpid()


def exits_in_a_worker(n: int) -> int:
    if n == 3 and multiprocessing.current_process().name != "MainProcess":
        os._exit(1)  # a worker killed mid-item (out of memory, a crash in a library)
    return n


def test_items_are_done_in_worker_processes_in_order_and_their_log_lines_reach_this_process(caplog):
    caplog.set_level(logging.INFO, logger="ect")
    results = list(ordered_map(square_and_log, list(range(20)), workers=2))
    assert [square for square, _ in results] == [n * n for n in range(20)]
    assert os.getpid() not in {pid for _, pid in results}
    assert sorted(r.getMessage() for r in caplog.records if r.name == "ect.test_processes") == \
        sorted(f"squared {n}" for n in range(20))


def test_the_items_a_dead_worker_leaves_are_done_here(caplog):
    assert list(ordered_map(exits_in_a_worker, list(range(8)), workers=2)) == list(range(8))
    assert any("worker process ended unexpectedly" in r.getMessage() for r in caplog.records)


def test_one_worker_is_this_process():
    assert {pid for _, pid in ordered_map(square_and_log, [1, 2, 3], workers=1)} == {os.getpid()}


def test_small_work_and_daemonic_processes_use_no_workers(monkeypatch):
    monkeypatch.setattr(processes, "cpu_count", lambda: 2)
    assert worker_count(999, min_bytes=1000) == 1
    assert worker_count(1000, min_bytes=1000) == 2
    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert worker_count(1000, min_bytes=1000) == 1


def test_one_cpu_uses_no_workers(monkeypatch):
    monkeypatch.setattr(processes, "cpu_count", lambda: 1)
    assert worker_count(10_000, min_bytes=1000) == 1
