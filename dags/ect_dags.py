"""One Airflow DAG per training environment of config/environments.yaml (ect_local, ect_cloud, ...).

preflight (plan, prediction, energy budget) -> budget approval (only over the budget with BUDGET_APPROVAL) ->
host_check -> warm-up -> profiled training (mapped over architecture x repetition, in the host's
pool) -> validation (also after failed runs) -> aggregation (updates the processed-dataset Asset)
-> regression check -> report -> verdicts (all runs measured; no energy regression).
host_check, warm-up and training run on the environment's QUEUE (a worker on its GPU host); the rest on any worker,
where, with a QUEUE, host_check_watch fails the run with the reason when the GPU host's worker cannot load the DAG.
The ect_report DAG makes the cross-environment report whenever the processed dataset changes.
Every rule lives in the `ect` package; this file only wires tasks.
"""

from __future__ import annotations

import re
from datetime import datetime

from airflow.sdk import DAG, Asset, Param, TriggerRule, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from ect import pipeline
from ect.architectures import ARCHITECTURES
from ect.backends import BACKENDS
from ect.config import available_profiles, load_config
from ect.runners import RUNNERS
from ect.runners.budget import BudgetApproval
from ect.runners.credentials import use_store_credentials
from ect.runners.placement import queue_check, task_options
from ect.runners.states import WATCH_POKE_INTERVAL_S, succeeded_results, watch_host_check

CONFIG = load_config()  # a broken config/*.yaml fails here, as a DAG import error that names the file and key


# The processed dataset (METRICS_DIR/processed/runs.parquet): one Asset that every environment's DAG
# updates; the report DAG is scheduled on it. Named, not addressed by path, so that it survives a move.
PROCESSED = Asset("ect_processed")


def params(env) -> dict:
    """The trigger form: every field optional (empty: the configuration's value, which scheduled runs use too), choices
    where there are some, each description saying what an empty value falls back to."""
    e = CONFIG.experiment
    profiles = available_profiles(CONFIG.root / "config")
    names = "|".join(map(re.escape, ARCHITECTURES))
    backends = "|".join(map(re.escape, BACKENDS))
    return {
        # A list (the form's multi-select), or a string of comma-separated names in a conf ("vgg16,resnet50").
        "architectures": Param(None, type=["null", "array", "string"],
                               items={"type": "string", "enum": list(ARCHITECTURES)}, examples=list(ARCHITECTURES),
                               minItems=1, pattern=rf"^\s*(({names})(\s*,\s*({names}))*)?\s*$",
                               description=f"Architectures to profile (a list, or comma-separated names). Empty: "
                                           f"{', '.join(e.architectures)} (ARCHITECTURES of the configuration or the "
                                           "profile)."),
        "backends": Param(None, type=["null", "array", "string"],
                          items={"type": "string", "enum": list(BACKENDS)}, examples=list(BACKENDS), minItems=1,
                          pattern=rf"^\s*(({backends})(\s*,\s*({backends}))*)?\s*$",
                          description=f"Keras backends every architecture is trained with (a list, or comma-separated "
                                      f"names; each must be installed on the host). Empty: "
                                      f"{', '.join(e.backends or (env.backend,))} (BACKENDS, else BACKEND of "
                                      f"environment {env.name})."),
        "repetitions": Param(None, type=["null", "integer"], minimum=1,
                             description=f"Profiled runs per architecture. Empty: {e.repetitions} (REPETITIONS)."),
        "profile": Param(None, type=["null", "string"], enum=[None, *profiles],
                         values_display={"None": "none: config/*.yaml as they are", **{p: p for p in profiles}},
                         description="Named profile from config/profiles/ (demo: a minute on a laptop CPU). "
                                     "Empty: none (ECT_PROFILE of the workers, if set)."),
        "dataset": Param(None, type=["null", "string"], minLength=1,
                         description=f"Dataset folder inside {', '.join(CONFIG.base.dataset_roots)}. "
                                     f"Empty: {CONFIG.base.dataset_dir} (DATASET_DIR)."),
        "initial_epochs": Param(None, type=["null", "integer"], minimum=1,
                                description=f"Epochs of phase 1. Empty: {e.initial_epochs} (INITIAL_EPOCHS)."),
        "ft_epochs": Param(None, type=["null", "integer"], minimum=1,
                           description=f"Epochs of phase 2 (fine-tuning). Empty: {e.ft_epochs} (FT_EPOCHS)."),
        "experiment_name": Param(None, type=["null", "string"], minLength=1,
                                 description="MLflow experiment of the runs when MLFLOW_ENABLED is true. Empty: "
                                             f"{env.experiment} (EXPERIMENT_NAME of environment {env.name})."),
        "energy_budget_kwh": Param(None, type=["null", "number"], exclusiveMinimum=0,
                                   description="Energy budget of this DAG run in kWh: preflight stops it before any "
                                               "training when the planned runs' predicted upper bound is above it "
                                               "(with BUDGET_APPROVAL, it waits for approval). Empty: "
                                               f"{e.energy_budget_kwh if e.energy_budget_kwh else 'none'} "
                                               "(ENERGY_BUDGET_KWH)."),
    }


def schedule_of(env):
    """The environment's cron SCHEDULE as a trigger timetable that waits for its next time: unpausing the DAG starts
    nothing at once (no start_date, run_immediately False; a cron string would start the latest missed run)."""
    if env.schedule is None:
        return None
    return CronTriggerTimetable(env.schedule, timezone="UTC", run_immediately=False)


