"""manifest.json: what a run is, where it ran, what it measured, and how far it got.

Lifecycle: written atomically with status "running" when the run starts, then "completed" or "failed" (with
the error and a short traceback) when it ends. A run killed on the way keeps saying "running": it never looks
complete. The files of an attempt that did not complete are set aside under previous-attempts/<n>/ before the
run id is measured again.

Reading is lenient: a manifest with missing or odd fields still loads (validation says what is wrong with
it), and fields this version does not know are kept when it is written again.
"""

from __future__ import annotations

import math
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

from ect.raw.atomic import read_json, write_json
from ect.raw.columns import iso_utc_ms, now_utc
from ect.raw.layout import MANIFEST_FILE, PREVIOUS_ATTEMPTS, RUN_FILES, RunKey

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"

# What each field of manifest.json holds that validation checks and aggregation relies on (dotted paths into its
# objects). Every field may be null or missing; validation says which ones a run needs and their ranges.
TEXT, INTEGER, NUMBER, OBJECT, LIST = "text", "integer", "number", "object", "list"
FIELD_KINDS = {
    "run_id": TEXT, "environment": TEXT, "architecture": TEXT, "status": TEXT, "source": TEXT, "kind": TEXT,
    "experiment_name": TEXT, "repetition": INTEGER, "attempt": INTEGER,
    "host": OBJECT, "host.hostname": TEXT, "host.platform": TEXT, "host.cpu_model": TEXT, "host.cpu_count": INTEGER,
    "software": OBJECT, "software.python": TEXT,
    "sensors": OBJECT, "sensors.sampling_interval_s": NUMBER, "sensors.used": LIST,
    "sensors.gpu_energy_source": TEXT, "sensors.cpu_energy_source": TEXT,
    "window": OBJECT, "window.start_unix_s": NUMBER, "window.end_unix_s": NUMBER,
}


def field_value(data: Any, path: str) -> Any:
    """The value at a dotted path of a JSON document; None where it or an object on the way is missing."""
    for name in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(name)
    return data


def is_kind(value: Any, kind: str) -> bool:
    """Whether a JSON value (not null) is of the kind: JSON's true and false are not numbers; a whole number
    written as 2.0 is an integer."""
    if kind == TEXT:
        return isinstance(value, str)
    if kind == OBJECT:
        return isinstance(value, dict)
    if kind == LIST:
        return isinstance(value, list)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return kind == NUMBER or isinstance(value, int) or (math.isfinite(value) and float(value).is_integer())


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


@dataclass
class Host:
    """The machine a run ran on."""

    hostname: str | None = None
    platform: str | None = None
    cpu_model: str | None = None
    cpu_count: int | None = None
    gpus: list = field(default_factory=list)
    gpu_driver: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> Host:
        return cls(**_known(cls, _mapping(data)))


@dataclass
class Sensors:
    """The sensors a run was measured with, why the others were not used, and the sampling interval."""

    sampling_interval_s: float | None = None
    used: list = field(default_factory=list)
    gpu_energy_source: str | None = None  # counter | integrated | unavailable
    cpu_energy_source: str | None = None  # counter | estimated | unavailable
    report: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> Sensors:
        return cls(**_known(cls, _mapping(data)))


@dataclass(frozen=True)
class Window:
    """The measurement window, in Unix seconds (whole milliseconds: the samples' resolution)."""

    start_unix_s: Any
    end_unix_s: Any

    @property
    def start_ms(self) -> int:
        return round(self.start_unix_s * 1000)

    @property
    def end_ms(self) -> int:
        return round(self.end_unix_s * 1000)

    def to_dict(self) -> dict:
        return {"start": iso_utc_ms(self.start_ms), "end": iso_utc_ms(self.end_ms),
                "start_unix_s": self.start_unix_s, "end_unix_s": self.end_unix_s}

    @classmethod
    def from_dict(cls, data: Any) -> Window | None:
        data = _mapping(data)
        if data.get("start_unix_s") is None and data.get("end_unix_s") is None:
            return None
        return cls(data.get("start_unix_s"), data.get("end_unix_s"))


