"""Finding and reading raw run folders (METRICS_DIR/raw/<environment>/<architecture>/<run_id>/)."""

from __future__ import annotations

import json
import os
from pathlib import Path

RUN_FILES = ("manifest.json", "gpu.csv", "cpu.csv", "history.csv", "metrics.json")
VALIDATION_FILE = "validation.json"


def find_runs(raw_dir: Path) -> list[Path]:
    """Run folders: <environment>/<architecture>/<run_id>/ holding at least one run file, sorted."""
    raw_dir = Path(raw_dir)
    return sorted(
        folder for folder in raw_dir.glob("*/*/*")
        if folder.is_dir() and any((folder / name).exists() for name in RUN_FILES)
    )


def run_key(folder: Path) -> tuple[str, str, str]:
    """(environment, architecture, run_id) from a run folder's path."""
    return folder.parent.parent.name, folder.parent.name, folder.name


def signature(folder: Path) -> dict:
    """Size and modification time of each run file: changes when a run is re-measured or edited."""
    result = {}
    for name in RUN_FILES:
        try:
            stat = os.stat(folder / name)
        except FileNotFoundError:
            continue
        result[name] = [stat.st_size, stat.st_mtime_ns]
    return result


def read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def timestamps_ms(values):
    """ISO-8601 UTC millisecond timestamps ('...T..:..:..mmmZ') as ms since the epoch (float64, exact below
    2**53); NaN where a value does not parse."""
    import pandas as pd

    parsed = pd.to_datetime(values, format="ISO8601", utc=True, errors="coerce")  # the regex check enforces the exact format
    return (parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(1, "ms")
