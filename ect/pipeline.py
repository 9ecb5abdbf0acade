"""The steps of an environment's DAG run, as plain functions (no Airflow here: the DAG files only wire them, and
the CLI calls the same steps).

preflight -> host checks -> warm-up -> one profiled run per architecture x repetition -> validation -> aggregation
-> regression check -> report

With a run store (RUN_STORE), each step that reads runs or results first mirrors what it needs from the store into
METRICS_DIR (only what changed), works on the local files as without a store, and pushes what it wrote: so any
worker can run it. Credentials come from the process's environment (AWS_* for s3://; the DAG tasks set them from
the Airflow connection ect_store).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from ect.architectures import get_architecture
from ect.backends import check_backend, check_offers
from ect.config import Config, Environment, load_config
from ect.errors import BudgetExceeded, ConfigError, NothingToDo, RunsNotMeasured
from ect.raw.atomic import read_json, write_json
from ect.raw.layout import VALIDATION_FILE, MetricsDir, RunKey, find_runs, run_file_key
from ect.runs.commands import config_options
from ect.runs.plan import plan_of
from ect.runs.record import experiment_of
from ect.store import RunStore, open_store, pull_outputs, push_outputs

log = logging.getLogger(__name__)

# The Airflow pool (one slot) of the tasks that write the run store's shared files.
STORE_POOL = "ect_run_store"

# Trigger-form parameters -> settings.
PARAM_SETTINGS = {"architectures": "ARCHITECTURES", "backends": "BACKENDS", "repetitions": "REPETITIONS",
                  "initial_epochs": "INITIAL_EPOCHS", "ft_epochs": "FT_EPOCHS",
                  "energy_budget_kwh": "ENERGY_BUDGET_KWH"}
# The trigger form of an environment DAG (dags/ect_dags.py params()): a conf key outside it is a mistake.
TRIGGER_PARAMETERS = (*PARAM_SETTINGS, "profile", "dataset", "experiment_name")


def overrides_from(params: dict) -> dict:
    overrides = {PARAM_SETTINGS[k]: v for k, v in params.items() if k in PARAM_SETTINGS and v not in (None, [], "")}
    for setting in ("ARCHITECTURES", "BACKENDS"):
        if setting in overrides and isinstance(overrides[setting], (list, tuple)):
            overrides[setting] = ",".join(overrides[setting])
    if params.get("dataset"):
        overrides["DATASET_DIR"] = params["dataset"]
    return overrides


def config_for(params: dict, root: Path | None = None) -> Config:
    """The configuration of a DAG run: the files, the profile and the trigger parameters (errors name them)."""
    overrides = overrides_from(params)
    origins = {setting: f"trigger parameter {name!r}" for name, setting in PARAM_SETTINGS.items()}
    return load_config(root, profile=params.get("profile") or None, overrides=overrides,
                       override_origins={**origins, "DATASET_DIR": "trigger parameter 'dataset'"})


def check_trigger_conf(conf: dict) -> None:
    """Every key of a DAG run's conf is a trigger parameter (a typo would otherwise run the full-size default)."""
    unknown = sorted(set(conf) - set(TRIGGER_PARAMETERS))
    if unknown:
        raise ConfigError(f"unknown trigger parameter(s) {', '.join(map(repr, unknown))} in the DAG run's conf; "
                          f"accepted: {', '.join(TRIGGER_PARAMETERS)}")


def check_dataset_root(cfg: Config, requested: str | None) -> None:
    """A dataset given in the trigger form must lie inside one of DATASET_ROOTS (after resolving links and ..)."""
    if not requested:
        return
    folder = cfg.path("DATASET_DIR").resolve()
    roots = cfg.dataset_roots()
    if not any(folder == root or root in folder.parents for root in roots):
        raise ConfigError(f"dataset parameter {requested!r} ({folder}) is outside the allowed DATASET_ROOTS: "
                          f"{', '.join(map(str, roots))}")


