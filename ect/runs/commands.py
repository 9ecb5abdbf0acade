"""The `python -m ect ...` command lines that campaigns, DAG tasks and containers run, built in one place."""

from __future__ import annotations

import sys
from typing import Mapping

from ect.runs.plan import PlannedRun


# Set by a runner for the `ect` it launches: each of ect's log lines then starts with "[ect LEVEL] ".
LOG_PREFIX_VARIABLE = "ECT_LOG_PREFIX"


def config_options(profile: str | None, overrides: Mapping[str, object]) -> list[str]:
    """A configuration as command-line options of `ect`: --profile=P and one --set=KEY=VALUE per override."""
    return ([f"--profile={profile}"] if profile else []) + [f"--set={key}={value}" for key, value in overrides.items()]


def ect_command(args: list[str], python: str = sys.executable) -> list[str]:
    return [python, "-m", "ect", *args]


def warmup_args(environment: str, options: list[str], backend: str | None = None) -> list[str]:
    return ["warmup", environment, *options] + (["--backend", backend] if backend else [])


def profile_run_args(environment: str, run: PlannedRun, options: list[str], experiment_name: str | None = None,
                     dag_run_id: str | None = None, cool_down: bool = False) -> list[str]:
    """The arguments of `ect profile-run` for one planned run; with cool_down, the run itself cools down after
    itself when the plan says so (a DAG task; a campaign cools down between the runs it launches)."""
    args = ["profile-run", environment, run.architecture, "--repetition", str(run.repetition),
            "--run-id", run.run_id, "--backend", run.backend, *options]
    if experiment_name:
        args += ["--experiment-name", experiment_name]
    if dag_run_id:
        args += ["--dag-run-id", dag_run_id]
    return args + (["--cool-down"] if cool_down and run.cool_down_after else [])
