"""`ect ...` and `python -m ect ...`: each command is a function registered with its arguments; build_parser
turns the registry into argparse sub-commands. The functions parse nothing themselves and call one function of
the package each; ect's log lines go to the terminal (warnings prefixed "warning: "), errors to stderr as one line.

Start-up stays fast: TensorFlow is imported only by the commands that train.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ect import __version__
from ect.architectures import ARCHITECTURES
from ect.backends import BACKENDS
from ect.errors import (INTERNAL_ERROR, LINE_LIMIT, USAGE_ERROR, ConfigError, EctError, EnergyRegression,
                        NothingToDo, describe_os_error, is_system_error, shorten)
from ect.masking import mask, url_secrets
from ect.runs.commands import LOG_PREFIX_VARIABLE
from ect.runs.forecast import text_table

ENVIRONMENT_HELP = "training environment from config/environments.yaml (e.g. local, cloud)"
ARCHITECTURE_HELP = f"architecture: {', '.join(ARCHITECTURES)} (tiny_cnn is for tests, not a benchmark)"


@dataclass(frozen=True)
class Command:
    name: str
    run: Callable[[argparse.Namespace], int]
    help: str
    description: str
    arguments: tuple  # (names, options) pairs for add_argument
    config: str | None  # the configuration options it takes: "data" (with -d and --skip-corrupt), "plain" or None


COMMANDS: dict[str, Command] = {}


def arg(*names: str, **options) -> tuple:
    return names, options


def command(name: str, help: str, description: str | None = None, arguments=(), config: str | None = "plain"):
    """Registers the decorated function as `ect NAME` with its arguments."""
    def register(run):
        COMMANDS[name] = Command(name, run, help, description or help[0].upper() + help[1:] + ".", tuple(arguments),
                                 config)
        return run
    return register


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip().upper(), value


def _add_config_options(parser: argparse.ArgumentParser, data: bool) -> None:
    group = parser.add_argument_group("configuration (command line > ECT_* variables > profile > config/*.yaml)")
    group.add_argument("--profile", help="named profile from config/profiles/ (e.g. demo); default: ECT_PROFILE or none")
    if data:
        group.add_argument("-d", "--data", metavar="DIR", help="dataset folder (DATASET_DIR); default: data/dataset")
        group.add_argument("--skip-corrupt", action="store_true",
                           help="skip corrupt and non-image files with a warning (SKIP_CORRUPT_IMAGES) instead of failing")
    group.add_argument("--set", metavar="KEY=VALUE", type=_key_value, action="append", default=[],
                       help="override any setting, e.g. --set INITIAL_EPOCHS=2 (repeatable; see `ect config`)")


def _overrides(args) -> dict:
    overrides = dict(args.set)
    if getattr(args, "data", None):
        overrides["DATASET_DIR"] = os.path.abspath(args.data)
    if getattr(args, "skip_corrupt", False):
        overrides["SKIP_CORRUPT_IMAGES"] = True
    return overrides


def _load(args):
    from ect.config import load_config

    cfg = load_config(profile=args.profile, overrides=_overrides(args))
    args.debug = cfg.base.debug
    return cfg


def _raw_dir(args, cfg) -> Path:
    """RAW_DIR of the command line, else METRICS_DIR/raw; it must exist."""
    from ect.pipeline import metrics_dir

    raw = Path(os.path.abspath(args.raw_dir)) if args.raw_dir else metrics_dir(cfg).raw
    if not raw.is_dir():
        raise ConfigError(f"raw measurements folder {raw} does not exist (METRICS_DIR/raw or RAW_DIR)")
    return raw


def _raw_dir_or_store(args, cfg) -> Path | None:
    """None when RUN_STORE is set and no RAW_DIR is given: the step mirrors the store's runs into METRICS_DIR/raw and
    works on them alone; else _raw_dir."""
    return None if cfg.run_store() and not args.raw_dir else _raw_dir(args, cfg)


def _processed(args, cfg) -> Path:
    """--processed (or PROCESSED) of the command line, else METRICS_DIR/processed/runs.parquet; it must exist."""
    from ect.pipeline import metrics_dir

    processed = Path(args.processed) if getattr(args, "processed", None) else metrics_dir(cfg).processed
    if not processed.is_file():
        raise NothingToDo(f"processed dataset {processed} does not exist: run `ect aggregate` first")
    return processed


def _processed_runs(args, cfg, task: str, environment: str | None = None):
    """The processed dataset (_processed) and its runs (of `environment` when given); NothingToDo ("nothing to
    TASK: ...") when there are none."""
    import pandas as pd

    processed = _processed(args, cfg)
    try:
        runs = pd.read_parquet(processed)
    except ValueError as error:  # pyarrow's ArrowInvalid: not a Parquet file, or a damaged one
        raise ConfigError(f"processed dataset {processed} cannot be read as Parquet ({shorten(str(error))}); "
                          "`ect aggregate` writes it again from the raw runs") from None
    if environment is not None and "environment" in runs:
        runs = runs[runs["environment"] == environment]
    if runs.empty:
        raise NothingToDo(f"nothing to {task}: {processed} has no runs"
                          + (f" of environment {environment!r}" if environment else "")
                          + " (`ect aggregate` adds the measured runs)")
    return processed, runs


class Terminated(BaseException):
    """SIGTERM (Airflow stopping a task, `docker stop`): unwinds like Ctrl-C so the run is recorded as failed."""


def _raise_on_sigterm() -> None:
    import signal

    def handler(signum, frame):
        raise Terminated(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, handler)


@command("make-dataset", "write a two-class image dataset (synthetic shapes, or two Fashion-MNIST classes)", config=None,
         description="Write a binary image-classification dataset: DIR/circles/*.png and DIR/squares/*.png (synthetic), "
                     "or two classes of Fashion-MNIST from Debian's dataset-fashion-mnist, resized to RGB "
                     "(--source fashion-mnist; default classes pullover and coat: DIR/coat/*.png and DIR/pullover/*.png).",
         arguments=[
             arg("dir", metavar="DIR", help="folder to create"),
             arg("--source", choices=["synthetic", "fashion-mnist"], default="synthetic",
                 help="synthetic circles vs squares (default), or fashion-mnist"),
             arg("--images", type=int, help="number of images, split evenly over the two classes "
                                            "(default 200 synthetic, 2000 fashion-mnist)"),
             arg("--size", type=int, help="image side in pixels (default 64 synthetic, 32 fashion-mnist)"),
             arg("--seed", type=int, default=0, help="random seed (default 0)"),
             arg("--classes", default="pullover,coat", help="fashion-mnist: two labels, as numbers 0-9 or names "
                                                             "(t-shirt, trouser, pullover, dress, coat, sandal, shirt, "
                                                             "sneaker, bag, ankle-boot); default pullover,coat"),
             arg("--idx-dir", metavar="DIR", help="fashion-mnist: folder of the IDX files "
                                                  "(default /usr/share/datasets/fashion-mnist)"),
             arg("--force", action="store_true", help="replace DIR if it exists"),
         ])
def make_dataset(args) -> int:
    if args.source == "fashion-mnist":
        from ect.data.fashion_mnist import DEFAULT_IDX_DIR, make_fashion_mnist_dataset, parse_classes

        args.images = 2000 if args.images is None else args.images
        args.size = 32 if args.size is None else args.size
        index = make_fashion_mnist_dataset(args.dir, classes=parse_classes(args.classes), images=args.images,
                                           size=args.size, seed=args.seed, idx_dir=args.idx_dir or DEFAULT_IDX_DIR,
                                           force=args.force)
    else:
        from ect.data import make_synthetic_dataset

        args.images = 200 if args.images is None else args.images
        args.size = 64 if args.size is None else args.size
        index = make_synthetic_dataset(args.dir, images=args.images, size=args.size, seed=args.seed, force=args.force)
    counts = ", ".join(f"{sum(f.label == i for f in index.files)} {name}" for i, name in enumerate(index.class_names))
    print(f"wrote {len(index.files)} images ({counts}) of {args.size}x{args.size} pixels to {index.root}")
    return 0


ARCHITECTURES_OPTION = arg("--architectures", metavar="A,B",
                           help="comma-separated architectures (default: ARCHITECTURES)")
EXPERIMENT_NAME = arg("--experiment-name", "--experiment_name", dest="experiment_name",
                      help="name of the MLflow experiment (recorded with the run)")
BACKEND = arg("--backend", choices=list(BACKENDS), metavar="NAME",
              help=f"Keras backend: {', '.join(BACKENDS)} (default: the environment's BACKEND)")


@command("train", "train one model without energy profiling", config="data",
         description="Train one model in two phases (frozen base, then fine-tuning) without energy profiling. "
                     "Writes history.csv, metrics.json and model.keras to MODELS_DIR/ENVIRONMENT/ARCHITECTURE/<time>/.",
         arguments=[
             arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP),
             arg("architecture", metavar="ARCHITECTURE", choices=list(ARCHITECTURES), help=ARCHITECTURE_HELP),
             EXPERIMENT_NAME,
             BACKEND,
         ])