def preflight(environment: str, params: dict, dag_run_id: str,
              placement_check: Callable[[Environment], str] | None = None, conf: dict | None = None) -> dict:
    """Checks what a DAG run needs before any training, from any worker: the trigger conf's keys, the configuration,
    the run store (reachable and writable), that a worker serves the environment's queue; returns the plan. Raises
    with a clear message."""
    check_trigger_conf(conf or {})
    cfg = config_for(params)
    env = cfg.environment(environment)
    check_dataset_root(cfg, params.get("dataset"))
    env.alert_function()  # an ALERT_CALLBACK that does not import fails here, not when a regression is found
    intensity, source = env.carbon_intensity()  # a location CodeCarbon has no data for fails here, not after training
    log.info(f"carbon intensity: {intensity:.4g} gCO2e/kWh ({source})")
    for name in cfg.experiment.architectures:
        get_architecture(name).check_input_size(cfg.experiment.image_size)
    backends = cfg.backends(environment)
    check_backends(env, backends, cfg.experiment.architectures, on_this_host=env.queue is None)
    experiment_name = experiment_of(cfg, environment, params.get("experiment_name"))
    if cfg.experiment.mlflow_enabled:
        log.info(f"MLflow: the runs go to experiment {experiment_name!r} ("
                 + ("trigger parameter experiment_name)" if params.get("experiment_name")
                    else f"EXPERIMENT_NAME of environment {environment})"))
    store = store_of(cfg)
    log.info(f"run store: {store.check() if store else 'none (METRICS_DIR and OUTPUT_DIR of each worker)'}")
    log.info(f"placement: {placement_check(env) if placement_check else 'not checked'}")
    runs = plan_of(cfg.experiment, dag_run_id, backends)
    log.info(f"plan: {len(runs)} profiled run(s) of {', '.join(cfg.experiment.architectures)} "
             f"on {', '.join(backends)} x {cfg.experiment.repetitions} on {environment} (pool {env.pool_name}"
             + (f", queue {env.queue})" if env.queue else ")"))
    budget_origin = ("trigger parameter 'energy_budget_kwh'" if params.get("energy_budget_kwh") is not None
                     else "ENERGY_BUDGET_KWH of the configuration")
    forecast = forecast_step(cfg, environment, budget_origin)
    return {"environment": environment, "runner": env.runner,
            "config_args": config_options(params.get("profile"), overrides_from(params)),
            "experiment_name": experiment_name, "dag_run_id": dag_run_id, "backends": list(backends),
            "dataset_dir": str(cfg.path("DATASET_DIR")),  # on the GPU host: host_check checks it there
            "warmup_minutes": cfg.experiment.warmup_time, "cooldown_minutes": cfg.experiment.cooldown,
            "early_stop": {"spread": cfg.experiment.early_stop_spread, "min_runs": cfg.experiment.early_stop_min_runs},
            "runs": [run.to_dict() for run in runs], **forecast}


def processed_history(cfg: Config):
    """(the processed dataset, its runs) for a prediction: METRICS_DIR/processed/runs.parquet (the run store's, with
    one, fetched when it changed); (None, no runs) when there is none yet."""
    import pandas as pd

    processed = metrics_dir(cfg).processed
    if store := store_of(cfg):
        pull_outputs(store, metrics_dir(cfg), samples=False)
    if not processed.is_file():
        return None, pd.DataFrame()
    return processed, pd.read_parquet(processed)


