"""The steps of an environment's DAG run, as plain functions (no Airflow here: the DAG files only wire them).

preflight -> warm-up -> one profiled run per architecture x repetition -> validation -> aggregation -> report
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

from ect.config import Config, ConfigError, load_config

# Trigger-form parameters -> settings.
PARAM_SETTINGS = {"architectures": "ARCHITECTURES", "repetitions": "REPETITIONS",
                  "initial_epochs": "INITIAL_EPOCHS", "ft_epochs": "FT_EPOCHS"}


@dataclass(frozen=True)
class RunRequest:
    architecture: str
    repetition: int
    run_id: str
    cool_down_after: bool  # COOLDOWN_EVERY-th run of the DAG run (and not the last)


def overrides_from(params: dict) -> dict:
    overrides = {PARAM_SETTINGS[k]: v for k, v in params.items() if k in PARAM_SETTINGS and v not in (None, [], "")}
    if "ARCHITECTURES" in overrides and isinstance(overrides["ARCHITECTURES"], (list, tuple)):
        overrides["ARCHITECTURES"] = ",".join(overrides["ARCHITECTURES"])
    if params.get("dataset"):
        overrides["DATASET_DIR"] = params["dataset"]
    return overrides


def config_for(params: dict, root: Path | None = None) -> Config:
    return load_config(root, profile=params.get("profile") or None, overrides=overrides_from(params))


def config_args(params: dict) -> list[str]:
    """The same configuration as command-line options of `python -m ect ...`."""
    args = [f"--profile={params['profile']}"] if params.get("profile") else []
    return args + [f"--set={key}={value}" for key, value in overrides_from(params).items()]


def check_dataset_root(cfg: Config, requested: str | None) -> None:
    """A dataset given in the trigger form must lie inside one of DATASET_ROOTS (after resolving links and ..)."""
    if not requested:
        return
    folder = cfg.path("DATASET_DIR").resolve()
    roots = [(Path(r) if Path(r).is_absolute() else cfg.root / r).resolve() for r in cfg.base.dataset_roots]
    if not any(folder == root or root in folder.parents for root in roots):
        raise ConfigError(f"dataset parameter {requested!r} ({folder}) is outside the allowed DATASET_ROOTS: "
                          f"{', '.join(map(str, roots))}")


def run_id_for(dag_run_id: str, repetition: int) -> str:
    """Deterministic per DAG run and repetition, so that a retried task reuses (or resumes) its run folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", dag_run_id).strip("_")
    return f"{safe}-rep{repetition:02d}"


def plan(cfg: Config, dag_run_id: str) -> list[RunRequest]:
    runs, every = [], cfg.experiment.cooldown_every
    pairs = [(arch, rep) for rep in range(cfg.experiment.repetitions) for arch in cfg.experiment.architectures]
    for number, (arch, rep) in enumerate(pairs, start=1):
        cool = cfg.experiment.cooldown > 0 and number % every == 0 and number < len(pairs)
        runs.append(RunRequest(arch, rep, run_id_for(dag_run_id, rep), cool))
    return runs


def preflight(environment: str, params: dict, dag_run_id: str, runner_check: Callable[[Any], str] | None = None,
              print_line: Callable[[str], None] = print) -> dict:
    """Checks everything a DAG run needs before any training; returns its plan. Raises with a clear message."""
    from ect.data import scan_dataset, split_dataset
    from ect.models.registry import get_architecture
    from ect.sensors import select_sensors

    cfg = config_for(params)
    env = cfg.environment(environment)
    check_dataset_root(cfg, params.get("dataset"))
    for name in cfg.experiment.architectures:
        get_architecture(name).check_input_size(cfg.experiment.image_size)
    index = scan_dataset(cfg.dataset_dir(), skip_corrupt=cfg.experiment.skip_corrupt_images, warn=print_line)
    split = split_dataset(index, cfg.experiment.validation_split, cfg.experiment.seed)
    print_line(f"dataset {index.root}: {len(split.train)} training, {len(split.validation)} validation images")
    runner_status = runner_check(env) if runner_check else "not checked"
    print_line(f"runner {env.runner}: {runner_status}")
    if env.runner == "process":
        choice = select_sensors(gpu_devices=env.gpus, cpu_tdp_W=cfg.resources.cpu_tdp_w)
        for name, entry in choice.report.items():
            print_line(f"sensor {name}: {'used' if entry['used'] else 'not used'} ({entry['reason']})")
    runs = plan(cfg, dag_run_id)
    print_line(f"plan: {len(runs)} profiled run(s) of {', '.join(cfg.experiment.architectures)} "
               f"x {cfg.experiment.repetitions} on {environment} (pool {env.pool_name})")
    if cfg.experiment.mlflow_enabled and not params.get("experiment_name"):
        raise ConfigError("MLFLOW_ENABLED is true: give the MLflow experiment in the experiment_name parameter")
    return {"environment": environment, "runner": env.runner, "config_args": config_args(params),
            "experiment_name": params.get("experiment_name"), "dag_run_id": dag_run_id,
            "dataset_dir": str(cfg.dataset_dir()),
            "warmup_minutes": cfg.experiment.warmup_time, "cooldown_minutes": cfg.experiment.cooldown,
            "runs": [asdict(r) for r in runs]}


