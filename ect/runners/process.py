"""The process runner: `python -m ect profile-run ...` as a subprocess of the Airflow task, on the worker's host."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections import deque
from datetime import timedelta

from ect.errors import RunnerError
from ect.runners.credentials import run_environment
from ect.runners.placement import task_options
from ect.runs.commands import ect_command, profile_run_args, warmup_args
from ect.runs.plan import PlannedRun

log = logging.getLogger(__name__)
# The level of a line of the child's output, by the prefix ect's command line gives it.
_ERROR_LINE = re.compile(r"^ect [\w-]+: (error|interrupted)")


def check(env, cfg) -> str:
    """This interpreter runs `python -m ect` (no TensorFlow import), and the sensors a run here would use."""
    from ect.sensors import select_sensors

    result = subprocess.run(ect_command(["--version"]), capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RunnerError(f"`{sys.executable} -m ect` does not run: {result.stderr.strip()}")
    choice = select_sensors(gpu_devices=env.gpus, cpu_tdp_W=cfg.resources.cpu_tdp_w)
    for name, entry in choice.report.items():
        log.info(f"sensor {name}: {'used' if entry['used'] else 'not used'} ({entry['reason']})")
    return f"{result.stdout.strip()} ({sys.executable})"


def _log_child_line(line: str) -> None:
    if line.startswith("warning: "):
        log.warning(line.removeprefix("warning: "))
    elif _ERROR_LINE.match(line):
        log.error(line)
    else:
        log.info(line)


def run_ect(args: list[str], env: dict | None = None) -> None:
    """Runs `python -m ect ARGS`, streaming its output into the task log; raises RunnerError if it fails."""
    command = ect_command(args)
    log.info(f"running: {' '.join(command)}")
    last_lines: deque[str] = deque(maxlen=20)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, **(env or {})}) as process:
        try:
            for line in process.stdout:
                line = line.rstrip("\n")
                last_lines.append(line)
                _log_child_line(line)
            code = process.wait()
        except BaseException:  # the task is being stopped: stop the run too (it records itself as failed)
            process.terminate()
            process.wait(timeout=60)
            raise
    if code != 0:
        raise RunnerError(f"`ect {' '.join(args[:3])}` failed with exit code {code}:\n" + "\n".join(last_lines))


def tasks(env, cfg, plan):
    """(warm-up, mapped training) tasks of an environment's DAG, wired to the preflight plan."""
    from airflow.sdk import task

    @task(pool=env.pool_name, **task_options(env))
    def warm_up(plan: dict) -> None:
        if plan["warmup_minutes"] > 0:
            run_ect(warmup_args(env.name, plan["config_args"]))

    @task
    def planned_runs(plan: dict) -> list[dict]:
        return plan["runs"]

    @task(pool=env.pool_name, retries=env.retries, retry_delay=timedelta(seconds=env.retry_delay_s),
          **task_options(env))
    def train(run: dict, plan: dict) -> str:
        args = profile_run_args(env.name, PlannedRun.from_dict(run), plan["config_args"], plan["experiment_name"],
                                plan["dag_run_id"], cool_down=True)
        run_ect(args, env=run_environment(cfg))
        return run["run_id"]

    return warm_up(plan), train.partial(plan=plan).expand(run=planned_runs(plan))