def forecast_step(cfg: Config, environment: str, budget_origin: str = "ENERGY_BUDGET_KWH") -> dict:
    """Preflight's prediction (ect.runs.forecast, as `ect predict` makes it but without counting FLOPs on a Keras
    model): each planned run's energy and duration logged as a table; the energy budget's decision, BudgetExceeded
    when the predicted upper bound is above ENERGY_BUDGET_KWH and BUDGET_APPROVAL is off; each training's duration
    alert limit. A prediction that cannot be made is logged, never fatal. Returns the plan's "forecast", "budget" and
    "duration_alerts_s" (dicts only)."""
    from ect.analysis.predict import as_json
    from ect.runs.forecast import (STARTUP_ALLOWANCE_S, budget_check, duration_limits, forecast, forecast_text,
                                   history_of)

    e = cfg.experiment
    result, table, missing = None, None, "no prediction"
    try:
        processed, runs = processed_history(cfg)
        result = forecast(cfg, environment, history_of(cfg, environment, runs, processed), count_flops=False)
        table = forecast_text(result)
        log.info(f"predicted energy and duration of the planned runs (before training):\n{table}")
        if any(p["energy_J"] is None for p in result["predictions"]):
            log.info("a planned run without a prediction has no run in the history with its forward FLOPs: "
                     f"`ect predict {environment}` counts them on the model")
    except Exception as error:  # a prediction is advice: whatever keeps it from being made must not stop the run
        missing = f"no prediction ({type(error).__name__}: {error})"
        log.warning(f"the planned runs' energy cannot be predicted: {type(error).__name__}: {error}")
    budget = budget_check(result, e.energy_budget_kwh, e.budget_approval, budget_origin)
    if budget.exceeded and not budget.approval:
        raise BudgetExceeded(f"{budget.message}; the DAG run stops before any training: raise the budget, plan fewer "
                             "runs, or set BUDGET_APPROVAL: true to approve such a run in the Airflow UI")
    if budget.exceeded:
        log.warning(f"{budget.message}; BUDGET_APPROVAL: the DAG run waits for a person to approve it (task "
                    "budget_approval, Airflow UI: Required Actions)")
    elif budget.budget_kWh is not None and budget.unpredicted:
        log.warning(budget.message)
    else:
        log.info(budget.message)
    allowance_s = STARTUP_ALLOWANCE_S + e.idle_baseline + 60 * e.cooldown
    return {"forecast": {**as_json(result), "table": table} if result else {"status": "none", "reason": missing},
            "budget": budget.to_dict(),
            "duration_alerts_s": duration_limits(result, e.duration_alert_factor, allowance_s)}


def check_backends(env: Environment, backends, architectures, on_this_host: bool) -> None:
    """Every backend offers every architecture, and (where the runs train on this host with the process runner) is
    installed here; ConfigError naming the backend and what is missing."""
    for name in backends:
        (check_backend if on_this_host and env.runner == "process" else check_offers)(name, architectures)


def host_check(environment: str, params: dict, runner_check: Callable[[Environment, Config], str] | None = None) -> None:
    """Checks, on the environment's GPU host (its queue), what its runs need there: the dataset (every image) and
    the runner (the `ect` command and the sensors, or the Docker engine and image)."""
    from ect.data import scan_dataset, split_dataset

    cfg = config_for(params)
    env = cfg.environment(environment)
    index = scan_dataset(cfg.dataset_dir(), skip_corrupt=cfg.experiment.skip_corrupt_images)
    split = split_dataset(index, cfg.experiment.validation_split, cfg.experiment.seed)
    log.info(f"dataset {index.root}: {len(split.train)} training, {len(split.validation)} validation images")
    backends = cfg.backends(environment)
    check_backends(env, backends, cfg.experiment.architectures, on_this_host=True)
    log.info(f"backends: {', '.join(backends)}" + (" (in the worker image)" if env.runner == "docker" else ""))
    log.info(f"runner {env.runner}: {runner_check(env, cfg) if runner_check else 'not checked'}")


def metrics_dir(cfg: Config) -> MetricsDir:
    return MetricsDir(cfg.path("METRICS_DIR"))


def store_of(cfg: Config) -> RunStore | None:
    return open_store(cfg.run_store())


# Local runs not in the run store named in its warning, at most (then "and N more").
NAMED_LOCAL_RUNS = 20


