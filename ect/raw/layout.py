"""Where measurements live and what they are called: METRICS_DIR/raw/<environment>/<architecture>/<run_id>/ for
the runs, beside validation/, interim/ and processed/ (MetricsDir); the run store (ect/store.py) has the same
layout, plus reports/.

A run is named by its RunKey, "<environment>/<architecture>/<run_id>". Run ids of a campaign (a DAG run or an
`ect profile` call) are "<campaign id>-rep<KK>".

A key of the run store is data, never a path: store_key() says which file of the layout a key names, or None, and
only such a key is turned into a local path (inside() checks where it lands).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Collection

from ect.errors import ConfigError, StoreError, quoted

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

_REPETITION_SUFFIX = re.compile(r"(-(jax|torch))?-rep\d+$")
# A run id is a folder name: letters, digits, "_", "." and "-", starting with a letter or digit, at most 200.
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")
# An environment's name, as config/environments.yaml takes it; an architecture's, as the registry has them.
ENVIRONMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
ARCHITECTURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")

# The run store's files, by key relative to its root (store_key):
#   raw/<environment>/<architecture>/<run_id>/<STORE_RUN_FILES>
#   validation/<VALIDATION_SUMMARY_FILES>
#   interim/index.json, interim/samples.parquet/part-<16 hex digits>.parquet
#   processed/<PROCESSED_FILES>
#   reports/<name>/[<campaign>/]<REPORT_FILES> and reports/<name>/[<campaign>/]figures/<name>.png
STORE_RUN_FILES = (*RUN_FILES, VALIDATION_FILE)
VALIDATION_SUMMARY_FILES = ("summary.json", "summary.txt")
INDEX_FILE = "index.json"
SAMPLES_FOLDER = "samples.parquet"
SAMPLE_PART = re.compile(r"part-[0-9a-f]{16}\.parquet")
PROCESSED_FILES = ("runs.parquet", "runs.csv")
REPORT_NAME = ENVIRONMENT  # an environment's report, or "report" (every environment's)
REPORT_FILES = ("report.html", "report.md", "results.json", "regression.json", "trend.csv", "trend.png")
FIGURES_FOLDER = "figures"
FIGURE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.png")
CAMPAIGN = RUN_ID  # a DAG run's copy of its report: reports/<name>/<campaign>/
MAX_KEY_LENGTH = 1024
KEY_QUOTE_LIMIT = 200  # a key in a message: repr() (a NUL or a look-alike character visible), cut after this
# A writer's temporary in a folder store (ect/raw/atomic.py temporary_name): ".NAME.tmp-<host>-<pid>".
_TEMPORARY_KEY = re.compile(r"(?P<folder>(?:[^/]+/)+)\.(?P<name>[^/]+)\.tmp-[A-Za-z0-9_.-]+-\d+")


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
        # os.path on the Path's own text (a Path has no trailing or doubled separators): pathlib's parsing of parents
        # was most of the time of a no-op `ect validate` over thousands of runs
        head, run_id = os.path.split(os.fspath(folder if isinstance(folder, Path) else Path(folder)))
        head, architecture = os.path.split(head)
        return cls(os.path.basename(head), architecture, run_id)

    @classmethod
    def parse(cls, name: str) -> RunKey:
        environment, architecture, run_id = name.split("/")
        return cls(environment, architecture, run_id)


def run_name(environment, architecture, run_id):
    """"<environment>/<architecture>/<run_id>" of strings, or element-wise of table columns (pandas Series)."""
    return environment + "/" + architecture + "/" + run_id


def _walk(raw_dir: Path) -> tuple[list[Path], list[Path]]:
    """(the folders three levels below raw_dir, the symbolic links met on the way), neither followed nor descended
    into: a link there could lead anywhere on the machine. Hidden entries (locks, temporaries) are left out."""
    folders, links = [Path(raw_dir)], []
    for _ in range(3):
        below = []
        for folder in folders:
            try:
                entries = list(os.scandir(folder))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_symlink():
                    links.append(Path(entry.path))
                elif entry.is_dir(follow_symlinks=False):
                    below.append(Path(entry.path))
        folders = below
    return sorted(folders), sorted(links)


def find_runs_and_links(raw_dir: Path, only: Collection[RunKey] | None = None) -> tuple[list[Path], list[Path]]:
    """(the run folders, the symbolic links), both sorted, in one walk. Run folders: <environment>/<architecture>/
    <run_id>/ holding at least one run file (a link too). Symbolic links where an environment, architecture or run
    folder belongs are not followed. With `only`, the folders of these runs alone (with a run store: its runs, not
    what was in METRICS_DIR/raw before)."""
    folders, links = _walk(raw_dir)
    runs = [folder for folder in folders if (only is None or RunKey.of_folder(folder) in only)
            and any(os.path.lexists(os.path.join(folder, name)) for name in RUN_FILES)]
    return runs, links


def find_runs(raw_dir: Path, only: Collection[RunKey] | None = None) -> list[Path]:
    """The run folders of find_runs_and_links."""
    return find_runs_and_links(raw_dir, only)[0]


def find_links(raw_dir: Path) -> list[Path]:
    """The symbolic links where an environment, architecture or run folder belongs, sorted (not followed)."""
    return _walk(raw_dir)[1]


def signature(folder: Path) -> dict:
    """Size and modification time of each run file (of a link, the link's own): changes when a run is re-measured or
    edited."""
    result = {}
    for name in RUN_FILES:
        try:
            stat = os.lstat(os.path.join(folder, name))
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


def run_id_for(campaign_id: str, repetition: int, backend: str = "tensorflow") -> str:
    """The run id of a campaign's repetition: deterministic, so that a retried task reuses its run folder.
    `<campaign>-rep<KK>` on TensorFlow (every run before backends were a choice), `<campaign>-<backend>-rep<KK>`
    on another backend, so that one campaign's runs of one architecture on two backends never share a folder."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", campaign_id).strip("_")
    return f"{safe}-rep{repetition:02d}" if backend == "tensorflow" else f"{safe}-{backend}-rep{repetition:02d}"


def campaign_of(run_id: str) -> str:
    """The DAG run or `ect profile` campaign a run belongs to: its id without the -[<backend>-]rep<KK> suffix."""
    return _REPETITION_SUFFIX.sub("", run_id)


@dataclass(frozen=True)
class StoreKey:
    """A file of the run store's layout, by its key relative to the store's root: `area` (raw, validation, interim,
    processed or reports) and the key's other parts, each a plain name (no separator, no "..", ASCII)."""

    area: str
    parts: tuple[str, ...]

    @property
    def key(self) -> str:
        return "/".join((self.area, *self.parts))

    def __str__(self) -> str:
        return self.key

    @property
    def run(self) -> RunKey | None:
        """The run whose file this is (raw/ keys), else None."""
        return RunKey(*self.parts[:3]) if self.area == "raw" else None

    @property
    def name(self) -> str:
        return self.parts[-1]


def _is_run_file(parts: list[str]) -> bool:
    return (len(parts) == 4 and bool(ENVIRONMENT.fullmatch(parts[0])) and bool(ARCHITECTURE.fullmatch(parts[1]))
            and bool(RUN_ID.fullmatch(parts[2])) and parts[3] in STORE_RUN_FILES)


def _is_interim_file(parts: list[str]) -> bool:
    return parts == [INDEX_FILE] or (len(parts) == 2 and parts[0] == SAMPLES_FOLDER
                                     and bool(SAMPLE_PART.fullmatch(parts[1])))


def _is_report_file(parts: list[str]) -> bool:
    """<file> or figures/<name>.png of a report folder."""
    return ((len(parts) == 1 and parts[0] in REPORT_FILES)
            or (len(parts) == 2 and parts[0] == FIGURES_FOLDER and bool(FIGURE.fullmatch(parts[1]))))


def _is_report(parts: list[str]) -> bool:
    """<name>/<report file>, or <name>/<campaign>/<report file> (a DAG run's copy)."""
    if len(parts) < 2 or not REPORT_NAME.fullmatch(parts[0]):
        return False
    rest = parts[1:]
    return _is_report_file(rest) or (bool(CAMPAIGN.fullmatch(rest[0])) and _is_report_file(rest[1:]))


_AREAS = {
    "raw": _is_run_file,
    "validation": lambda parts: len(parts) == 1 and parts[0] in VALIDATION_SUMMARY_FILES,
    "interim": _is_interim_file,
    "processed": lambda parts: len(parts) == 1 and parts[0] in PROCESSED_FILES,
    "reports": _is_report,
}


def store_key(key: str) -> StoreKey | None:
    """The file of the run store's layout that `key` (relative to the store's root, "/"-separated) names, or None
    when it names none: "..", an absolute path, a backslash, an encoded or look-alike separator, a NUL, an
    over-long name, a bad environment, architecture or run id, an unknown file. Only such a key may become a local
    path or be written."""
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
        return None
    area, *parts = key.split("/")
    check = _AREAS.get(area)
    return StoreKey(area, tuple(parts)) if check is not None and check(parts) else None


def layout_key(*parts: str) -> str:
    """The store key of these parts, checked: StoreError when it is not a file of the store's layout."""
    key = "/".join(parts)
    if store_key(key) is None:
        raise StoreError(f"{quoted(key, KEY_QUOTE_LIMIT)} is not a key of the run store's layout (ect/raw/layout.py): "
                         "not written")
    return key


def run_file_key(run: RunKey, name: str) -> str:
    """raw/<environment>/<architecture>/<run_id>/<name>, checked."""
    return layout_key("raw", run.environment, run.architecture, run.run_id, name)


def is_temporary_key(key: str) -> bool:
    """Whether `key` is a writer's temporary (".NAME.tmp-<host>-<pid>") of a file of the layout, in a folder store:
    a write in progress, or one a killed writer left (the next write into that folder removes it)."""
    match = _TEMPORARY_KEY.fullmatch(key) if isinstance(key, str) else None
    return match is not None and store_key(match["folder"] + match["name"]) is not None


def inside(path: Path, destination: Path) -> bool:
    """Whether `path` lies under `destination` once links and ".." of both are resolved (what is written there stays
    there)."""
    try:
        path, destination = Path(path).resolve(), Path(destination).resolve()
    except (OSError, ValueError):  # a NUL, a loop of links
        return False
    return path == destination or destination in path.parents
