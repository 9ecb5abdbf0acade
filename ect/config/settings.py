"""The typed settings of ect, one dataclass per config file.

A field's name, upper-cased, is its key in the YAML file (nested mappings are joined with
"_", so `GPU: {MEM_LIMIT: 2048}` is `GPU_MEM_LIMIT`) and, prefixed with `ECT_`, its
environment variable. Each field carries the parser that validates it and its documentation.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Callable
from urllib.parse import urlsplit

from ect.architectures import ARCHITECTURES, BENCHMARK_ARCHITECTURES
from ect.backends import BACKENDS, DEFAULT_BACKEND
from ect.errors import ConfigError
from ect.masking import PERCENT_ENCODING_HINT, url_problem


def setting(default: Any, parse: Callable[[Any], Any], doc: str):
    return field(default=default, metadata={"parse": parse, "doc": doc})


# Parsers: each returns the typed value or raises ValueError("<what was expected>").

def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _to_int(value: Any) -> int:
    if _is_int(value):
        return value
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise ValueError


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError
    try:
        return float(value)
    except OverflowError:  # an integer beyond any float: infinite, which no setting accepts
        return math.inf if value > 0 else -math.inf


def _integer(minimum: int, maximum: int | None = None) -> Callable[[Any], int]:
    expected = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"

    def parse(value: Any) -> int:
        try:
            number = _to_int(value)
        except ValueError:
            number = None
        if number is None or number < minimum or (maximum is not None and number > maximum):
            raise ValueError(expected)
        return number

    return parse


positive_int = _integer(1)
non_negative_int = _integer(0)
seed_value = _integer(0, 2**32 - 1)  # what numpy, TensorFlow and Keras all accept


def optional_positive_number(value: Any) -> float | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    return positive_number(value)


def optional_megabytes(value: Any) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "null", "none")):
        return None
    try:
        number = _to_int(value)
    except ValueError:
        raise ValueError("a whole number of megabytes >= 1, or empty for no limit") from None
    if number < 1:
        raise ValueError("a whole number of megabytes >= 1, or empty for no limit")
    return number


def _number(check: Callable[[float], bool], expected: str) -> Callable[[Any], float]:
    def parse(value: Any) -> float:
        try:
            number = _to_float(value)
        except (TypeError, ValueError):
            raise ValueError(expected) from None
        if not math.isfinite(number) or not check(number):  # NaN and infinities are never settings
            raise ValueError(expected)
        return number

    return parse


non_negative_number = _number(lambda x: x >= 0, "a finite number >= 0")
positive_number = _number(lambda x: x > 0, "a finite number > 0")
open_fraction = _number(lambda x: 0 < x < 1, "a number between 0 and 1 (exclusive)")
at_least_one = _number(lambda x: x >= 1, "a finite number >= 1")
off_or_at_least_one = _number(lambda x: x == 0 or x >= 1, "0 (off) or a finite number >= 1")


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "on", "1"):
        return True
    if text in ("false", "no", "off", "0"):
        return False
    raise ValueError("true or false")


def text(value: Any) -> str:
    if value is None or isinstance(value, (dict, list)) or str(value).strip() == "":
        raise ValueError("a non-empty string")
    return str(value)


def optional_text(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)


def _known_names(names: list | tuple, known, what: str, once: bool = False) -> tuple[str, ...]:
    """Each name stripped and one of `known` (and, with once, listed once); ValueError naming the first that is not.
    `what` is the plural: "architectures", "backends"."""
    result = []
    for name in names:
        name = str(name).strip()
        if name not in known:
            raise ValueError(f"{what} from {', '.join(known)} (unknown: {name!r})")
        if once and name in result:
            raise ValueError(f"each {what[:-1]} once ({name!r} is listed twice)")
        result.append(name)
    return tuple(result)


def architecture_list(value: Any) -> tuple[str, ...]:
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not names:
        raise ValueError(f"a non-empty list of architectures from {', '.join(ARCHITECTURES)}")
    return _known_names(names, ARCHITECTURES, "architectures")


def weights_spec(value: Any) -> str:
    name = text(value) if value is not None else "none"
    return name.lower() if name.lower() in ("none", "imagenet") else name


def optimizer_name(value: Any) -> str:
    if str(value).lower() not in ("adam", "sgd"):
        raise ValueError("one of adam, sgd")
    return str(value).lower()


def correction_name(value: Any) -> str:
    if value not in ("holm", "bonferroni", "none"):
        raise ValueError("one of holm, bonferroni, none")
    return value


def backend_name(value: Any) -> str:
    if value not in BACKENDS:
        raise ValueError(f"one of {', '.join(BACKENDS)}")
    return value


def optional_backend_list(value: Any) -> tuple[str, ...] | None:
    """Backends as a list or comma-separated names, each once; empty: None (the environment's BACKEND)."""
    if value is None or value == "" or value == []:
        return None
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)):
        raise ValueError(f"a list of backends from {', '.join(BACKENDS)}")
    return _known_names(names, BACKENDS, "backends", once=True)