def pull_runs(store: RunStore, raw: Path) -> frozenset[RunKey]:
    """Mirrors the store's runs into `raw` and returns them: the runs a step works on. The store is the truth: a run
    folder in `raw` the store does not have (measured here before RUN_STORE was set) is named in a warning and left
    out."""
    pulled = store.pull_runs(raw)
    log.info(f"run store {store!r}: {pulled.runs} published run(s); {pulled.files} new or changed file(s) fetched "
             f"({pulled.bytes / 1e6:.3g} MB)")
    local_only = sorted(key for key in map(RunKey.of_folder, find_runs(raw)) if key not in pulled.keys)
    if local_only:
        named = ", ".join(map(str, local_only[:NAMED_LOCAL_RUNS]))
        more = f" and {len(local_only) - NAMED_LOCAL_RUNS} more" if len(local_only) > NAMED_LOCAL_RUNS else ""
        log.warning(f"{len(local_only)} run(s) in {raw} are not in the run store {store!r} and are left out of "
                    f"validation and aggregation: {named}{more}; `ect publish {raw}` publishes them to the store")
    return pulled.keys


def pull_report(store: RunStore, metrics: MetricsDir, name: str, out: Path) -> None:
    """What a report needs from the store: its results (processed dataset, samples) into METRICS_DIR, and its
    reports/<name>/ (what the regression check, maybe on another worker, left there) into `out`."""
    pull_outputs(store, metrics)
    store.pull_tree(f"reports/{name}", out)


def validate_step(cfg: Config, raw: Path | None = None, summary_dir: Path | None = None, force: bool = False,
                  data_docs: Path | None = None) -> list:
    """Validates every raw run (METRICS_DIR/raw, after mirroring the run store's: then the store's runs alone); the
    summary goes to METRICS_DIR/validation/ (and the store, with each new verdict)."""
    from ect.validation import limits_from, validate_raw

    store = store_of(cfg) if raw is None else None
    raw = raw or metrics_dir(cfg).raw
    summary_dir = summary_dir or MetricsDir(raw.parent).validation
    only = pull_runs(store, raw) if store else None
    results = validate_raw(raw, limits_from(cfg.experiment), summary_dir, force=force, data_docs=data_docs, only=only)
    if store:
        for result in results:
            if not result.reused and result.recorded:  # a link's verdict is in the summary only
                store.push(result.folder / VALIDATION_FILE,
                           run_file_key(RunKey.of_folder(result.folder), VALIDATION_FILE))
        store.push_folder(summary_dir, "validation")
    return results


def planned_runs_summary(cfg: Config, environment: str, planned: list[dict], results: list) -> dict:
    """The part of a validation about a DAG run's planned runs; planned runs that left no folder go into the
    validation summary too, so that no failure is silent."""
    from ect.validation import PASSED

    summary_path = metrics_dir(cfg).validation / "summary.json"
    wanted = {RunKey(environment, run["architecture"], run["run_id"]).name for run in planned}
    ours = [r for r in results if r.run in wanted]
    skipped = skipped_runs(cfg, environment, planned, wanted - {r.run for r in ours})
    missing = sorted(wanted - {r.run for r in ours} - set(skipped))
    summary = read_json(summary_path) or {}
    summary["planned_runs_without_folder"] = missing
    summary["planned_runs_skipped"] = skipped
    write_json(summary_path, summary)
    if store := store_of(cfg):
        store.push(summary_path, "validation/summary.json")
    return {
        "passed": [r.run for r in ours if r.status == PASSED],
        "quarantined": {r.run: [f"{f.file} {f.check} {f.column or ''}: {f.details}" for f in r.failures]
                        for r in ours if r.status != PASSED},
        "missing": missing,  # planned runs that left no folder (e.g. the task failed before starting)
        "skipped": skipped,  # planned runs skipped because the answer was known (EARLY_STOP_SPREAD): {run: why}
        "summary": str(summary_path),
    }


def skipped_runs(cfg: Config, environment: str, planned: list[dict], without_folder: set[str]) -> dict[str, str]:
    """The planned runs without a folder that EARLY_STOP_SPREAD skipped ({run: why}): the completed runs of their
    architecture and backend in this DAG run (METRICS_DIR/raw, as validated) know the answer."""
    from ect.runs.plan import PlannedRun, early_stop_reason

    runs = [PlannedRun.from_dict(run) for run in planned]
    raw = metrics_dir(cfg).raw
    skipped = {}
    for run in runs:
        name = RunKey(environment, run.architecture, run.run_id).name
        if name in without_folder:
            reason = early_stop_reason(run, runs, lambda r: RunKey(environment, r.architecture, r.run_id).folder(raw),
                                       cfg.experiment.early_stop_spread, cfg.experiment.early_stop_min_runs)
            if reason:
                skipped[name] = reason
    return skipped


