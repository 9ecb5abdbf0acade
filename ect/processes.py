"""Work on many independent items (run folders) spread over worker processes where that pays and is allowed, in this
process otherwise: results in the items' order either way.

Worker processes are spawned, not forked: a fork copies this process's other threads' state (a background import,
Arrow's thread pool) mid-flight. A spawned worker starts a fresh interpreter (about half a second with the imports),
so processes pay only for enough work. A daemonic process (a Celery prefork worker's child) may not start children:
it does the work itself. What the workers log is handled by this process's loggers (the terminal, the task log).
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Callable, Iterator, TypeVar

log = logging.getLogger(__name__)

Item = TypeVar("Item")
Result = TypeVar("Result")


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity, which a container or taskset may narrow)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def worker_count(work_bytes: int, min_bytes: int) -> int:
    """How many worker processes `work_bytes` of input is worth: one per CPU from `min_bytes` on (the caller's measure
    of where starting them, about half a second, pays), where this process may start children; else 1 (this process
    alone)."""
    cpus = cpu_count()
    if cpus < 2 or work_bytes < min_bytes or multiprocessing.current_process().daemon:
        return 1
    return cpus


def _log_to(queue, levels: dict[str, int]) -> None:
    """A worker's initializer: its log records go to `queue`, for the parent's loggers, at the parent's levels."""
    logging.getLogger().handlers = [logging.handlers.QueueHandler(queue)]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _handle_records(queue) -> None:
    while (record := queue.get()) is not None:
        logging.getLogger(record.name).handle(record)


def _levels() -> dict[str, int]:
    return {"": logging.getLogger().getEffectiveLevel(), "ect": logging.getLogger("ect").getEffectiveLevel()}


def ordered_map(function: Callable[[Item], Result], items: list[Item], workers: int) -> Iterator[Result]:
    """function(item) for each item, in order, in `workers` spawned processes (in this one when workers is 1).
    `function` must be picklable (a module-level function or a functools.partial of one) and must not raise. A worker
    that dies (killed, out of memory) leaves the items not yet done to this process."""
    if workers < 2 or len(items) < 2:
        yield from map(function, items)
        return
    context = multiprocessing.get_context("spawn")
    records = context.Queue()
    relay = threading.Thread(target=_handle_records, args=(records,), name="ect-worker-logs", daemon=True)
    relay.start()
    done = 0
    try:
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_log_to,
                                 initargs=(records, _levels())) as pool:
            for result in pool.map(function, items, chunksize=max(1, min(8, len(items) // (4 * workers)))):
                yield result
                done += 1
    except BrokenProcessPool as error:
        log.warning(f"a worker process ended unexpectedly ({error}); the {len(items) - done} item(s) left are done "
                    f"in this process")
        yield from map(function, items[done:])
    finally:
        records.put(None)
        relay.join()
