"""What a task reads of the other tasks of its DAG run, through the task SDK: their states, the results of those that
succeeded, and the watch of host_check from the central side.

A non-sensor task is put up for reschedule by Airflow only when the worker that took it could not find its DAG or task
at start-up (a wrong DAGs folder, a DAG file that fails to import there): that is what the watch looks for, because
the only trace of it is in the GPU host's own task log.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from ect.errors import RunnerError

log = logging.getLogger(__name__)

HOST_CHECK = "host_check"
WATCH_POKE_INTERVAL_S = 10
# host_check's states that end the watch: the check's own outcome decides the rest of the DAG run.
FINISHED = ("success", "failed", "upstream_failed", "skipped", "removed")
WAITING_FOR_A_WORKER = (None, "none", "scheduled", "queued")


def _context():
    from airflow.sdk import get_current_context

    return get_current_context()


def task_states(task_ids: list[str], context=None) -> dict[str, str | None]:
    """The states of these tasks in the running DAG run (None: not yet scheduled)."""
    ti = (context or _context())["ti"]
    found = ti.get_task_states(dag_id=ti.dag_id, task_ids=list(task_ids), run_ids=[ti.run_id]).get(ti.run_id, {})
    return {task_id: found.get(task_id) for task_id in task_ids}


def succeeded_results(task_ids: list[str], context=None) -> list:
    """The return values of these tasks of the running DAG run, None for each that did not succeed: a task that
    failed left no XCom, and pulling one logs an error ("XCom not found") in the task log."""
    context = context or _context()
    states = task_states(task_ids, context)
    return [context["ti"].xcom_pull(task_ids=task_id) if states[task_id] == "success" else None
            for task_id in task_ids]


def host_check_verdict(env, state: str | None, waited_s: float) -> bool:
    """True when host_check has finished (its own outcome decides the rest), False to look again; RunnerError when
    the GPU host's worker could not load the DAG, or when host_check did not finish within HOST_CHECK_TIMEOUT_S."""
    dag_id = f"ect_{env.name}"
    if state in FINISHED:
        return True
    if state == "up_for_reschedule":
        raise RunnerError(
            f"the worker of queue {env.queue} (QUEUE of environment {env.name}) could not load DAG {dag_id}: it sent "
            f"{HOST_CHECK} back for rescheduling, as Airflow does when a worker cannot find a task's DAG at start-up "
            "(its task log on the GPU host says 'Dag not found during start up'): its DAGs folder has no ect_dags.py, "
            f"or the file does not import there. Start the worker with `ect worker {env.name}`, which checks its DAGs "
            "folder, ECT_HOME and the execution API before serving the queue (README, Many machines)")
    if waited_s > env.host_check_timeout_s:
        why = (f"no worker of queue {env.queue} took it: is the GPU host's worker running (`ect worker {env.name}`)?"
               if state in WAITING_FOR_A_WORKER else f"it is still {state} on the GPU host")
        raise RunnerError(f"{HOST_CHECK} of {dag_id} did not finish within {env.host_check_timeout_s:.4g} s "
                          f"(HOST_CHECK_TIMEOUT_S of environment {env.name}; state {state or 'none'}): {why}")
    return False


def watch_host_check(env) -> bool:
    """One look of the watch (a sensor on the default queue, running beside host_check): see host_check_verdict."""
    context = _context()
    state = task_states([HOST_CHECK], context)[HOST_CHECK]
    started = context["ti"].get_first_reschedule_date(context) or datetime.now(timezone.utc)
    waited_s = (datetime.now(timezone.utc) - started).total_seconds()
    log.info(f"{HOST_CHECK} on queue {env.queue}: {state or 'not scheduled yet'} (watched for {waited_s:.0f} s)")
    return host_check_verdict(env, state, waited_s)