def aggregate_step(cfg: Config, raw: Path | None = None, out: Path | None = None, allow_removal: bool = False):
    """Aggregates the raw runs into METRICS_DIR/interim and processed (ect.aggregate); with a run store, from its
    runs alone and the state of its last aggregation, and back into it. Refused (RemovalRefused) when runs of the
    processed dataset have no run folder (or are not in the store) any more, unless allow_removal."""
    from ect.aggregate.aggregate import aggregate
    from ect.validation import limits_from

    store = store_of(cfg) if raw is None and out is None else None
    metrics = metrics_dir(cfg)
    only = pull_runs(store, metrics.raw) if store else None
    if store:
        pull_outputs(store, metrics)
    result = aggregate(raw or metrics.raw, out or metrics.root, cfg.environments, limits_from(cfg.experiment),
                       allow_removal=allow_removal, only=only)
    if store and result.changed:
        push_outputs(store, metrics)
    if cfg.base.prometheus_pushgateway and result.runs:  # every time: a gateway that was down gets them now
        import pandas as pd

        from ect.tracking.prometheus import push_latest_campaigns

        push_latest_campaigns(cfg.base.prometheus_pushgateway, pd.read_parquet(result.processed))
    return result


def aggregation_summary(result) -> dict:
    """What the DAG's later tasks need of an aggregation (an XCom): the processed dataset and the runs that passed
    validation but failed to aggregate, now quarantined ({run name: the error})."""
    return {"processed": str(result.processed), "quarantined": dict(result.failed)}


def check_all_measured(summary: dict | None, aggregation: dict | None = None) -> None:
    """Raises RunsNotMeasured naming each planned run of the DAG run that left no folder, was quarantined by
    validation, or passed validation but failed to aggregate (`aggregation`: aggregation_summary)."""
    if summary is None:
        raise RunsNotMeasured("the runs of this DAG run were not validated (an upstream task failed or was skipped)")
    problems = [f"{run}: {'; '.join(reasons)}" for run, reasons in summary["quarantined"].items()]
    problems += [f"{run}: no run folder (the task failed before measuring)" for run in summary["missing"]]
    failed_to_aggregate = (aggregation or {}).get("quarantined", {})
    problems += [f"{run}: passed validation but failed to aggregate, quarantined: {failed_to_aggregate[run]}"
                 for run in summary["passed"] if run in failed_to_aggregate]
    if problems:
        raise RunsNotMeasured(f"{len(problems)} planned run(s) were not measured or not valid "
                              f"(see {summary['summary']}):\n" + "\n".join(problems))


def regression_step(cfg: Config, environment: str) -> dict:
    """The nightly regression check of one environment: OUTPUT_DIR/<environment>/regression.json, trend.csv
    and trend.png. Returns the result (regressions are raised by raise_on_regression, separately)."""
    import pandas as pd

    from ect.analysis.plots import plot_trend
    from ect.analysis.regression import RegressionSettings, check_regressions, trend_table, verdict_summary

    e = cfg.experiment
    store = store_of(cfg)
    if store:
        pull_outputs(store, metrics_dir(cfg), samples=False)
    processed = metrics_dir(cfg).processed
    if not processed.is_file():
        raise NothingToDo(f"processed dataset {processed} does not exist: run `ect aggregate` first")
    runs = pd.read_parquet(processed)
    out = cfg.path("OUTPUT_DIR") / environment
    out.mkdir(parents=True, exist_ok=True)
    if runs.empty or environment not in set(runs["environment"]):
        result = {"environment": environment, "latest_campaign": None, "baseline_campaigns": [], "architectures": {},
                  "regressions": [], "reason": "no aggregated run of this environment yet"}
        write_json(out / "regression.json", result)
        if store:
            store.push(out / "regression.json", f"reports/{environment}/regression.json")
        return result
    settings = RegressionSettings(e.regression_baseline_runs, e.regression_threshold, e.regression_alpha,
                                  e.regression_min_runs)
    result = {**check_regressions(runs, environment, settings), "fail_run": e.regression_fail_run}
    table = trend_table(runs, environment)
    table.to_csv(out / "trend.csv")
    if len(table):
        plot_trend(table, out / "trend.png", result)
    write_json(out / "regression.json", result)
    if cfg.base.prometheus_pushgateway:
        from ect.tracking.prometheus import push_verdicts

        push_verdicts(cfg.base.prometheus_pushgateway, result)
    if store:
        for name in ("regression.json", "trend.csv", "trend.png"):
            if (out / name).exists():
                store.push(out / name, f"reports/{environment}/{name}")
    log.info(verdict_summary(result))
    return result


