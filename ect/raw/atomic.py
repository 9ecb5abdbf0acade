"""Writing files so that a crash never leaves one that looks complete: write a temporary sibling, flush it to
the disk, then rename it over the target (a rename within a folder is atomic)."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary sibling of `path` (same suffix, e.g. for Keras' .keras) for the block to write; renamed over
    `path` when the block ends without error, deleted when it raises."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: Path, data: Any, indent: int = 2) -> Path:
    return write_text(path, json.dumps(data, indent=indent, default=str) + "\n")


def read_json(path: Path) -> dict | None:
    """A JSON object from `path`; None when the file is missing, unreadable, not JSON or not an object."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