def profile_run_args(environment: str, run: dict, args: list[str], experiment_name: str | None = None,
                     dag_run_id: str | None = None) -> list[str]:
    """The arguments of `python -m ect` for one planned run."""
    command = ["profile-run", environment, run["architecture"], "--repetition", str(run["repetition"]),
               "--run-id", run["run_id"], *args]
    if experiment_name:
        command += ["--experiment-name", experiment_name]
    if dag_run_id:
        command += ["--dag-run-id", dag_run_id]
    return command + (["--cool-down"] if run["cool_down_after"] else [])


def validate_step(environment: str, params: dict, planned: list[dict], print_line=print) -> dict:
    """Validates the environment's raw runs; returns the part of the summary about this DAG run's planned runs."""
    from ect.validation import PASSED, limits_from, validate_raw

    cfg = config_for(params)
    raw = cfg.path("METRICS_DIR") / "raw"
    summary_path = cfg.path("METRICS_DIR") / "validation" / "summary.json"
    results = validate_raw(raw, limits_from(cfg.experiment), summary_path.parent, print_line=print_line)
    wanted = {f"{environment}/{run['architecture']}/{run['run_id']}" for run in planned}
    ours = [r for r in results if r.run in wanted]
    missing = sorted(wanted - {r.run for r in ours})
    _note_missing_runs(summary_path, missing)
    return {
        "passed": [r.run for r in ours if r.status == PASSED],
        "quarantined": {r.run: [f"{f.file} {f.check} {f.column or ''}: {f.details}" for f in r.failures]
                        for r in ours if r.status != PASSED},
        "missing": missing,  # planned runs that left no folder (e.g. the task failed before starting)
        "summary": str(summary_path),
    }


def _note_missing_runs(summary_path: Path, missing: list[str]) -> None:
    """Planned runs that left no folder go into the validation summary too, so that no failure is silent."""
    from ect.io import write_json_atomic
    from ect.raw import read_json

    summary = read_json(summary_path) or {}
    summary["planned_runs_without_folder"] = missing
    write_json_atomic(summary_path, summary)


def aggregate_step(params: dict, print_line=print) -> str:
    from ect.aggregate.aggregate import aggregate
    from ect.validation import limits_from

    cfg = config_for(params)
    metrics = cfg.path("METRICS_DIR")
    result = aggregate(metrics / "raw", metrics, cfg.environments, limits_from(cfg.experiment), print_line=print_line)
    return str(result.processed)


def processed_path(cfg: Config) -> Path:
    return cfg.path("METRICS_DIR") / "processed" / "runs.parquet"


def check_all_measured(summary: dict | None) -> None:
    if summary is None:
        raise RuntimeError("the runs of this DAG run were not validated (an upstream task failed or was skipped)")
    problems = [f"{run}: {'; '.join(reasons)}" for run, reasons in summary["quarantined"].items()]
    problems += [f"{run}: no run folder (the task failed before measuring)" for run in summary["missing"]]
    if problems:
        raise RuntimeError(f"{len(problems)} planned run(s) were not measured or not valid "
                           f"(see {summary['summary']}):\n" + "\n".join(problems))


def regression_step(cfg: Config, environment: str, print_line=print) -> dict:
    """The nightly regression check of one environment: OUTPUT_DIR/<environment>/regression.json, trend.csv
    and trend.png. Returns the result (regressions are raised by raise_on_regression, separately)."""
    import json

    import pandas as pd

    from ect.analysis.regression import RegressionSettings, check_regressions, plot_trend, trend_table
    from ect.io import write_json_atomic

    e = cfg.experiment
    runs = pd.read_parquet(processed_path(cfg))
    out = cfg.path("OUTPUT_DIR") / environment
    out.mkdir(parents=True, exist_ok=True)
    if runs.empty or environment not in set(runs["environment"]):
        result = {"environment": environment, "latest_campaign": None, "baseline_campaigns": [], "architectures": {},
                  "regressions": [], "reason": "no aggregated run of this environment yet"}
        write_json_atomic(out / "regression.json", result)
        return result
    result = check_regressions(runs, environment, RegressionSettings(e.regression_baseline_runs,
                                                                    e.regression_threshold, e.regression_alpha))
    table = trend_table(runs, environment)
    table.to_csv(out / "trend.csv")
    if len(table):
        plot_trend(table, out / "trend.png")
    write_json_atomic(out / "regression.json", result)
    print_line(json.dumps({"regressions": result["regressions"], "latest_campaign": result["latest_campaign"]}))
    return result


def report_step(cfg: Config, environment: str | None, regression: dict | None = None) -> dict:
    """The report of one environment (OUTPUT_DIR/<environment>/) or of all (OUTPUT_DIR/report/)."""
    import pandas as pd

    from ect.analysis.report import write_report

    runs = pd.read_parquet(processed_path(cfg))
    if environment is not None:
        runs = runs[runs["environment"] == environment]
    out = cfg.path("OUTPUT_DIR") / (environment or "report")
    title = f"Energy cost of training on {environment}" if environment else "Energy cost of training: all environments"
    e = cfg.experiment
    return write_report(runs, out, title, alpha=e.analysis_alpha, correction=e.analysis_correction,
                        outliers=e.analysis_remove_outliers,
                        samples_path=cfg.path("METRICS_DIR") / "interim" / "samples.parquet",
                        regression=regression, trend_png=out / "trend.png")