def train(args) -> int:
    from ect.runs.train import run_training

    run_training(_load(args), args.environment, args.architecture, experiment_name=args.experiment_name,
                 backend=args.backend)
    return 0


@command("profile", "profile every architecture and repetition (the original's profile_model)", config="data",
         description="Warm up for WARMUP_TIME minutes, then run one profiled training per architecture and "
                     "repetition, each in its own process, with a cool-down every COOLDOWN_EVERY runs (until the "
                     "GPU is back at the campaign's first idle baseline, COOLDOWN minutes at most). Raw run folders "
                     "go to METRICS_DIR/raw/ENVIRONMENT/ARCHITECTURE/RUN_ID/. "
                     "A failed run is recorded and the next one goes on; the exit code is 1 if any run failed.",
         arguments=[
             arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP),
             ARCHITECTURES_OPTION,
             arg("--repetitions", type=int, metavar="N", help="runs per architecture (default: REPETITIONS)"),
             arg("--backends", metavar="A,B", help="comma-separated Keras backends, each architecture trained on "
                                                   "each (default: BACKENDS, else the environment's BACKEND)"),
             EXPERIMENT_NAME,
         ])
def profile(args) -> int:
    from ect.runs.campaign import profile_campaign
    from ect.runs.commands import config_options

    if args.architectures:
        args.set.append(("ARCHITECTURES", args.architectures))
    if args.backends:
        args.set.append(("BACKENDS", args.backends))
    if args.repetitions is not None:
        args.set.append(("REPETITIONS", str(args.repetitions)))
    cfg = _load(args)
    failed = profile_campaign(cfg, args.environment, config_options(args.profile, _overrides(args)),
                              experiment_name=args.experiment_name)
    return 1 if failed else 0