@dataclass
class Manifest:
    run_id: str | None
    environment: str | None
    architecture: str | None
    kind: str = "profiled"  # profiled (ect profile-run, legacy import) | train (ect train)
    status: str = RUNNING
    source: str = "ect"  # ect | legacy-import
    repetition: int | None = None
    attempt: int | None = None
    dag_run_id: str | None = None
    experiment_name: str | None = None
    pid: int | None = None
    created: str | None = None
    finished: str | None = None
    seed: int | None = None
    config: dict | None = None  # the effective configuration (Config.snapshot())
    software: dict = field(default_factory=dict)  # package versions
    backend: dict | None = None  # the Keras backend: name, version, keras_version (None: before backends, TensorFlow)
    host: Host = field(default_factory=Host)
    sensors: Sensors | None = None
    dataset: dict | None = None  # path and fingerprint
    preparation_s: float | None = None
    model: dict | None = None  # the saved model's file relative to MODELS_DIR, or why there is none
    window: Window | None = None
    training: dict | None = None  # the training span and the epochs of each phase
    energy: dict | None = None  # measurements of the windows (EnergyMonitor)
    # The idle window before the measurement (ect.profiling.thermal): idle power per sensor, the GPUs' start
    # temperature, the campaign's first baseline and whether the run started hot; None: not measured (IDLE_BASELINE 0)
    idle_baseline: dict | None = None
    legacy: dict | None = None  # where an imported run came from and what was assumed
    error: str | None = None
    traceback: str | None = None
    extra: dict = field(default_factory=dict)  # fields of other versions, kept as they are

    @property
    def key(self) -> RunKey:
        return RunKey(str(self.environment), str(self.architecture), str(self.run_id))

    @property
    def completed(self) -> bool:
        return self.status == COMPLETED

    def to_dict(self) -> dict:
        data = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra":
                continue
            if isinstance(value, (Host, Sensors)):
                value = {g.name: getattr(value, g.name) for g in fields(value)}
            elif isinstance(value, Window):
                value = value.to_dict()
            data[f.name] = value
        return {**data, **self.extra}

    @classmethod
    def from_dict(cls, data: dict) -> Manifest:
        known = _known(cls, data)
        known.pop("extra", None)
        known["host"] = Host.from_dict(data.get("host"))
        known["sensors"] = Sensors.from_dict(data["sensors"]) if isinstance(data.get("sensors"), dict) else None
        known["window"] = Window.from_dict(data.get("window"))
        extra = {key: value for key, value in data.items() if key not in known and key != "extra"}
        return cls(**{"run_id": None, "environment": None, "architecture": None, **known}, extra=extra)


def read_manifest(folder: Path) -> Manifest | None:
    """The run folder's manifest; None when there is none or it is not a JSON object."""
    data = read_json(Path(folder) / MANIFEST_FILE)
    return None if data is None else Manifest.from_dict(data)


def write_manifest(folder: Path, manifest: Manifest) -> None:
    write_json(Path(folder) / MANIFEST_FILE, manifest.to_dict())


@contextmanager
def recorded(folder: Path, manifest: Manifest) -> Iterator[Manifest]:
    """The block runs between manifest.json saying running and saying completed, or failed with the error.

    Also KeyboardInterrupt and SystemExit (SIGTERM) are recorded as failed before they go on."""
    manifest.status = RUNNING
    write_manifest(folder, manifest)
    try:
        yield manifest
        manifest.status = COMPLETED
    except BaseException as error:
        manifest.status = FAILED
        manifest.error = f"{type(error).__name__}: {error}"
        manifest.traceback = traceback.format_exc(limit=8)
        raise
    finally:
        manifest.finished = now_utc()
        write_manifest(folder, manifest)


def set_aside_previous_attempt(folder: Path, manifest: Manifest | None) -> int:
    """Moves an unfinished attempt's files to previous-attempts/<n>/; returns the number of the next attempt."""
    folder = Path(folder)
    previous = folder / PREVIOUS_ATTEMPTS
    attempts = sorted(int(p.name) for p in previous.glob("*") if p.name.isdigit()) if previous.is_dir() else []
    files = [folder / name for name in RUN_FILES if (folder / name).exists()]
    if not files:
        return len(attempts) + 1
    number = (manifest.attempt if manifest else None) or (attempts[-1] + 1 if attempts else 1)
    while number in attempts:
        number += 1
    target = previous / str(number)
    target.mkdir(parents=True)
    for path in files:
        path.rename(target / path.name)
    return number + 1


def started_now(key: RunKey, kind: str, **values) -> Manifest:
    """The manifest of a run that starts now in this process."""
    return Manifest(key.run_id, key.environment, key.architecture, kind=kind, pid=os.getpid(), created=now_utc(),
                    **values)
