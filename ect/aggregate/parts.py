"""interim/samples.parquet: a folder of part files, part-<hash>.parquet, each holding the samples of a batch of
runs (all with SAMPLES_SCHEMA; read the folder whole with pandas.read_parquet or pyarrow.parquet.read_table).

One part per aggregation (more when it passes PART_ROWS rows): writing a few large files costs a fraction
of one file per run, and a nightly aggregation adds one part instead of rewriting the history. A part is
never edited: when one of its runs changes or leaves, the whole part is dropped and its other runs are
read again from raw/ into a new part, so that a run's samples are always in exactly one file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ect.aggregate.samples import FILE_SCHEMA, SAMPLES_SCHEMA
from ect.raw.atomic import remove_stale_temporaries, temporary_name

PART_ROWS = 2_000_000  # a part is closed after about this many rows (a few hundred MB in memory when read)
ROW_GROUP_ROWS = 16_384  # samples buffered before they are written as one row group
_TEXT_COLUMNS = [f.name for f in SAMPLES_SCHEMA if pa.types.is_string(f.type)]
_FILTERED_COLUMNS = ["environment", "architecture", "run_id", "timestamp", "time_ms"]


def part_name(runs: list[tuple[str, dict]]) -> str:
    """part-<16 hex digits of the SHA-1 of its runs' names and file signatures>.parquet: the same runs from the
    same files give the same name; a run measured again gives its new part a new name."""
    return f"part-{hashlib.sha1(json.dumps(runs, sort_keys=True).encode()).hexdigest()[:16]}.parquet"


def remove_all_but(samples_dir: Path, keep: set[str]) -> None:
    """Deletes every file in samples_dir but the parts to keep: parts of changed or departed runs, leftovers
    of an interrupted write, and the layouts of earlier formats (one file per run in sub-folders)."""
    if samples_dir.is_file():  # format 3: one file
        samples_dir.unlink()
    if not samples_dir.is_dir():
        return
    for path in sorted(samples_dir.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_dir():
            if not any(path.iterdir()):
                path.rmdir()
        elif not (path.parent == samples_dir and path.name in keep):
            path.unlink()


class PartWriter:
    """Streams runs' samples into new part files; `parts` maps each run written to its part's file name.

    Used as a context manager: on an error, the part being written is deleted, never left looking complete.
    """

    def __init__(self, samples_dir: Path):
        self.samples_dir = samples_dir
        self.parts: dict[str, str] = {}
        remove_stale_temporaries(samples_dir, "part")  # what a killed aggregation left
        self._tmp = samples_dir / temporary_name("part")
        self._writer: pq.ParquetWriter | None = None
        self._handle = None
        self._runs: list[tuple[str, dict]] = []
        self._buffer: list[pa.Table] = []
        self._buffered = self._rows = 0

    def add(self, run: str, signature: dict, samples: pa.Table) -> None:
        """Adds the samples of the run (its name and ect.raw.layout.signature) to the part being written."""
        self._runs.append((run, signature))
        self._buffer.append(samples)
        self._buffered += samples.num_rows
        if self._buffered >= ROW_GROUP_ROWS:
            self._flush()
        if self._rows >= PART_ROWS:
            self._close_part()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self.samples_dir.mkdir(parents=True, exist_ok=True)
            # An open file, not a path: Arrow's filesystem lookup costs a sixth of a small file's write.
            self._handle = open(self._tmp, "wb")
            # Dictionary pages only for the text columns (numbers rarely repeat, and trying costs a third of the
            # time); statistics only for the columns readers filter on (they cost a sixth of the time); no Arrow
            # schema in the file, so that the text reads back as plain strings (SAMPLES_SCHEMA).
            self._writer = pq.ParquetWriter(self._handle, FILE_SCHEMA, use_dictionary=_TEXT_COLUMNS,
                                            write_statistics=_FILTERED_COLUMNS, store_schema=False)
        table = pa.concat_tables(self._buffer)
        self._writer.write_table(table, row_group_size=max(table.num_rows, 1))
        self._rows += table.num_rows
        self._buffer, self._buffered = [], 0

    def _close_part(self) -> None:
        self._flush()
        if self._writer is None:
            return
        self._writer.close()
        self._handle.close()
        self._writer = self._handle = None
        name = part_name(self._runs)
        os.replace(self._tmp, self.samples_dir / name)
        self.parts.update((run, name) for run, _ in self._runs)
        self._runs, self._rows = [], 0

    def __enter__(self) -> PartWriter:
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        if error_type is None:
            self._close_part()
            return
        if self._writer is not None:
            self._writer.close()
            self._handle.close()
        self._tmp.unlink(missing_ok=True)