@command("profile-run", "exactly one profiled training run (the unit a DAG task or container executes)",
         config="data",
         description="Train one architecture inside an energy measurement window and write its raw run folder. "
                     "Idempotent per run id: a completed run is reported and not re-run; a failed or interrupted "
                     "one is retried as a new attempt, its earlier files kept under previous-attempts/.",
         arguments=[
             arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP),
             arg("architecture", metavar="ARCHITECTURE", choices=list(ARCHITECTURES), help=ARCHITECTURE_HELP),
             arg("--repetition", type=int, required=True, metavar="K", help="repetition number (0-based)"),
             arg("--run-id", required=True, metavar="ID", help="run id: the folder name of the run"),
             arg("--dag-run-id", metavar="ID", help="the Airflow DAG run this run belongs to (the DAGs pass it): "
                                                   "recorded in the manifest and as the MLflow tag dag_run_id"),
             EXPERIMENT_NAME,
             BACKEND,
             arg("--cool-down", action="store_true",
                 help="cool down after the run, whatever its outcome: until the GPU is back at the campaign's "
                      "first idle baseline, COOLDOWN minutes at most"),
         ])
def profile_run(args) -> int:
    from ect.raw.layout import RunKey
    from ect.runs.profiled import profile_run

    cfg = _load(args)
    _raise_on_sigterm()
    try:
        outcome = profile_run(cfg, RunKey(args.environment, args.architecture, args.run_id), args.repetition,
                              experiment_name=args.experiment_name, dag_run_id=args.dag_run_id, backend=args.backend)
    except Terminated as error:  # the task is being stopped: no cool-down
        print(f"ect profile-run: {error}; the run is recorded as failed", file=sys.stderr)
        return 143
    except BaseException:
        _cool_down_if_asked(args, cfg)
        raise
    _cool_down_if_asked(args, cfg)
    return 0 if outcome.status == "completed" else 1


def _cool_down_if_asked(args, cfg) -> None:
    if args.cool_down and cfg.experiment.cooldown > 0:
        from ect.raw.layout import RunKey
        from ect.runs.profiled import cool_down_after

        cool_down_after(cfg, RunKey(args.environment, args.architecture, args.run_id))


@command("warmup", "keep the GPU (or CPU) busy before measuring", config="data",
         description="Run matrix products on the environment's first GPU (or the CPU) for WARMUP_TIME minutes, "
                     "so that measurements start warm.",
         arguments=[
             arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP),
             arg("--minutes", type=float, help="duration in minutes (default: WARMUP_TIME)"),
             BACKEND,
         ])
def warmup(args) -> int:
    from ect.backends import select_backend
    from ect.models.device import configure_gpus
    from ect.profiling.warmup import warm_up

    cfg = _load(args)
    env = cfg.environment(args.environment)
    backend = args.backend or env.backend
    select_backend(backend)
    configure_gpus(backend, env.gpus, cfg.resources.gpu_mem_limit)
    warm_up((cfg.experiment.warmup_time if args.minutes is None else args.minutes) * 60)
    return 0


RAW_DIR = arg("raw_dir", metavar="RAW_DIR", nargs="?",
              help="raw measurements (default: METRICS_DIR/raw; with RUN_STORE, validate and aggregate mirror the "
                   "store's runs there and use those alone)")