def alert_callback(env):
    """The environment's ALERT_CALLBACK (a dotted path to a function of the task context), if any; a bad one is an
    import error of this file that names the environment and the key."""
    return env.alert_function()


def run_config():
    """The configuration of the running DAG run (the files, the profile and the trigger form's values), with the
    run store's credentials in this task's environment."""
    use_store_credentials()
    return pipeline.config_for(dict(get_current_context()["params"]))


# With a run store, the tasks that write its shared files (validation verdicts, the processed dataset) run one at a
# time across every worker and DAG: an Airflow pool of one slot (`ect pools` makes it).
STORE_WRITERS = {"pool": pipeline.STORE_POOL} if CONFIG.run_store() else {}


def environment_dag(env) -> DAG:
    runner = RUNNERS[env.runner]
    with DAG(
        dag_id=f"ect_{env.name}", schedule=schedule_of(env), catchup=False,
        max_active_runs=1, params=params(env), tags=["ect", "energy", env.name, env.runner],
        doc_md=f"### Energy cost of training on `{env.name}`\n{env.description or ''}\n\n"
               "Trains every configured architecture inside an energy measurement window (GPU: NVML counter or "
               "integrated power; CPU: RAPL or an estimate), validates the raw measurements with Great Expectations, "
               f"and aggregates them into the processed dataset (runner `{env.runner}`, pool `{env.pool_name}`).",
    ) as dag:

        @task
        def preflight(params=None, dag_run=None) -> dict:
            use_store_credentials()
            return pipeline.preflight(env.name, dict(params), dag_run.run_id, placement_check=queue_check,
                                      conf=dict(dag_run.conf or {}))

        # none_failed_min_one_success: also when budget_approval is skipped (no approval needed).
        @task(trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS, **task_options(env))
        def host_check(plan: dict, params=None) -> dict:
            pipeline.host_check(env.name, dict(params), runner_check=runner.check)
            return plan

        @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, **STORE_WRITERS)  # also after failed training runs
        def validate(plan: dict) -> dict:
            cfg = run_config()
            return pipeline.planned_runs_summary(cfg, env.name, plan["runs"], pipeline.validate_step(cfg))

        @task(outlets=[PROCESSED], **STORE_WRITERS)
        def aggregate() -> dict:
            return pipeline.aggregation_summary(pipeline.aggregate_step(run_config()))

        @task
        def regression_check(aggregation: dict) -> dict:
            return pipeline.regression_step(run_config(), env.name)

        @task
        def report(regression: dict) -> str:
            return pipeline.report_step(run_config(), env.name, regression)["html"]

        @task(on_failure_callback=alert_callback(env))
        def no_energy_regression(regression: dict) -> None:
            """Fails (and alerts) when an architecture's energy rose beyond REGRESSION: THRESHOLD."""
            from ect.analysis.regression import raise_on_regression

            raise_on_regression(regression)

        @task(trigger_rule=TriggerRule.ALL_DONE, on_failure_callback=alert_callback(env))
        def all_runs_measured() -> None:
            """Fails the DAG run (and alerts) when a planned run failed, was quarantined (by validation or, failing to
            aggregate, by the aggregation) or was never validated. Reads the results of validate and aggregate only
            where they succeeded."""
            pipeline.check_all_measured(*succeeded_results(["validate", "aggregate"]))

        planned = preflight()
        # Over ENERGY_BUDGET_KWH with BUDGET_APPROVAL: waits for a person (Airflow's human-in-the-loop); else skipped.
        approval = BudgetApproval(task_id="budget_approval", environment=env,
                                  timeout_h=CONFIG.experiment.budget_approval_timeout_h)
        planned >> approval
        plan = host_check(planned)
        approval >> plan
        warm, trained = runner.tasks(env, CONFIG, plan)
        if env.queue:
            # On the default queue beside host_check: fails the run with the reason when the GPU host's worker cannot
            # load the DAG or never takes host_check, so that no training starts and the error is where one looks.
            @task.sensor(mode="reschedule", poke_interval=WATCH_POKE_INTERVAL_S,
                         timeout=env.host_check_timeout_s + 10 * WATCH_POKE_INTERVAL_S,
                         trigger_rule=TriggerRule.NONE_FAILED_MIN_ONE_SUCCESS)
            def host_check_watch() -> bool:
                return watch_host_check(env)

            [planned, approval] >> host_check_watch() >> [warm, trained]
        warm >> trained >> (summary := validate(plan)) >> (aggregation := aggregate())
        regression = regression_check(aggregation)
        measured = all_runs_measured()
        report(regression) >> [measured, no_energy_regression(regression)]
        [summary, aggregation] >> measured
    return dag


for _env in CONFIG.environments.values():
    globals()[f"ect_{_env.name}"] = environment_dag(_env)


# Active on creation: the cross-environment report follows every environment run without an unpause step.
with DAG(dag_id="ect_report", schedule=[PROCESSED], start_date=datetime(2026, 1, 1), catchup=False,
         is_paused_upon_creation=False, max_active_runs=1, tags=["ect", "energy", "report"],
         doc_md="### Cross-environment energy report\nRuns the paper's statistics over every environment's runs "
                "whenever an environment DAG updates the processed dataset.") as ect_report:

    @task
    def cross_environment_report() -> str:
        use_store_credentials()
        return pipeline.report_step(CONFIG, None)["html"]

    cross_environment_report()