def runner_name(value: Any) -> str:
    if value not in ("process", "docker"):
        raise ValueError("one of process, docker")
    return value


def gpu_selection(value: Any) -> str | tuple[int, ...]:
    if value in ("all", "none"):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\s*,\s*\d+)*\s*", value):
        value = value.split(",")
    if isinstance(value, (list, tuple)) and value:
        try:
            return tuple(non_negative_int(v) for v in value)
        except ValueError:
            pass
    raise ValueError("all, none, or a list of GPU indices such as [0, 1]")


def auto_remove(value: Any) -> str:
    if value not in ("never", "success", "force"):
        raise ValueError("one of never, success, force")
    return value


def path_map(value: Any) -> tuple[tuple[str, str], ...]:
    """["/opt/airflow/ect=/srv/ect", ...]: how paths seen by the Airflow worker appear on the Docker host."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ValueError("a list of WORKER_PATH=HOST_PATH entries")
    pairs = []
    for item in items:
        worker, sep, host = str(item).partition("=")
        if not sep or not worker.startswith("/") or not host.startswith("/"):
            raise ValueError(f"a list of WORKER_PATH=HOST_PATH entries with absolute paths (got {item!r})")
        pairs.append((worker.rstrip("/") or "/", host.rstrip("/") or "/"))
    return tuple(pairs)


def _parsable_url(value: str, expected: str) -> str:
    """A URL that parses as its user meant (ect.masking.url_problem), else ValueError naming why and the fix."""
    problem = url_problem(value)
    if problem:
        raise ValueError(f"{expected}; this one cannot be parsed safely: {problem}; {PERCENT_ENCODING_HINT}")
    return value


def store_location(value: Any) -> str | None:
    """A path or an fsspec URL, without credentials in it (they would reach logs and command lines)."""
    location = optional_text(value)
    if location and ":" in location.partition("://")[2].rpartition("@")[0]:  # user:password@, however malformed
        raise ValueError("a path or a URL without user:password@ (give the credentials in the Airflow connection "
                         "ect_store or the store's variables, e.g. AWS_ACCESS_KEY_ID)")
    return _parsable_url(location, "a path or a URL") if location else None


def pushgateway_url(value: Any) -> str | None:
    """The http(s) URL of a Prometheus Pushgateway, without credentials in it; None (empty): off."""
    url = optional_text(value)
    if url is None:
        return None
    _parsable_url(url.strip(), "the Pushgateway's URL such as http://pushgateway:9091")
    parts = urlsplit(url.strip())
    try:
        parts.port  # a port that is not a number raises
    except ValueError:
        parts = None
    if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname or parts.username
            or parts.password or parts.query or parts.fragment):
        raise ValueError("the Pushgateway's URL such as http://pushgateway:9091 (http:// or https://, no "
                         "user:password@), or empty for none")
    return url.strip().rstrip("/")


def engine_url(value: Any) -> str:
    """The Docker engine's URL (unix:///var/run/docker.sock, tcp://host:2376, ssh://user@host), which must parse."""
    return _parsable_url(text(value), "a Docker engine URL such as unix:///var/run/docker.sock or tcp://host:2376")


def country_iso_code(value: Any) -> str | None:
    """An ISO 3166-1 alpha-3 country code, as CodeCarbon names countries (ESP, FRA, USA), upper-cased; None: none.
    Whether CodeCarbon has data for it is checked when its data is needed (ect.config.carbon)."""
    code = optional_text(value)
    if code is None:
        return None
    if not re.fullmatch(r"[A-Za-z]{3}", code.strip()):
        raise ValueError("an ISO 3166-1 alpha-3 country code such as ESP, FRA or USA (CodeCarbon's), or empty")
    return code.strip().upper()