@command("validate", "check raw measurements with Great Expectations; quarantine bad runs",
         description="Validate every raw run folder (gpu.csv, cpu.csv, manifest.json) with Great Expectations "
                     "suites. Each run is marked passed or quarantined in its validation.json (never moved or "
                     "deleted) with the failing expectations and offending values; a summary goes to "
                     "METRICS_DIR/validation/summary.json and summary.txt. Exit status 1 if any run is quarantined.",
         arguments=[
             RAW_DIR,
             arg("--summary-dir", metavar="DIR", help="where the summary goes (default: RAW_DIR/../validation)"),
             arg("--force", action="store_true", help="validate again runs whose files did not change"),
             arg("--data-docs", metavar="DIR",
                 help="also keep the validations in a Great Expectations project in DIR and build its "
                      "Data Docs (HTML: DIR/gx/uncommitted/data_docs/local_site/index.html); slower"),
         ])
def validate(args) -> int:
    from ect.pipeline import metrics_dir, validate_step
    from ect.raw.layout import MetricsDir
    from ect.validation import QUARANTINED

    cfg = _load(args)
    raw = _raw_dir_or_store(args, cfg)
    summary_dir = Path(args.summary_dir) if args.summary_dir else \
        MetricsDir(raw.parent).validation if raw else metrics_dir(cfg).validation
    results = validate_step(cfg, raw, summary_dir, force=args.force,
                            data_docs=Path(args.data_docs).resolve() if args.data_docs else None)
    print(f"summary: {summary_dir / 'summary.json'} and {summary_dir / 'summary.txt'}")
    return 1 if any(r.status == QUARANTINED for r in results) else 0


@command("aggregate", "raw -> interim/samples.parquet -> processed/runs.parquet and runs.csv",
         description="Aggregate the completed, validated runs: interim/samples.parquet (GPU and CPU samples "
                     "joined by nearest timestamp) and processed/runs.parquet + runs.csv (one row per run: energy, "
                     "kWh, gCO2e, power, usage, quality). Incremental and idempotent.",
         arguments=[RAW_DIR, arg("--out", metavar="DIR", help="folder for interim/ and processed/ (default: METRICS_DIR)"),
                    arg("--allow-removal", action="store_true",
                        help="remove from the processed dataset the runs that have no run folder under RAW_DIR any "
                             "more (without it, such an aggregation is refused and nothing changes)")])
def aggregate(args) -> int:
    from ect.pipeline import aggregate_step

    cfg = _load(args)
    result = aggregate_step(cfg, _raw_dir_or_store(args, cfg), Path(args.out).resolve() if args.out else None,
                            allow_removal=args.allow_removal)
    return 1 if result.failed else 0  # runs that passed validation but failed to aggregate (now quarantined)


@command("publish", "publish the runs measured here that the run store does not have yet, exactly once each",
         description="Publish every finished run under SCRATCH_DIR (default METRICS_DIR/scratch) whose publish.json "
                     "is missing or says not published (the store was unreachable when it ended) to RUN_STORE: data "
                     "files first, the manifest last; a run the store already has is only marked published. Exit "
                     "status 1 if any run could not be published.",
         arguments=[arg("scratch", metavar="SCRATCH_DIR", nargs="?",
                        help="runs measured on this host (default: METRICS_DIR/scratch)")])
def publish(args) -> int:
    from ect.pipeline import metrics_dir, store_of
    from ect.runs.publish import publish_all

    cfg = _load(args)
    store = store_of(cfg)
    if store is None:
        raise ConfigError("RUN_STORE is not set: there is no run store to publish to (runs stay in METRICS_DIR/raw)")
    scratch = Path(os.path.abspath(args.scratch)) if args.scratch else metrics_dir(cfg).scratch
    results = publish_all(store, scratch)
    if not results:
        print(f"nothing to publish: every finished run in {scratch} is in {store!r}")
    return 1 if any(not published for _, published in results) else 0


@command("mlflow-sync", "upload the completed runs that are not synced to MLflow yet, exactly once each",
         description="Upload the completed runs that are not synced to MLflow yet, exactly once each: the run "
                     "folders (profiled runs under RAW_DIR, `ect train` runs under MODELS_DIR) whose tracking.json "
                     "says synced false (the tracking server was unreachable when the run ended). A run already in "
                     "MLflow (tag ect_run_key) is only marked synced. Exit status 1 if any run could not be uploaded.",
         arguments=[RAW_DIR])
def mlflow_sync(args) -> int:
    from ect.tracking import sync_runs

    cfg = _load(args)
    results = sync_runs(cfg, _raw_dir(args, cfg))
    for folder, status in results:
        print(f"{folder}: {status}")
    if not results:
        print("nothing to sync: every tracked run is in MLflow already")
    return 1 if any(not status.startswith("synced") for _, status in results) else 0


