"""Where an environment's host-bound tasks run: its Celery queue (QUEUE), which a worker on its GPU host serves."""

from __future__ import annotations

from ect.errors import RunnerError

INSPECT_TIMEOUT_S = 10.0


# A mapped training task instance is shown by its run's label ("vgg16 · rep 0"), which the task puts in its context.
RUN_LABEL = "ect_run_label"
MAP_INDEX_TEMPLATE = "{{ " + RUN_LABEL + " }}"


def task_options(env) -> dict:
    """The operator arguments that put a host-bound task on the environment's queue (none: the default queue)."""
    return {"queue": env.queue} if env.queue else {}


def queue_check(env) -> str:
    """Whether a live worker consumes the environment's queue. Only Airflow's CeleryExecutor has queues; with
    another executor every task runs where the executor runs it, and this says so."""
    from airflow.configuration import conf

    executor = conf.get("core", "executor")
    if not env.queue:
        return f"default queue ({executor})"
    if "CeleryExecutor" not in executor:
        return f"queue {env.queue} not checked: the {executor} has no queues and runs every task itself"
    from airflow.providers.celery.executors.celery_executor_utils import app

    replies = app.control.inspect(timeout=INSPECT_TIMEOUT_S).active_queues() or {}
    workers = sorted(worker for worker, queues in replies.items() if any(q.get("name") == env.queue for q in queues))
    if not workers:
        raise RunnerError(f"no Celery worker consumes queue {env.queue} (QUEUE of environment {env.name}): start one "
                          f"on its GPU host with `ect worker {env.name}` (README, Many machines)")
    return f"queue {env.queue} served by {', '.join(workers)}"