CLOUD_PROVIDERS = ("aws", "azure", "gcp")  # CodeCarbon's


def cloud_provider(value: Any) -> str | None:
    provider = optional_text(value)
    if provider is None:
        return None
    if provider.strip().lower() not in CLOUD_PROVIDERS:
        raise ValueError(f"one of {', '.join(CLOUD_PROVIDERS)} (CodeCarbon's cloud providers), or empty")
    return provider.strip().lower()


def text_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items or any(str(i).strip() == "" for i in items):
        raise ValueError("a non-empty list of strings")
    return tuple(str(i).strip() for i in items)


_CRON_PRESETS = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight")
_CRON_FIELD = r"[\d*/,\-A-Za-z?]+"


def cron_schedule(value: Any) -> str | None:
    if value is None or str(value).strip().lower() in ("", "none", "null"):
        return None
    text_value = str(value).strip()
    expected = "a 5-field cron expression such as '0 2 * * *', a preset such as @daily, or null"
    if text_value in _CRON_PRESETS:
        return text_value
    if not re.fullmatch(rf"{_CRON_FIELD}(\s+{_CRON_FIELD}){{4}}", text_value):
        raise ValueError(expected)
    from croniter import croniter  # the cron parser Airflow's timetables use

    if not croniter.is_valid(text_value):
        raise ValueError(f"{expected} ({text_value!r} has a field out of range or malformed)")
    return text_value


@dataclass(frozen=True)
class Base:
    """config/base.yaml: where things live. Relative paths are relative to the project root."""

    dataset_dir: str = setting("data/dataset", text, "Dataset folder: DIR/<class_a>/*.png|jpg|jpeg and DIR/<class_b>/... (-d/--data).")
    metrics_dir: str = setting("data/metrics", text, "Measurements: raw/, interim/ and processed/ live here.")
    models_dir: str = setting("models", text, "Trained models: `ect train`'s folders and profiled runs' model.keras.")
    output_dir: str = setting("out", text, "Reports.")
    figures_dir: str = setting("out/figures", text, "Figures of the reports.")
    debug: bool = setting(False, boolean, "Print full tracebacks on errors (also ECT_DEBUG=1).")
    dataset_roots: tuple[str, ...] = setting(("data",), text_list,
                                             "Folders a DAG run's dataset parameter may point into.")
    run_store: str | None = setting(None, store_location,
                                    "Where every host publishes its runs and the processed dataset and reports live: a "
                                    "path or an fsspec URL (s3://bucket/prefix, file:///shared/ect); empty: METRICS_DIR "
                                    "and OUTPUT_DIR of this machine.")
    prometheus_pushgateway: str | None = setting(None, pushgateway_url,
                                                 "Prometheus Pushgateway (http://host:9091) that every aggregation "
                                                 "pushes the latest campaign's runs to, and every regression check "
                                                 "its verdicts; empty: none.")