@command("import-legacy", "import the original replication package's raw measurements", config=None,
         description="Import SRC/<environment>/<architecture>/gpu-power-<stamp>.csv and cpu-mem-usage-<stamp>.csv "
                     "(nvidia-smi's CSV in any of its formats, and the psutil logs of the SEAA 2023 package) as ect "
                     "raw run folders under DEST, runs numbered 0..n-1 by stamp, power kept at full precision. A file "
                     "that cannot be imported is reported (file, line, reason) and skipped; the exit status is 1 if "
                     "any was.",
         arguments=[
             arg("src", metavar="SRC", help="the original's data/metrics/raw folder"),
             arg("dest", metavar="DEST", help="ect raw folder to write (e.g. data/metrics/raw)"),
             arg("--trim-samples", type=int, default=3, metavar="N",
                 help="drop the first and last N lines of samples of every GPU file, as the original did (default "
                      "3; a last line cut while written counts as one of them)"),
             arg("--model-metrics", metavar="FILE",
                 help="the original's interim model_metrics Parquet: its per-run model quality becomes the "
                      "imported runs' metrics.json"),
         ])
def import_legacy(args) -> int:
    from ect.aggregate.legacy import import_legacy

    result = import_legacy(Path(args.src), Path(args.dest), trim_samples=args.trim_samples,
                           model_metrics=Path(args.model_metrics) if args.model_metrics else None)
    return 1 if result.failed else 0


PROCESSED_HELP = "processed dataset (default: METRICS_DIR/processed/runs.parquet)"


@command("export", "export the processed runs for other tools",
         description="Export processed/runs.parquet in another tool's format.",
         arguments=[
             arg("--format", choices=["codecarbon"], required=True,
                 help="codecarbon: emissions.csv with CodeCarbon's column names and units"),
             arg("--processed", metavar="FILE", help=PROCESSED_HELP),
             arg("--out", metavar="FILE", help="output file (default: next to the processed dataset)"),
         ])
def export(args) -> int:
    from ect.aggregate.export import export_codecarbon

    cfg = _load(args)
    processed, _ = _processed_runs(args, cfg, "export")
    out = Path(args.out) if args.out else processed.parent / "emissions.csv"
    print(f"wrote {export_codecarbon(processed, out, cfg.environments)}")
    return 0


@command("analyze", "statistics, report and plots of the processed dataset",
         description="The paper's statistics (Shapiro-Wilk, Levene, Kruskal-Wallis with eta squared, Dunn post-hoc, "
                     "Cliff's delta, the energy-reduction table, the Pareto front of energy vs F1) as results.json, "
                     "report.md and a self-contained report.html with figures/*.png.",
         arguments=[
             arg("processed", metavar="PROCESSED", nargs="?", help=PROCESSED_HELP),
             arg("--out", metavar="DIR", help="output folder (default: OUTPUT_DIR/report or OUTPUT_DIR/ENVIRONMENT)"),
             arg("--environment", metavar="ENV", help="only this environment's runs"),
             arg("--outliers", action="store_true", help="remove Tukey outliers first (ANALYSIS: REMOVE_OUTLIERS)"),
             arg("--title", help="the report's title"),
         ])
def analyze(args) -> int:
    import pandas as pd

    from ect.analysis.report import summary_table
    from ect.analysis.stats import shows_backend
    from ect.pipeline import report_step

    cfg = _load(args)
    processed, _ = _processed_runs(args, cfg, "analyse", args.environment)
    paths = report_step(cfg, args.environment, processed=processed,
                        out=Path(args.out) if args.out else None, title=args.title or "Energy cost of training",
                        outliers=args.outliers, require_runs=True)
    runs = pd.read_parquet(processed)
    if args.environment:
        runs = runs[runs["environment"] == args.environment]
    summary = summary_table(runs)
    backend = shows_backend(summary["backend"])  # a column where a backend other than TensorFlow ran
    print(text_table(["environment", "architecture", *(["backend"] if backend else []), "runs", "median kJ",
                      "median Wh", "gCO2e", "F1"],
                     [[r.environment, r.architecture, *([r.backend] if backend else []), r.runs,
                       r.median_total_energy_J / 1000, r.median_energy_kWh * 1000, r.median_emissions_gCO2e,
                       r.median_val_f1] for r in summary.itertuples()]))
    for kind, path in paths.items():
        print(f"{kind}: {path}")
    return 0


TERMINAL_WIDTH = 120  # the widest line the comparison prints


@command("check-regression", "compare the latest DAG run's energy with the previous ones",
         description="For each architecture, the environment's latest DAG run (or campaign) against the previous "
                     "REGRESSION: BASELINE_RUNS ones: regression, no regression or inconclusive, from the interval of "
                     "the energy ratio against REGRESSION: THRESHOLD (README, Analysis). Prints a table, writes "
                     "OUTPUT_DIR/ENVIRONMENT/regression.json, trend.csv and trend.png; exit status 1 on a regression "
                     "(unless REGRESSION: FAIL_RUN is false).",
         arguments=[arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP)])
