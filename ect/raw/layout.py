"""Where measurements live and what they are called: METRICS_DIR/raw/<environment>/<architecture>/<run_id>/ for
the runs, beside validation/, interim/ and processed/ (MetricsDir).

A run is named by its RunKey, "<environment>/<architecture>/<run_id>". Run ids of a campaign (a DAG run or an
`ect profile` call) are "<campaign id>-rep<KK>".
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from ect.errors import ConfigError

MANIFEST_FILE = "manifest.json"
GPU_FILE = "gpu.csv"
CPU_FILE = "cpu.csv"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
RUN_FILES = (MANIFEST_FILE, GPU_FILE, CPU_FILE, HISTORY_FILE, METRICS_FILE)
VALIDATION_FILE = "validation.json"  # written by validation beside the run files
TRACKING_FILE = "tracking.json"  # written by MLflow tracking beside the run files
PUBLISH_FILE = "publish.json"  # written beside a run measured in scratch: whether the run store has it
PREVIOUS_ATTEMPTS = "previous-attempts"

_REPETITION_SUFFIX = re.compile(r"-rep\d+$")
# A run id is a folder name: letters, digits, "_", "." and "-", starting with a letter or digit, at most 200.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


@dataclass(frozen=True)
class MetricsDir:
    """METRICS_DIR: raw/ (run folders), validation/ (the summary), interim/ (samples), processed/ (one row per run);
    with a run store, scratch/ (the runs this host measured, before and after publishing) and raw/ a mirror of the
    store's runs."""

    root: Path

    @property
    def scratch(self) -> Path:
        return Path(self.root) / "scratch"

    @property
    def raw(self) -> Path:
        return Path(self.root) / "raw"

    @property
    def validation(self) -> Path:
        return Path(self.root) / "validation"

    @property
    def interim(self) -> Path:
        return Path(self.root) / "interim"

    @property
    def samples(self) -> Path:
        """A folder of Parquet part files, read as one dataset."""
        return self.interim / "samples.parquet"

    @property
    def processed(self) -> Path:
        return Path(self.root) / "processed" / "runs.parquet"


@dataclass(frozen=True, order=True)
class RunKey:
    environment: str
    architecture: str
    run_id: str

    @property
    def name(self) -> str:
        return run_name(self.environment, self.architecture, self.run_id)

    def __str__(self) -> str:
        return self.name

    def folder(self, root: Path) -> Path:
        """The run's folder under `root` (METRICS_DIR/raw for measurements, MODELS_DIR for models)."""
        return Path(root) / self.environment / self.architecture / self.run_id

    @classmethod
    def of_folder(cls, folder: Path) -> RunKey:
        folder = Path(folder)
        return cls(folder.parent.parent.name, folder.parent.name, folder.name)

    @classmethod
    def parse(cls, name: str) -> RunKey:
        environment, architecture, run_id = name.split("/")
        return cls(environment, architecture, run_id)


def run_name(environment, architecture, run_id):
    """"<environment>/<architecture>/<run_id>" of strings, or element-wise of table columns (pandas Series)."""
    return environment + "/" + architecture + "/" + run_id


def find_runs(raw_dir: Path) -> list[Path]:
    """Run folders: <environment>/<architecture>/<run_id>/ holding at least one run file, sorted."""
    return sorted(
        folder for folder in Path(raw_dir).glob("*/*/*")
        if folder.is_dir() and any((folder / name).exists() for name in RUN_FILES)
    )


def signature(folder: Path) -> dict:
    """Size and modification time of each run file: changes when a run is re-measured or edited."""
    result = {}
    for name in RUN_FILES:
        try:
            stat = os.stat(Path(folder) / name)
        except FileNotFoundError:
            continue
        result[name] = [stat.st_size, stat.st_mtime_ns]
    return result


def check_run_id(run_id: str) -> str:
    """The run id, or ConfigError when it is not one (a path separator, "..", a space would put the run elsewhere
    or break its name)."""
    if not isinstance(run_id, str) or not RUN_ID.fullmatch(run_id):
        raise ConfigError(f"run id {run_id!r}: expected letters, digits, '_', '.' and '-', starting with a letter or "
                          "digit, at most 200 characters (no path separators)")
    return run_id


def run_id_for(campaign_id: str, repetition: int) -> str:
    """The run id of a campaign's repetition: deterministic, so that a retried task reuses its run folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", campaign_id).strip("_")
    return f"{safe}-rep{repetition:02d}"


def campaign_of(run_id: str) -> str:
    """The DAG run or `ect profile` campaign a run belongs to: its id without the -rep<KK> suffix."""
    return _REPETITION_SUFFIX.sub("", run_id)