@dataclass(frozen=True)
class Experiment:
    """config/experiment.yaml: what is trained and how often."""

    mlflow_enabled: bool = setting(False, boolean, "Log runs to an MLflow tracking server (secrets.yaml or MLFLOW_TRACKING_URI).")
    save_models: bool = setting(True, boolean, "Profiled runs save their trained model to MODELS_DIR after the measurement.")
    architectures: tuple[str, ...] = setting(BENCHMARK_ARCHITECTURES, architecture_list, "Architectures profiled by `ect profile` and the DAGs.")
    backends: tuple[str, ...] | None = setting(None, optional_backend_list,
        "Keras backends every architecture is trained with in one campaign (e.g. [tensorflow, jax]: the plan is "
        "architecture x backend x repetition); empty: the environment's BACKEND.")
    initial_epochs: int = setting(10, positive_int, "Phase 1 epochs: frozen base, new head (OPTIMIZER).")
    ft_epochs: int = setting(140, positive_int, "Phase 2 epochs at most: whole base fine-tuned (FT_OPTIMIZER).")
    repetitions: int = setting(30, positive_int, "Profiled runs per architecture.")
    early_stop_spread: float = setting(0, non_negative_number,
        "Repetitions stop early: once the completed runs of an architecture on a backend in one campaign (at least "
        "EARLY_STOP_MIN_RUNS) have a relative spread of energy, (max - min) / median, at most this (0.02: 2 %), its "
        "remaining repetitions are skipped; 0: off.")
    early_stop_min_runs: int = setting(3, positive_int, "Repetitions stop early: completed runs needed first.")
    energy_budget_kwh: float | None = setting(None, optional_positive_number,
        "Energy budget of a DAG run in kWh: preflight stops the run before any training when the sum of its planned "
        "runs' predicted upper ends (95 % interval) is above it; empty: none.")
    budget_approval: bool = setting(False, boolean,
        "A DAG run over ENERGY_BUDGET_KWH waits for a person to approve it in the Airflow UI instead of failing.")
    budget_approval_timeout_h: float = setting(24, non_negative_number,
        "Hours a DAG run over its budget waits for approval (BUDGET_APPROVAL) before it stops as rejected; 0: no "
        "limit.")
    duration_alert_factor: float = setting(2, off_or_at_least_one,
        "A training still running after this many times its predicted duration (95 % upper end) calls "
        "ALERT_CALLBACK; 0: off.")
    warmup_time: float = setting(10, non_negative_number, "Warm-up before the first profiled run, in minutes.")
    cooldown: float = setting(5, non_negative_number, "Cool-down between profiled runs, in minutes.")
    cooldown_every: int = setting(1, positive_int, "Number of profiled runs between cool-downs.")
    cooldown_tolerance_c: float = setting(2, non_negative_number,
        "Cool-down: the GPU is back when its temperature is at most this many C above the campaign's first idle "
        "baseline.")
    cooldown_tolerance_pct: float = setting(10, non_negative_number,
        "Cool-down: the GPU is back when its idle power is at most this many % above the campaign's first idle "
        "baseline.")
    idle_baseline: float = setting(5, non_negative_number,
        "Seconds of idle measurement before each run's window (each sensor's idle power); 0: none.")
    image_size: int = setting(128, positive_int, "Images are resized to IMAGE_SIZE x IMAGE_SIZE pixels.")
    batch_size: int = setting(32, positive_int, "Batch size.")
    validation_split: float = setting(0.3, open_fraction, "Fraction of each class held out for validation.")
    seed: int = setting(2022, seed_value, "Seed of the split, the shuffling, the augmentation and the weights.")
    weights: str = setting("imagenet", weights_spec, "Base weights: none, imagenet, or the path of a local weights file.")
    optimizer: str = setting("adam", optimizer_name, "Optimizer of phase 1: adam or sgd.")
    learning_rate: float = setting(1e-4, positive_number, "Learning rate of phase 1.")
    momentum: float = setting(0.9, non_negative_number, "Momentum of phase 1 when OPTIMIZER is sgd.")
    ft_optimizer: str = setting("sgd", optimizer_name, "Optimizer of phase 2 (fine-tuning): sgd or adam.")
    ft_learning_rate: float = setting(1e-5, positive_number, "Learning rate of phase 2.")
    ft_momentum: float = setting(0.9, non_negative_number, "Momentum of phase 2 when FT_OPTIMIZER is sgd.")
    early_stopping_patience: int = setting(20, positive_int, "EarlyStopping patience in epochs (monitor: val_accuracy).")
    early_stopping_min_delta: float = setting(1e-3, non_negative_number, "EarlyStopping min_delta.")
    reduce_lr_factor: float = setting(0.1, open_fraction, "ReduceLROnPlateau factor (monitor: val_accuracy).")
    reduce_lr_patience: int = setting(10, positive_int, "ReduceLROnPlateau patience in epochs.")
    sampling_interval_ms: float = setting(100, positive_number, "Sensor sampling interval in milliseconds.")
    validation_max_gap_factor: float = setting(20, positive_number,
                                               "Validation: largest gap between samples, in sampling intervals.")
    validation_min_samples: int = setting(3, positive_int, "Validation: fewest samples a run may have (per GPU).")
    validation_power_limit_factor: float = setting(1.5, positive_number,
                                                   "Validation: highest GPU power, as a multiple of its power limit.")
    analysis_alpha: float = setting(0.05, open_fraction, "Analysis: significance level of the statistical tests.")
    analysis_correction: str = setting("holm", correction_name, "Analysis: multiple-comparison correction of Dunn's test.")
    analysis_remove_outliers: bool = setting(False, boolean, "Analysis: drop Tukey outliers per group first (reported).")
    regression_baseline_runs: int = setting(5, positive_int, "Regression check: previous DAG runs in the baseline.")
    regression_threshold: float = setting(0.05, positive_number, "Regression check: relative increase of the median energy that alerts.")
    regression_alpha: float = setting(0.05, open_fraction, "Regression check: significance level of its one-sided test "
                                      "(the bootstrap interval of the change is at 1 - 2 * ALPHA).")
    regression_min_runs: int = setting(5, positive_int, "Regression check: repetitions needed on each side (latest "
                                       "DAG run, baseline) for a verdict; fewer give 'inconclusive'.")
    regression_fail_run: bool = setting(True, boolean, "Regression check: a regression fails the DAG run (false: "
                                        "reported and logged only, for smoke-run profiles such as demo).")
    skip_corrupt_images: bool = setting(False, boolean, "Skip corrupt or non-image files with a warning instead of failing.")