def check_regression(args) -> int:
    from ect.analysis.regression import raise_on_regression
    from ect.analysis.stats import shows_backend
    from ect.backends import DEFAULT_BACKEND
    from ect.pipeline import metrics_dir, regression_step

    cfg = _load(args)
    cfg.environment(args.environment)
    result = regression_step(cfg, args.environment)
    verdicts = result["architectures"]
    if not verdicts:
        raise NothingToDo(f"nothing to check: {metrics_dir(cfg).processed} has no run of environment "
                          f"{args.environment!r} with a measured energy (`ect aggregate` adds the measured runs)")
    # A result keyed "vgg16·jax" compares one backend with itself: its backend gets a column.
    backends = [v.get("backend", DEFAULT_BACKEND) for v in verdicts.values()]
    shown = shows_backend(backends)
    print(text_table(["environment", "architecture", *(["backend"] if shown else []), "runs", "baseline runs",
                      "median kJ", "median Wh", "change", "verdict"],
                     [[args.environment, v.get("architecture", key), *([backend] if shown else []), v["latest_runs"],
                       v["baseline_runs"], v["latest_median"] / 1000, v["latest_median"] / 3600,
                       "-" if v["relative_change"] is None else f"{100 * v['relative_change']:+.3g} %", v["status"]]
                      for (key, v), backend in zip(verdicts.items(), backends)]))
    for key, v in verdicts.items():
        print(f"{key}: {v['decided_by']}")
    try:
        raise_on_regression(result)
    except EnergyRegression as error:
        print(f"ect check-regression: {error}", file=sys.stderr)
        return 1
    if result["regressions"]:
        print(f"energy regression on {args.environment} reported only (REGRESSION: FAIL_RUN is false)")
    else:
        print(f"no energy regression on {args.environment} (latest run {result['latest_campaign']})")
    return 0


@command("compare", "compare two campaigns (DAG runs) per architecture",
         description="The energy of campaign SECOND against campaign FIRST (DAG run ids, or campaign ids as in run "
                     "ids), per environment and architecture that ran in both: median change, its interval and the "
                     "verdict (regression, no regression or inconclusive, as the regression check judges). Prints a "
                     "table; writes compare.json, report.md and report.html to --out (default "
                     "OUTPUT_DIR/compare/FIRST_vs_SECOND).",
         arguments=[arg("first", metavar="FIRST", help="the earlier campaign or DAG run id"),
                    arg("second", metavar="SECOND", help="the later campaign or DAG run id"),
                    arg("--processed", metavar="FILE", help=PROCESSED_HELP),
                    arg("--out", metavar="DIR", help="output folder")])
def compare(args) -> int:
    from ect.analysis.regression import RegressionSettings, campaign_key, compare_campaigns
    from ect.analysis.report import (comparison_frame, comparison_legend, compared_backends, compared_cell,
                                     write_comparison)
    from ect.analysis.stats import shows_backend

    cfg = _load(args)
    e = cfg.experiment
    settings = RegressionSettings(e.regression_baseline_runs, e.regression_threshold, e.regression_alpha,
                                  e.regression_min_runs)
    result = compare_campaigns(_processed_runs(args, cfg, "compare")[1], args.first, args.second, settings)
    import textwrap

    frame = comparison_frame(result).drop(columns=["Why"])
    print(text_table(list(frame.columns), frame.astype(object).values.tolist()))
    print("\n".join(comparison_legend(result)))
    shown = shows_backend(compared_backends(result))
    for row in result["comparisons"]:  # sentences wrapped to the table's width (TERMINAL_WIDTH)
        cell = compared_cell(row["environment"], row["architecture"], row["backend"], shown)
        print(textwrap.fill(f"{cell}: {row['decided_by']}", TERMINAL_WIDTH, subsequent_indent="    "))
    out = Path(args.out) if args.out else (cfg.path("OUTPUT_DIR") / "compare"
                                           / f"{campaign_key(args.first)}_vs_{campaign_key(args.second)}")
    print(f"report: {write_comparison(result, out)['html']}")
    return 0


@command("predict", "predict each planned run's energy and duration, with intervals, from the history",
         description="For each run a campaign of ENVIRONMENT plans (its ARCHITECTURES on its BACKENDS), the predicted "
                     "energy (kJ, Wh, gCO2e) and duration with 80 % and 95 % split-conformal prediction intervals, "
                     "from the environment's processed runs; with too little history a labelled physical prior "
                     "(planned FLOPs x power) instead. --backtest scores this predictor against CarbonTracker's rule, "
                     "a STEP-style projection, a PRE-style regression and TDP x time, leaving one campaign out at a "
                     "time (README, Analysis).",
         arguments=[
             arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP),
             ARCHITECTURES_OPTION,
             arg("--epochs", type=int, metavar="N", help="planned epochs at most (default: INITIAL_EPOCHS + "
                                                         "FT_EPOCHS); early stopping's distribution is clipped at it"),
             arg("--processed", metavar="FILE", help=PROCESSED_HELP),
             arg("--backtest", action="store_true", help="score the predictors on the history instead (leave one "
                                                         "campaign out): MAPE, RMSE, interval coverage"),
             arg("--json", action="store_true", help="print the result as JSON, every digit, instead of the table"),
         ])
