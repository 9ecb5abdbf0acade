"""`ect ...` and `python -m ect ...`: parses arguments and calls one function per command.

Start-up stays fast: TensorFlow is imported only by the commands that train.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from ect import __version__


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().upper(), value


def _add_config_options(parser: argparse.ArgumentParser, data: bool = True) -> None:
    group = parser.add_argument_group("configuration (command line > ECT_* variables > profile > config/*.yaml)")
    group.add_argument("--profile", help="named profile from config/profiles/ (e.g. demo); default: ECT_PROFILE or none")
    if data:
        group.add_argument("-d", "--data", metavar="DIR", help="dataset folder (DATASET_DIR); default: data/dataset")
        group.add_argument("--skip-corrupt", action="store_true",
                           help="skip corrupt and non-image files with a warning (SKIP_CORRUPT_IMAGES) instead of failing")
    group.add_argument("--set", metavar="KEY=VALUE", type=_key_value, action="append", default=[],
                       help="override any setting, e.g. --set INITIAL_EPOCHS=2 (repeatable; see `ect config`)")


def _load(args):
    from ect.config import load_config

    overrides = dict(args.set)
    if getattr(args, "data", None):
        overrides["DATASET_DIR"] = args.data
    if getattr(args, "skip_corrupt", False):
        overrides["SKIP_CORRUPT_IMAGES"] = True
    cfg = load_config(profile=args.profile, overrides=overrides)
    args.debug = cfg.base.debug
    return cfg


def cmd_make_dataset(args) -> int:
    from ect.data import make_synthetic_dataset

    index = make_synthetic_dataset(args.dir, images=args.images, size=args.size, seed=args.seed, force=args.force)
    counts = ", ".join(f"{sum(f.label == i for f in index.files)} {name}" for i, name in enumerate(index.class_names))
    print(f"wrote {len(index.files)} images ({counts}) of {args.size}x{args.size} pixels to {index.root}")
    return 0


def cmd_train(args) -> int:
    from ect.models.training import run_training

    cfg = _load(args)
    run_training(cfg, args.environment, args.architecture, experiment_name=args.experiment_name)
    return 0


def _config_args(args) -> list[str]:
    """The configuration options of this command line, to forward to child processes."""
    forwarded = [f"--profile={args.profile}"] if args.profile else []
    if getattr(args, "data", None):
        forwarded.append(f"--data={os.path.abspath(args.data)}")
    if getattr(args, "skip_corrupt", False):
        forwarded.append("--skip-corrupt")
    return forwarded + [f"--set={key}={value}" for key, value in args.set]


class Terminated(BaseException):
    """SIGTERM (Airflow stopping a task, `docker stop`): unwinds like Ctrl-C so the run is recorded as failed."""


def _raise_on_sigterm() -> None:
    import signal

    def handler(signum, frame):
        raise Terminated(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


def cmd_profile(args) -> int:
    from ect.profiling.campaign import profile_campaign

    if args.architectures:
        args.set.append(("ARCHITECTURES", args.architectures))
    if args.repetitions is not None:
        args.set.append(("REPETITIONS", str(args.repetitions)))
    cfg = _load(args)
    failed = profile_campaign(cfg, args.environment, _config_args(args), cfg.experiment.architectures,
                              cfg.experiment.repetitions, experiment_name=args.experiment_name)
    return 1 if failed else 0


def cmd_profile_run(args) -> int:
    from ect.profiling.run import profile_run

    cfg = _load(args)
    _raise_on_sigterm()
    try:
        outcome = profile_run(cfg, args.environment, args.architecture, args.repetition, args.run_id,
                              experiment_name=args.experiment_name, dag_run_id=args.dag_run_id)
    except Terminated as error:
        print(f"ect profile-run: {error}; the run is recorded as failed", file=sys.stderr)
        return 143
    except BaseException:
        _cool_down_after_run(args, cfg)
        raise
    _cool_down_after_run(args, cfg)
    return 0 if outcome.status == "completed" else 1


def _cool_down_after_run(args, cfg) -> None:
    if args.cool_down and cfg.experiment.cooldown > 0:
        from ect.profiling.warmup import cool_down

        cool_down(cfg.experiment.cooldown * 60)


def cmd_warmup(args) -> int:
    from ect.models.device import configure_gpus
    from ect.profiling.warmup import warm_up

    cfg = _load(args)
    env = cfg.environment(args.environment)
    minutes = cfg.experiment.warmup_time if args.minutes is None else args.minutes
    configure_gpus(env.gpus, cfg.resources.gpu_mem_limit)
    warm_up(minutes * 60)
    return 0


def _raw_dir(args, cfg) -> Path:
    """RAW_DIR of the command line, else METRICS_DIR/raw; it must exist."""
    from ect.config import ConfigError

    raw = Path(os.path.abspath(args.raw_dir)) if args.raw_dir else cfg.path("METRICS_DIR") / "raw"
    if not raw.is_dir():
        raise ConfigError(f"raw measurements folder {raw} does not exist (METRICS_DIR/raw or RAW_DIR)")
    return raw


def _processed(args, cfg) -> Path:
    """--processed of the command line, else METRICS_DIR/processed/runs.parquet; it must exist."""
    from ect.config import ConfigError

    processed = Path(args.processed) if args.processed else cfg.path("METRICS_DIR") / "processed" / "runs.parquet"
    if not processed.is_file():
        raise ConfigError(f"processed dataset {processed} does not exist: run `ect aggregate` first")
    return processed


def cmd_validate(args) -> int:
    from ect.validation import QUARANTINED, limits_from, validate_raw

    cfg = _load(args)
    raw = _raw_dir(args, cfg)
    summary_dir = Path(args.summary_dir) if args.summary_dir else raw.parent / "validation"
    results = validate_raw(raw, limits_from(cfg.experiment), summary_dir, force=args.force,
                           data_docs=Path(args.data_docs).resolve() if args.data_docs else None)
    print(f"summary: {summary_dir / 'summary.json'} and {summary_dir / 'summary.txt'}")
    return 1 if any(r.status == QUARANTINED for r in results) else 0


def cmd_aggregate(args) -> int:
    from ect.aggregate.aggregate import aggregate
    from ect.validation import limits_from

    cfg = _load(args)
    raw = _raw_dir(args, cfg)
    out = Path(args.out).resolve() if args.out else cfg.path("METRICS_DIR")
    aggregate(raw, out, cfg.environments, limits_from(cfg.experiment))
    return 0


def cmd_import_legacy(args) -> int:
    from ect.aggregate.legacy import import_legacy

    import_legacy(Path(args.src), Path(args.dest), trim_samples=args.trim_samples)
    return 0


def cmd_mlflow_sync(args) -> int:
    from ect.tracking import sync_runs

    cfg = _load(args)
    results = sync_runs(cfg, _raw_dir(args, cfg))
    for folder, status in results:
        print(f"{folder}: {status}")
    if not results:
        print("nothing to sync: every tracked run is in MLflow already")
    return 1 if any(not status.startswith("synced") for _, status in results) else 0


def cmd_export(args) -> int:
    from ect.aggregate.export import export_codecarbon

    cfg = _load(args)
    processed = _processed(args, cfg)
    out = Path(args.out) if args.out else processed.parent / "emissions.csv"
    print(f"wrote {export_codecarbon(processed, out)}")
    return 0


def cmd_analyze(args) -> int:
    import pandas as pd

    from ect.analysis.report import write_report

    cfg = _load(args)
    processed = _processed(args, cfg)
    runs = pd.read_parquet(processed)
    if args.environment:
        runs = runs[runs["environment"] == args.environment]
    if runs.empty:
        from ect.config import ConfigError

        raise ConfigError(f"{processed} has no runs" + (f" of environment {args.environment!r}" if args.environment else ""))
    out = Path(args.out) if args.out else cfg.path("OUTPUT_DIR") / (args.environment or "report")
    e = cfg.experiment
    paths = write_report(runs, out, args.title or "Energy cost of training", alpha=e.analysis_alpha,
                         correction=e.analysis_correction, outliers=args.outliers or e.analysis_remove_outliers,
                         samples_path=processed.parent.parent / "interim" / "samples.parquet")
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


def cmd_check_regression(args) -> int:
    from ect import pipeline
    from ect.analysis.regression import EnergyRegression, raise_on_regression

    cfg = _load(args)
    cfg.environment(args.environment)
    result = pipeline.regression_step(cfg, args.environment)
    try:
        raise_on_regression(result)
    except EnergyRegression as error:
        print(f"ect check-regression: {error}", file=sys.stderr)
        return 1
    print(f"no energy regression on {args.environment} (latest run {result['latest_campaign']})")
    return 0


def cmd_pools(args) -> int:
    import json

    cfg = _load(args)
    pools = {}
    for env in cfg.environments.values():
        entry = pools.setdefault(env.pool_name, {"slots": env.pool_slots, "include_deferred": False,
                                                 "description": "ect GPU host of "})
        entry["description"] += ("" if entry["description"].endswith("of ") else ", ") + env.name
    print(json.dumps(pools, indent=2))
    return 0


def cmd_config(args) -> int:
    from ect.config.settings import SECTIONS, keys_of

    cfg = _load(args)
    print(f"project root: {cfg.root}\nprofile: {cfg.profile or 'none'}")
    for section, cls in SECTIONS.items():
        print(f"\n[{section}]")
        for key, field in keys_of(cls).items():
            value = getattr(getattr(cfg, section), field.name)
            line = f"  {key} = {value!r}    # {cfg.origins[f'{section}.{key}']}"
            print(line + (f"\n      {field.metadata['doc']}" if args.explain else ""))
    print("\n[environments]")
    for name, env in cfg.environments.items():
        print(f"  {name}: runner={env.runner} gpus={env.gpus} carbon_intensity={env.carbon_intensity_gco2e_per_kwh} "
              f"gCO2e/kWh pue={env.pue} schedule={env.schedule!r}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from ect.models.registry import ARCHITECTURES

    parser = argparse.ArgumentParser(
        prog="ect", description="Measure the energy cost of training deep-learning image classifiers.",
        epilog="Run `ect COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"ect {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    make = commands.add_parser("make-dataset", help="write a synthetic two-class image dataset (circles vs squares)",
                               description="Write a synthetic binary image-classification dataset: "
                                           "DIR/circles/*.png and DIR/squares/*.png.")
    make.add_argument("dir", metavar="DIR", help="folder to create")
    make.add_argument("--images", type=int, default=200, help="number of images, split evenly over the two classes (default 200)")
    make.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    make.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    make.add_argument("--force", action="store_true", help="replace DIR if it exists")
    make.set_defaults(func=cmd_make_dataset)

    train = commands.add_parser(
        "train", help="train one model without energy profiling",
        description="Train one model in two phases (frozen base, then fine-tuning) without energy profiling. "
                    "Writes history.csv, metrics.json and model.keras to MODELS_DIR/ENVIRONMENT/ARCHITECTURE/<time>/.")
    train.add_argument("environment", metavar="ENVIRONMENT", help="training environment from config/environments.yaml (e.g. local, cloud)")
    train.add_argument("architecture", metavar="ARCHITECTURE", choices=list(ARCHITECTURES),
                       help=f"architecture: {', '.join(ARCHITECTURES)} (tiny_cnn is for tests, not a benchmark)")
    train.add_argument("--experiment-name", "--experiment_name", dest="experiment_name",
                       help="name of the MLflow experiment (recorded in metrics.json)")
    _add_config_options(train)
    train.set_defaults(func=cmd_train)

    environment_help = "training environment from config/environments.yaml (e.g. local, cloud)"
    profile = commands.add_parser(
        "profile", help="profile every architecture and repetition (the original's profile_model)",
        description="Warm up for WARMUP_TIME minutes, then run one profiled training per architecture and "
                    "repetition, each in its own process, with a cool-down of COOLDOWN minutes every "
                    "COOLDOWN_EVERY runs. Raw run folders go to METRICS_DIR/raw/ENVIRONMENT/ARCHITECTURE/RUN_ID/. "
                    "A failed run is recorded and the next one goes on; the exit code is 1 if any run failed.")
    profile.add_argument("environment", metavar="ENVIRONMENT", help=environment_help)
    profile.add_argument("--architectures", metavar="A,B", help="comma-separated architectures (default: ARCHITECTURES)")
    profile.add_argument("--repetitions", type=int, metavar="N", help="runs per architecture (default: REPETITIONS)")
    profile.add_argument("--experiment-name", "--experiment_name", dest="experiment_name",
                         help="name of the MLflow experiment (recorded in each manifest)")
    _add_config_options(profile)
    profile.set_defaults(func=cmd_profile)

    profile_run = commands.add_parser(
        "profile-run", help="exactly one profiled training run (the unit a DAG task or container executes)",
        description="Train one architecture inside an energy measurement window and write its raw run folder. "
                    "Idempotent per run id: a completed run is reported and not re-run; a failed or interrupted "
                    "one is retried as a new attempt, its earlier files kept under previous-attempts/.")
    profile_run.add_argument("environment", metavar="ENVIRONMENT", help=environment_help)
    profile_run.add_argument("architecture", metavar="ARCHITECTURE", choices=list(ARCHITECTURES),
                             help=f"architecture: {', '.join(ARCHITECTURES)}")
    profile_run.add_argument("--repetition", type=int, required=True, metavar="K", help="repetition number (0-based)")
    profile_run.add_argument("--run-id", required=True, metavar="ID", help="run id: the folder name of the run")
    profile_run.add_argument("--dag-run-id", metavar="ID", help="the Airflow DAG run this run belongs to (the DAGs "
                             "pass it): recorded in the manifest and as the MLflow tag dag_run_id")
    profile_run.add_argument("--experiment-name", "--experiment_name", dest="experiment_name",
                             help="name of the MLflow experiment (recorded in the manifest)")
    profile_run.add_argument("--cool-down", action="store_true",
                             help="cool down for COOLDOWN minutes after the run, whatever its outcome")
    _add_config_options(profile_run)
    profile_run.set_defaults(func=cmd_profile_run)

    warmup = commands.add_parser("warmup", help="keep the GPU (or CPU) busy before measuring",
                                 description="Run matrix products on the environment's first GPU (or the CPU) "
                                             "for WARMUP_TIME minutes, so that measurements start warm.")
    warmup.add_argument("environment", metavar="ENVIRONMENT", help=environment_help)
    warmup.add_argument("--minutes", type=float, help="duration in minutes (default: WARMUP_TIME)")
    _add_config_options(warmup)
    warmup.set_defaults(func=cmd_warmup)

    validate = commands.add_parser(
        "validate", help="check raw measurements with Great Expectations; quarantine bad runs",
        description="Validate every raw run folder (gpu.csv, cpu.csv, manifest.json) with Great Expectations "
                    "suites. Each run is marked passed or quarantined in its validation.json (never moved or "
                    "deleted) with the failing expectations and offending values; a summary goes to "
                    "METRICS_DIR/validation/summary.json and summary.txt. Exit status 1 if any run is quarantined.")
    validate.add_argument("raw_dir", metavar="RAW_DIR", nargs="?", help="raw measurements (default: METRICS_DIR/raw)")
    validate.add_argument("--summary-dir", metavar="DIR", help="where the summary goes (default: RAW_DIR/../validation)")
    validate.add_argument("--force", action="store_true", help="validate again runs whose files did not change")
    validate.add_argument("--data-docs", metavar="DIR",
                          help="also keep the validations in a Great Expectations project in DIR and build its "
                               "Data Docs (HTML: DIR/gx/uncommitted/data_docs/local_site/index.html); slower")
    _add_config_options(validate, data=False)
    validate.set_defaults(func=cmd_validate)

    aggregate = commands.add_parser(
        "aggregate", help="raw -> interim/samples.parquet -> processed/runs.parquet and runs.csv",
        description="Aggregate the completed, validated runs: interim/samples.parquet (GPU and CPU samples "
                    "joined by nearest timestamp) and processed/runs.parquet + runs.csv (one row per run: energy, "
                    "kWh, gCO2e, power, usage, quality). Incremental and idempotent.")
    aggregate.add_argument("raw_dir", metavar="RAW_DIR", nargs="?", help="raw measurements (default: METRICS_DIR/raw)")
    aggregate.add_argument("--out", metavar="DIR", help="folder for interim/ and processed/ (default: METRICS_DIR)")
    _add_config_options(aggregate, data=False)
    aggregate.set_defaults(func=cmd_aggregate)

    mlflow_sync = commands.add_parser(
        "mlflow-sync", help="upload the completed runs that are not synced to MLflow yet, exactly once each",
        description="Upload the completed runs that are not synced to MLflow yet, exactly once each: the run "
                    "folders (profiled runs under RAW_DIR, `ect train` runs under MODELS_DIR) whose tracking.json "
                    "says synced false (the tracking server was unreachable when the run ended). A run already in MLflow (tag ect_run_key) is only marked synced. "
                    "Exit status 1 if any run could not be uploaded.")
    mlflow_sync.add_argument("raw_dir", metavar="RAW_DIR", nargs="?", help="raw measurements (default: METRICS_DIR/raw)")
    _add_config_options(mlflow_sync, data=False)
    mlflow_sync.set_defaults(func=cmd_mlflow_sync)

    legacy = commands.add_parser(
        "import-legacy", help="import the original replication package's raw measurements",
        description="Import SRC/<environment>/<architecture>/gpu-power-<stamp>.csv and cpu-mem-usage-<stamp>.csv "
                    "(nvidia-smi and psutil logs of the SEAA 2023 package) as ect raw run folders under DEST, "
                    "runs numbered 0..n-1 by stamp, power kept at full precision.")
    legacy.add_argument("src", metavar="SRC", help="the original's data/metrics/raw folder")
    legacy.add_argument("dest", metavar="DEST", help="ect raw folder to write (e.g. data/metrics/raw)")
    legacy.add_argument("--trim-samples", type=int, default=3, metavar="N",
                        help="drop the first and last N GPU samples of every file, as the original did (default 3)")
    legacy.set_defaults(func=cmd_import_legacy)

    export = commands.add_parser("export", help="export the processed runs for other tools",
                                 description="Export processed/runs.parquet in another tool's format.")
    export.add_argument("--format", choices=["codecarbon"], required=True,
                        help="codecarbon: emissions.csv with CodeCarbon's column names and units")
    export.add_argument("--processed", metavar="FILE", help="processed dataset (default: METRICS_DIR/processed/runs.parquet)")
    export.add_argument("--out", metavar="FILE", help="output file (default: next to the processed dataset)")
    _add_config_options(export, data=False)
    export.set_defaults(func=cmd_export)

    analyze = commands.add_parser(
        "analyze", help="statistics, report and plots of the processed dataset",
        description="The paper's statistics (Shapiro-Wilk, Levene, Kruskal-Wallis with eta squared, Dunn post-hoc, "
                    "Cliff's delta, the energy-reduction table, the Pareto front of energy vs F1) as results.json, "
                    "report.md and a self-contained report.html with figures/*.png.")
    analyze.add_argument("processed", metavar="PROCESSED", nargs="?",
                         help="processed dataset (default: METRICS_DIR/processed/runs.parquet)")
    analyze.add_argument("--out", metavar="DIR", help="output folder (default: OUTPUT_DIR/report or OUTPUT_DIR/ENVIRONMENT)")
    analyze.add_argument("--environment", metavar="ENV", help="only this environment's runs")
    analyze.add_argument("--outliers", action="store_true", help="remove Tukey outliers first (ANALYSIS: REMOVE_OUTLIERS)")
    analyze.add_argument("--title", help="the report's title")
    _add_config_options(analyze, data=False)
    analyze.set_defaults(func=cmd_analyze)

    regression = commands.add_parser(
        "check-regression", help="compare the latest DAG run's energy with the previous ones",
        description="For each architecture, the median energy of the environment's latest DAG run (or campaign) "
                    "against the previous REGRESSION: BASELINE_RUNS ones, with a one-sided Mann-Whitney test and "
                    "REGRESSION: THRESHOLD. Writes OUTPUT_DIR/ENVIRONMENT/regression.json, trend.csv and trend.png; "
                    "exit status 1 on a regression.")
    regression.add_argument("environment", metavar="ENVIRONMENT", help=environment_help)
    _add_config_options(regression, data=False)
    regression.set_defaults(func=cmd_check_regression)

    pools = commands.add_parser("pools", help="print the Airflow pools of the environments (for `airflow pools import`)",
                                description="Print one Airflow pool per GPU host (POOL, default ect_<environment>, "
                                            "with POOL_SLOTS slots) as JSON: `ect pools > p.json && airflow pools import p.json`.")
    _add_config_options(pools, data=False)
    pools.set_defaults(func=cmd_pools)

    config = commands.add_parser("config", help="show the effective configuration and where each value came from",
                                 description="Show every setting, its value and its origin (default, file, profile, "
                                             "ECT_* variable or command line).")
    config.add_argument("--explain", action="store_true", help="also print what each setting means")
    _add_config_options(config)
    config.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from ect.aggregate.legacy import LegacyImportError
    from ect.config import ConfigError
    from ect.data import DatasetError
    from ect.models import ModelError

    try:
        return args.func(args)
    except (ConfigError, DatasetError, ModelError, LegacyImportError) as error:
        if getattr(args, "debug", False) or os.environ.get("ECT_DEBUG", "").lower() in ("1", "true", "yes"):
            traceback.print_exc()
        print(f"ect {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ect {args.command}: interrupted", file=sys.stderr)
        return 130