@dataclass(frozen=True)
class Resources:
    """config/resources.yaml (optional, per machine): see config/resources.example.yaml."""

    gpu_mem_limit: int | None = setting(None, optional_megabytes, "GPU memory limit in MB per GPU, on every backend; empty for none.")
    use_cache: bool = setting(True, boolean, "Cache decoded images in memory after the first epoch.")
    cpu_tdp_w: float | None = setting(None, optional_positive_number,
                                      "CPU TDP in W for the CPU power estimate when RAPL is unreadable; empty: 85 W.")


@dataclass(frozen=True)
class Environment:
    """One entry of config/environments.yaml: a training environment."""

    name: str
    description: str = setting("", optional_text, "What this environment is (shown in the DAG docs).")
    runner: str = setting("process", runner_name, "How a profiled run is launched: process or docker.")
    backend: str = setting(DEFAULT_BACKEND, backend_name,
        "Keras backend of the environment's runs: tensorflow, jax or torch, installed on its GPU host (README: "
        "Backends); BACKENDS in the experiment overrides it with a list.")
    gpus: str | tuple[int, ...] = setting("all", gpu_selection, "GPUs a run may use and is measured on: all, none, or [indices].")
    carbon_intensity_gco2e_per_kwh: float | None = setting(None, optional_positive_number,
        "Grid carbon intensity in gCO2e/kWh; empty: CodeCarbon's data for the location (CLOUD_PROVIDER and "
        "CLOUD_REGION, else COUNTRY_ISO_CODE and REGION), else the original's 232 (Spain).")
    country_iso_code: str | None = setting(None, country_iso_code,
        "Country of the GPU host, ISO 3166-1 alpha-3 as CodeCarbon names it (ESP, FRA, USA); empty: unknown.")
    region: str | None = setting(None, optional_text,
        "Region within the country as CodeCarbon names it (a US state, a Canadian province, a Chinese province, a "
        "Nordic bidding zone such as SE3); needs COUNTRY_ISO_CODE; empty: the whole country.")
    cloud_provider: str | None = setting(None, cloud_provider, "Cloud provider of the GPU host: aws, azure or gcp; "
                                         "empty: not on a cloud.")
    cloud_region: str | None = setting(None, optional_text, "Cloud region of the GPU host (e.g. europe-west1); "
                                       "given with CLOUD_PROVIDER.")
    pue: float = setting(1.0, at_least_one, "Power usage effectiveness of the site (>= 1).")
    schedule: str | None = setting("0 2 * * *", cron_schedule, "Cron schedule of the environment's DAG; null for manual only.")
    pool: str | None = setting(None, optional_text, "Airflow pool of the GPU host (default ect_<name>); share it between environments on one host.")
    retries: int = setting(1, non_negative_int, "Airflow retries of a profiled run (idempotent: the run id is reused).")
    retry_delay_s: float = setting(60, non_negative_number, "Seconds before such a retry.")
    pool_slots: int = setting(1, positive_int, "Profiled runs at a time on the host (1: runs never share GPUs, RAPL or CPU).")
    queue: str | None = setting(None, optional_text,
        "Celery queue of the host-bound tasks (host checks, warm-up, training), served by a worker on the GPU host; "
        "default: Airflow's default queue.")
    alert_callback: str | None = setting(None, optional_text,
        "Dotted path of a function called with the task context when a DAG run's check fails (an energy "
        "regression, a run not measured), a training runs far past its predicted duration, or a DAG run waits for "
        "budget approval (the context's ect_alert then says why).")
    experiment_name: str | None = setting(None, optional_text,
        "MLflow experiment of the environment's runs when MLFLOW_ENABLED is true and no --experiment-name or "
        "experiment_name trigger parameter names one (scheduled runs); empty: ect-<environment>.")
    host_check_timeout_s: float = setting(3600, positive_number,
        "With a QUEUE: seconds the DAG run waits for host_check on the GPU host's worker before failing (a worker "
        "that cannot load the DAG, or none that takes the task).")
    docker_image: str = setting("ect-worker:latest", text, "docker runner: the worker image.")
    docker_url: str = setting("unix:///var/run/docker.sock", engine_url,
                              "docker runner: the Docker engine of the GPU host.")
    docker_shm_size: str = setting("2g", text, "docker runner: shared memory of the container.")
    docker_user: str | None = setting(None, optional_text, "docker runner: user:group in the container (default: the image's).")
    docker_network_mode: str | None = setting(None, optional_text, "docker runner: network mode (e.g. host; default: Docker's).")
    docker_auto_remove: str = setting("success", auto_remove, "docker runner: remove the container: never, success or force.")
    docker_path_map: tuple[tuple[str, str], ...] = setting((), path_map,
        "docker runner: WORKER_PATH=HOST_PATH entries when the Airflow worker itself runs in a container.")

    @property
    def pool_name(self) -> str:
        return self.pool or f"ect_{self.name}"

    @property
    def experiment(self) -> str:
        """The MLflow experiment of the environment's runs: EXPERIMENT_NAME, default ect-<name>."""
        return self.experiment_name or f"ect-{self.name}"

    @property
    def located(self) -> bool:
        """Whether the environment says where it is (country, region or cloud)."""
        return any((self.country_iso_code, self.region, self.cloud_provider, self.cloud_region))

    def carbon_intensity(self) -> tuple[float, str]:
        """(grid carbon intensity in gCO2e/kWh, where the figure comes from): CARBON_INTENSITY_GCO2E_PER_KWH, else
        CodeCarbon's data for the location (its package imported only then), else the original's 232 (Spain)."""
        if self.carbon_intensity_gco2e_per_kwh is not None:
            return self.carbon_intensity_gco2e_per_kwh, "config/environments.yaml"
        if self.located:
            from ect.config.carbon import codecarbon_intensity

            return codecarbon_intensity(self)
        from ect.energy import DEFAULT_CARBON_INTENSITY_GCO2E_PER_KWH  # numpy: not at import time

        return DEFAULT_CARBON_INTENSITY_GCO2E_PER_KWH, "default: 232 gCO2e/kWh (the original's, Spain)"

    def alert_function(self) -> Callable | None:
        """ALERT_CALLBACK imported: the function, or None when unset; ConfigError naming the environment and the key
        when it does not import or is not a function."""
        if not self.alert_callback:
            return None
        from importlib import import_module

        where = f"environment {self.name}: ALERT_CALLBACK {self.alert_callback!r}"
        module, _, name = self.alert_callback.rpartition(".")
        if not module or not name:
            raise ConfigError(f"{where}: expected a dotted path module.function")
        try:
            function = getattr(import_module(module), name)
        except Exception as error:  # ImportError, AttributeError, or the module failing on import
            raise ConfigError(f"{where}: cannot be imported ({type(error).__name__}: {error})") from None
        if not callable(function):
            raise ConfigError(f"{where}: is a {type(function).__name__}, not a function of the task context")
        return function


SECTIONS = {"base": Base, "experiment": Experiment, "resources": Resources}


def keys_of(cls) -> dict[str, Any]:
    """File key -> dataclass field, for the settings of one section."""
    return {f.name.upper(): f for f in fields(cls) if "parse" in f.metadata}