def predict(args) -> int:
    import json

    from ect.analysis import predict as prediction
    from ect.runs.forecast import backtest_of, forecast, history_of

    cfg = _load(args)
    cfg.environment(args.environment)
    processed, runs = _processed_runs(args, cfg, "predict")
    history = history_of(cfg, args.environment, runs, processed)
    if args.backtest:
        planned = args.epochs or cfg.experiment.initial_epochs + cfg.experiment.ft_epochs
        result = backtest_of(args.environment, history, planned)
        table = prediction.backtest_table
    else:
        architectures = [a.strip() for a in args.architectures.split(",") if a.strip()] if args.architectures else None
        result = forecast(cfg, args.environment, history, architectures, args.epochs, count_flops=True)
        table = prediction.prediction_table
    if args.json:
        print(json.dumps(prediction.as_json(result), indent=2, allow_nan=False))
        return 0
    header, rows, lines = table(result)
    print(text_table(header, rows))
    print("\n".join(lines))
    return 0


@command("worker", "check, then start the Celery worker of an environment's GPU host", config=None,
         description="Start `airflow celery worker --queues QUEUE --concurrency 1 --celery-hostname ENVIRONMENT@%h` "
                     "for the environment's QUEUE, with this project's DAGs and plugins folders, no example DAGs, "
                     "ECT_HOME, the execution API (AIRFLOW__CORE__EXECUTION_API_SERVER_URL, its timeout 30 s unless "
                     "set) and the log server's port. First checks that the DAGs folder has ect_dags.py, the "
                     "configuration loads, the environment has a QUEUE, the execution API answers, the log port is "
                     "free and the environment's DAG loads here; any failure is one line naming what to set "
                     "(exit status 2 or 3), and no worker starts. The central database, broker and JWT secret come "
                     "from the usual AIRFLOW__* variables (README, Many machines).",
         arguments=[
             arg("environment", metavar="ENVIRONMENT", help=ENVIRONMENT_HELP),
             arg("--hostname", metavar="H", help="Celery node name (default ENVIRONMENT@%%h: %%h is this machine's "
                                                 "name); two workers on one machine need different ones"),
             arg("--log-port", type=int, metavar="P", help="port of the worker's log server (default: "
                                                          "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT, else 8793); "
                                                          "two workers on one machine need different ones"),
             arg("--concurrency", type=int, default=1, metavar="N",
                 help="tasks at a time (default 1: the environment's POOL keeps measurements apart anyway)"),
             arg("--default-queue", action="store_true",
                 help="also serve Airflow's default queue (preflight, validation, aggregation, reports)"),
             arg("--check", action="store_true", help="only check and print the command; start nothing"),
         ])
def worker(args) -> int:
    import shlex

    from ect.runners.worker import exec_worker, worker_plan

    plan = worker_plan(args.environment, hostname=args.hostname, log_port=args.log_port,
                       concurrency=args.concurrency, default_queue=args.default_queue)
    for line in plan.checks:
        print(f"ok: {line}")
    print(" ".join(f"{name}={shlex.quote(value)}" for name, value in plan.variables.items()) + " \\\n  "
          + shlex.join(plan.argv))
    if not args.check:
        exec_worker(plan)
    return 0


@command("pools", "print the Airflow pools of the environments (for `airflow pools import`)",
         description="Print one Airflow pool per GPU host (POOL, default ect_<environment>, with POOL_SLOTS slots), "
                     "and with RUN_STORE the one-slot pool ect_run_store of the tasks that write the store, as JSON: "
                     "`ect pools > p.json && airflow pools import p.json`.")
def pools(args) -> int:
    import json

    from ect.pipeline import STORE_POOL

    cfg = _load(args)
    found = {}
    for env in cfg.environments.values():
        entry = found.setdefault(env.pool_name, {"slots": env.pool_slots, "include_deferred": False,
                                                 "description": "ect GPU host of "})
        entry["description"] += ("" if entry["description"].endswith("of ") else ", ") + env.name
    if cfg.run_store():
        found[STORE_POOL] = {"slots": 1, "include_deferred": False,
                             "description": "ect: one writer of the run store's shared files at a time"}
    print(json.dumps(found, indent=2))
    return 0


@command("config", "show the effective configuration and where each value came from", config="data",
         description="Show every setting, its value and its origin (default, file, profile, ECT_* variable or "
                     "command line).",
         arguments=[arg("--explain", action="store_true", help="also print what each setting means")])