def report_step(cfg: Config, environment: str | None, regression: dict | None = None, processed: Path | None = None,
                out: Path | None = None, title: str | None = None, outliers: bool = False,
                require_runs: bool = False) -> dict:
    """The report of one environment (OUTPUT_DIR/<environment>/) or of all (OUTPUT_DIR/report/); without runs an
    empty report says so, or with require_runs a ConfigError."""
    import pandas as pd

    from ect.analysis.report import latest_campaign, write_report

    name = environment or "report"
    store = store_of(cfg) if processed is None and out is None else None
    out = out or cfg.path("OUTPUT_DIR") / name
    if store:
        pull_report(store, metrics_dir(cfg), name, out)
    processed = processed or metrics_dir(cfg).processed
    runs = pd.read_parquet(processed)
    if environment is not None:
        runs = runs[runs["environment"] == environment]
    if require_runs and runs.empty:
        raise ConfigError(f"{processed} has no runs" + (f" of environment {environment!r}" if environment else ""))
    title = title or (f"Energy cost of training on {environment}" if environment
                      else "Energy cost of training: all environments")
    e = cfg.experiment
    backtest = None
    if environment is not None and not runs.empty:  # the predictors' backtest (ect predict ENVIRONMENT --backtest)
        from ect.runs.forecast import backtest_of, history_of

        try:
            backtest = backtest_of(environment, history_of(cfg, environment, runs, processed),
                                   e.initial_epochs + e.ft_epochs)
        except NothingToDo as error:  # too little history: the report says why
            backtest = {"environment": environment, "reason": str(error)}
        except Exception as error:  # noqa: BLE001 - a section of the report: its failure must not cost the others
            log.warning(f"the predictors' backtest failed: {type(error).__name__}: {error}")
            backtest = {"reason": f"the backtest failed ({type(error).__name__}: {error})"}
    paths = write_report(runs, out, title, alpha=e.analysis_alpha, correction=e.analysis_correction,
                         outliers=outliers or e.analysis_remove_outliers,
                         samples_path=MetricsDir(processed.parent.parent).samples,
                         regression=regression, trend_png=out / "trend.png", processed_path=processed,
                         raw_dir=MetricsDir(processed.parent.parent).raw, backtest=backtest)
    if environment is not None and not runs.empty and "campaign_id" in runs:
        keep_report(out, str(latest_campaign(runs)))
    if store:
        store.push_folder(out, f"reports/{name}")
    return paths


REPORT_FILES = ("report.html", "report.md", "results.json", "regression.json", "trend.csv", "trend.png", "figures")


def keep_report(out: Path, campaign: str) -> Path:
    """A copy of the report in out/<campaign>/ (the DAG run's own, kept when later runs replace out's), written
    beside it and renamed into place."""
    import shutil

    kept, partial = out / campaign, out / f".{campaign}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    for name in REPORT_FILES:
        source = out / name
        if source.is_dir():
            shutil.copytree(source, partial / name)
        elif source.exists():
            shutil.copy2(source, partial / name)
    shutil.rmtree(kept, ignore_errors=True)
    partial.rename(kept)
    return kept
