"""Reading one run's raw samples as Arrow tables, fast: Arrow's CSV reader with the contract's column types.

Samples stay in Arrow from the CSV to samples.parquet; per-run arithmetic reads numpy views of the columns.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as arrow_csv

from ect.raw.atomic import read_bytes
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, TEXT_COLUMNS
from ect.raw.layout import CPU_FILE, GPU_FILE, RunKey

_TEXT_IN_MEMORY = pa.dictionary(pa.int32(), pa.string())


def _types(columns: tuple[str, ...], text: pa.DataType = pa.string()) -> dict[str, pa.DataType]:
    types = {c: text if c in TEXT_COLUMNS else pa.float64() for c in columns}
    types["timestamp"] = pa.timestamp("ms", tz="UTC")
    return types


# Every run's interim samples have these columns, in this order (null where a sensor was not used), so
# that the part files read as one dataset whatever the first file is.
SAMPLES_SCHEMA = pa.schema(
    [(key, pa.string()) for key in ("environment", "architecture", "run_id")]
    + [("timestamp", pa.timestamp("ms", tz="UTC")), ("time_ms", pa.int64())]
    + [(c, t) for c, t in _types(GPU_COLUMNS).items() if c != "timestamp"]
    + [(c, t) for c, t in _types(CPU_COLUMNS).items() if c != "timestamp"]
)
# The same in memory and in the files: text as dictionaries (one value repeated costs no hashing when
# written); the files keep no Arrow schema, so that they read back as SAMPLES_SCHEMA's plain strings.
FILE_SCHEMA = pa.schema([pa.field(f.name, _TEXT_IN_MEMORY if pa.types.is_string(f.type) else f.type)
                         for f in SAMPLES_SCHEMA])


def _convert_options(columns: tuple[str, ...]) -> arrow_csv.ConvertOptions:
    return arrow_csv.ConvertOptions(column_types=_types(columns, _TEXT_IN_MEMORY), include_columns=list(columns),
                                    strings_can_be_null=True)


_SERIAL = arrow_csv.ReadOptions(use_threads=False)  # runs are read in parallel, one thread each
_GPU_OPTIONS, _CPU_OPTIONS = _convert_options(GPU_COLUMNS), _convert_options(CPU_COLUMNS)


def _read(path: Path, options: arrow_csv.ConvertOptions) -> pa.Table | None:
    try:
        data = read_bytes(path)  # never through a link; parsed from memory: a third faster than Arrow reading the file
    except FileNotFoundError:
        return None
    table = arrow_csv.read_csv(pa.BufferReader(data), read_options=_SERIAL, convert_options=options)
    return table.add_column(1, "time_ms", table["timestamp"].cast(pa.int64()))


def read_gpu(folder: Path) -> pa.Table | None:
    return _read(folder / GPU_FILE, _GPU_OPTIONS)


def read_cpu(folder: Path) -> pa.Table | None:
    return _read(folder / CPU_FILE, _CPU_OPTIONS)


def values(table: pa.Table, name: str) -> np.ndarray:
    """A column as numpy (missing numbers as NaN)."""
    return table.column(name).to_numpy()


def nearest(sorted_times: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each of `times`, the index of the nearest of `sorted_times` (the earlier one on a tie)."""
    right = np.clip(np.searchsorted(sorted_times, times), 0, len(sorted_times) - 1)
    left = np.clip(right - 1, 0, len(sorted_times) - 1)
    return np.where(np.abs(sorted_times[right] - times) < np.abs(times - sorted_times[left]), right, left)


def joined_samples(gpu: pa.Table | None, cpu: pa.Table | None, tolerance_ms: int) -> pa.Table:
    """GPU samples with the CPU sample nearest in time (within tolerance_ms) beside each; CPU samples alone
    when no GPU was measured."""
    if gpu is None:
        return cpu
    if cpu is None or cpu.num_rows == 0:
        return gpu
    gpu_times, cpu_times = values(gpu, "time_ms"), values(cpu, "time_ms")
    cpu_values = cpu.drop_columns(["timestamp", "time_ms"])
    if np.array_equal(gpu_times, cpu_times):  # one GPU sampled with the CPU, as ect's sampler does: rows align
        return pa.Table.from_arrays([*gpu.columns, *cpu_values.columns],
                                    names=[*gpu.column_names, *cpu_values.column_names])
    index = nearest(cpu_times, gpu_times)
    too_far = np.abs(cpu_times[index] - gpu_times) > tolerance_ms
    cpu_part = cpu_values.take(pa.array(index))
    columns = cpu_part.columns
    if too_far.any():
        columns = [pc.if_else(pa.array(too_far), pa.scalar(None, column.type), column) for column in columns]
    return pa.Table.from_arrays([*gpu.columns, *columns], names=[*gpu.column_names, *cpu_part.column_names])


def run_samples(table: pa.Table, run: RunKey) -> pa.Table:
    """The joined samples with FILE_SCHEMA's columns: the run's key in front (one dictionary value, not a
    repeated string), then every sample column (all null where the run has none)."""
    key = {"environment": run.environment, "architecture": run.architecture, "run_id": run.run_id}
    names, rows = set(table.column_names), table.num_rows
    zeros = pa.array(np.zeros(rows, dtype=np.int32))
    return pa.Table.from_arrays(
        [pa.DictionaryArray.from_arrays(zeros, pa.array([key[f.name]])) if f.name in key
         else table.column(f.name) if f.name in names else pa.nulls(rows, f.type) for f in FILE_SCHEMA],
        schema=FILE_SCHEMA)