def config(args) -> int:
    from ect.config.settings import SECTIONS, Environment, keys_of

    cfg = _load(args)
    print(f"project root: {cfg.root}\nprofile: {cfg.profile or 'none'}")
    for section, cls in SECTIONS.items():
        print(f"\n[{section}]")
        for key, field in keys_of(cls).items():
            value = getattr(getattr(cfg, section), field.name)
            shown = mask(repr(value), url_secrets(value) if isinstance(value, str) else ())  # a URL's credentials
            line = f"  {key} = {shown}    # {cfg.origins[f'{section}.{key}']}"
            print(line + (f"\n      {field.metadata['doc']}" if args.explain else ""))
    print("\n[environments]")
    problems = []
    for name, env in cfg.environments.items():
        try:
            intensity, source = env.carbon_intensity()
            carbon = f"{intensity:g} gCO2e/kWh ({source})"
        except ConfigError as error:  # a location CodeCarbon has no data for: shown, the rest still printed
            carbon, problems = "unknown (see below)", problems + [str(error)]
        try:
            alert = "none" if env.alert_function() is None else env.alert_callback
        except ConfigError as error:
            alert, problems = "does not import (see below)", problems + [str(error)]
        print(f"  {name}: carbon_intensity={carbon} alert_callback={alert}")
        effective = {"POOL": env.pool_name, "EXPERIMENT_NAME": env.experiment}  # their defaults name the environment
        for key, field in keys_of(Environment).items():
            value = effective.get(key, getattr(env, field.name))
            print(f"    {key} = {value!r}" + (f"\n        {field.metadata['doc']}" if args.explain else ""))
    for problem in problems:
        print(f"ect config: error: {mask(problem)}", file=sys.stderr)
    return USAGE_ERROR if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ect", description="Measure the energy cost of training deep-learning image classifiers.",
        epilog="Run `ect COMMAND --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"ect {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for c in COMMANDS.values():
        sub = commands.add_parser(c.name, help=c.help, description=c.description)
        for names, options in c.arguments:
            sub.add_argument(*names, **options)
        if c.config:
            _add_config_options(sub, data=c.config == "data")
        sub.set_defaults(func=c.run)
    return parser


class TerminalFormatter(logging.Formatter):
    """What users see: the message, with "warning: " or "error: " before it when it is one. Under a runner
    (ECT_LOG_PREFIX=1) every line says its level ("[ect WARNING] ..."), so that the task log keeps it and can tell
    ect's lines from third-party output. Every line is masked (ect.masking): URL credentials, secret parameters and
    the configured secrets never reach a terminal or a task log."""

    def __init__(self, secrets: tuple[str, ...] = ()):
        super().__init__()
        self.secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        message = mask(super().format(record), self.secrets)
        if os.environ.get(LOG_PREFIX_VARIABLE) == "1":
            return "\n".join(f"[ect {record.levelname}] {line}" for line in message.splitlines() or [""])
        return f"{record.levelname.lower()}: {message}" if record.levelno >= logging.WARNING else message


@contextmanager
def terminal_logging(secrets: tuple[str, ...] = ()):
    """ect's log lines on stdout while a command runs (INFO and up; DEBUG with ECT_DEBUG=1), `secrets` masked."""
    logger = logging.getLogger("ect")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(TerminalFormatter(secrets))
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if _debug() else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def _debug(args=None) -> bool:
    return getattr(args, "debug", False) or os.environ.get("ECT_DEBUG", "").lower() in ("1", "true", "yes")


def _print_traceback(secrets: tuple[str, ...]) -> None:
    """The traceback of the exception being handled, masked: a library's exception may quote a URL's password."""
    print(mask(traceback.format_exc(), secrets), end="", file=sys.stderr)


def _readable(message: str) -> str:
    """An error message with each line cut to LINE_LIMIT characters (a quoted value can be of any size)."""
    return "\n".join(shorten(line, LINE_LIMIT) for line in message.splitlines())


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    args = build_parser().parse_args(argv)
    from ect.config.secrets import known_secrets

    secrets = tuple(known_secrets())  # with the environment's (ect.masking), masked in everything printed below
    with terminal_logging(secrets):
        try:
            return args.func(args)
        except EctError as error:
            if _debug(args):
                _print_traceback(secrets)
            print(f"ect {args.command}: error: {_readable(mask(error, secrets))}", file=sys.stderr)
            return error.exit_code
        except KeyboardInterrupt:
            print(f"ect {args.command}: interrupted", file=sys.stderr)
            return 130
        except Exception as error:  # a bug: its traceback for the report, then one line saying what it is
            if is_system_error(error):  # not a bug: the machine refused (a full disk, a read-only folder, ...)
                if _debug(args):
                    _print_traceback(secrets)
                print(f"ect {args.command}: error: {_readable(mask(describe_os_error(error), secrets))}",
                      file=sys.stderr)
                return INTERNAL_ERROR
            _print_traceback(secrets)
            print(f"ect {args.command}: internal error: {type(error).__name__}: {_readable(mask(error, secrets))} (a "
                  "bug in ect: please report it with the traceback above)", file=sys.stderr)
            return INTERNAL_ERROR
