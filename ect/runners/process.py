"""The process runner: `python -m ect profile-run ...` as a subprocess of the Airflow task, on the worker's host."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from collections import deque
from datetime import timedelta
from pathlib import Path

from ect.errors import RunnerError
from ect.runners.credentials import run_environment
from ect.runners.placement import MAP_INDEX_TEMPLATE, RUN_LABEL, task_options
from ect.runs.commands import LOG_PREFIX_VARIABLE, ect_command, profile_run_args, warmup_args
from ect.raw.layout import RunKey
from ect.runs.plan import PlannedRun, early_stop_reason

log = logging.getLogger(__name__)
# The child's own lines: "[ect LEVEL] message"; its error exit: "ect COMMAND: error: ..." on stderr.
_PREFIXED = re.compile(r"^\[ect (DEBUG|INFO|WARNING|ERROR|CRITICAL)\] ?(.*)$")
_ERROR_LINE = re.compile(r"^ect [\w-]+: (error|interrupted)")
# The first line of third-party start-up output: absl/TensorFlow C++ log lines ("I0000 00:00:1796170490.72 27471
# port.cc:153] ..."), absl's notice, TensorFlow's Python logger, a Python warning ("file.py:12: UserWarning: ...").
_THIRD_PARTY = re.compile(r"^(?:[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]"
                          r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] "
                          r"|WARNING: All log messages before absl::InitializeLog"
                          r"|(?:WARNING|INFO|ERROR):(?:tensorflow|absl|h5py):"
                          r"|\S+\.py:\d+: \w*Warning: )")


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


class ChildOutput:
    """The output of a launched `ect` (ECT_LOG_PREFIX=1), line by line, into the task log at each line's level.
    Third-party start-up output (TensorFlow's and absl's C++ log lines, TensorFlow's Python warnings, Python warnings
    with their source line) goes to `third_party_log` instead, whole blocks of it; any other line is logged at INFO.
    The last lines are kept for the error message of a failed run."""

    def __init__(self, third_party_log: Path | None = None):
        self.third_party_log, self.in_block, self.last_lines = third_party_log, False, deque(maxlen=20)
        self._file = None

    def line(self, line: str) -> None:
        self.last_lines.append(line)
        if match := _PREFIXED.match(line):
            self.in_block = False
            log.log(logging.getLevelName(match.group(1)), match.group(2))
        elif _THIRD_PARTY.match(line) or (self.in_block and not _ERROR_LINE.match(line)):
            self.in_block = True
            self._keep(line)
        elif line.startswith("warning: "):  # an ect older than ECT_LOG_PREFIX
            log.warning(line.removeprefix("warning: "))
        elif _ERROR_LINE.match(line):
            log.error(line)
        else:
            log.info(line)

    def _keep(self, line: str) -> None:
        if self.third_party_log is None:
            log.debug(line)
            return
        if self._file is None:
            self.third_party_log.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.third_party_log, "a")
            log.info(f"third-party start-up output (TensorFlow, absl, Python warnings): {self.third_party_log}")
        self._file.write(line + "\n")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def run_ect(args: list[str], env: dict | None = None, third_party_log: Path | None = None) -> None:
    """Runs `python -m ect ARGS`, its output into the task log (see ChildOutput); raises RunnerError if it fails."""
    command = ect_command(args)
    log.info(f"running: {' '.join(command)}")
    output = ChildOutput(third_party_log)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", LOG_PREFIX_VARIABLE: "1",
                               **(env or {})}) as process:
        try:
            for line in process.stdout:
                output.line(line.rstrip("\n"))
            code = process.wait()
        except BaseException:  # the task is being stopped: stop the run too (it records itself as failed)
            process.terminate()
            process.wait(timeout=60)
            raise
        finally:
            output.close()
    if code != 0:
        raise RunnerError(f"`ect {' '.join(args[:3])}` failed with exit code {code}:\n" + "\n".join(output.last_lines))


def third_party_log(cfg, environment: str, run: PlannedRun) -> Path:
    """Where a run's third-party start-up output goes: METRICS_DIR/logs/<environment>/<architecture>/<run id>.log."""
    return cfg.path("METRICS_DIR") / "logs" / environment / run.architecture / f"{run.run_id}.log"


def early_stop_skip(cfg, environment: str, planned: PlannedRun, runs: list[dict],
                    early_stop: dict | None) -> str | None:
    """With EARLY_STOP_SPREAD (the plan's early_stop): why the planned run is skipped (logged), when the completed runs
    of its architecture and backend in this DAG run already know the answer (plan.early_stop_reason; their run
    folders on this host); else None. The task then ends at once, successfully: Airflow's skipped state would skip
    validation too (its trigger rule, all done with one success, counts a skipped upstream as not done). Validation
    lists the run as skipped, not missing."""
    if not early_stop or not early_stop.get("spread"):
        return None
    from ect.runs.profiled import run_folder

    reason = early_stop_reason(planned, [PlannedRun.from_dict(r) for r in runs],
                               lambda r: run_folder(cfg, RunKey(environment, r.architecture, r.run_id)),
                               early_stop["spread"], early_stop.get("min_runs", 3))
    if reason:
        log.info(f"{planned.label}: skipped, {reason}")
    return reason


def tasks(env, cfg, plan):
    """(warm-up, mapped training) tasks of an environment's DAG, wired to the preflight plan."""
    from airflow.sdk import task

    from ect.runners.budget import duration_alert

    @task(pool=env.pool_name, **task_options(env))
    def warm_up(plan: dict) -> None:
        if plan["warmup_minutes"] > 0:
            run_ect(warmup_args(env.name, plan["config_args"], plan["backends"][0]))

    @task
    def planned_runs(plan: dict) -> list[dict]:
        return plan["runs"]

    @task(pool=env.pool_name, retries=env.retries, retry_delay=timedelta(seconds=env.retry_delay_s),
          map_index_template=MAP_INDEX_TEMPLATE, **task_options(env))
    def train(run: dict, plan: dict) -> str:
        from airflow.sdk import get_current_context

        planned = PlannedRun.from_dict(run)
        context = get_current_context()
        context[RUN_LABEL] = planned.label
        log.info(f"{planned.label} on {env.name}: run {planned.run_id}")
        if skipped := early_stop_skip(cfg, env.name, planned, plan["runs"], plan.get("early_stop")):
            return f"skipped: {skipped}"
        args = profile_run_args(env.name, planned, plan["config_args"], plan["experiment_name"],
                                plan["dag_run_id"], cool_down=True)
        with duration_alert(env, context, plan, planned.architecture, planned.backend, planned.label):
            run_ect(args, env=run_environment(cfg), third_party_log=third_party_log(cfg, env.name, planned))
        return run["run_id"]

    return warm_up(plan), train.partial(plan=plan).expand(run=planned_runs(plan))
