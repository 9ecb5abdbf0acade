"""The checks of raw run folders, a batch of runs at a time: files that must parse, then Great Expectations suites.

The CSVs are read as text so that a value such as "119.17 W" is reported as what it is, not silently turned into a
missing number; derived columns (time steps, counter steps, power over the limit) let plain column expectations
express the ordering and gap rules.

A batch is validated in a handful of Great Expectations validations, however many runs it holds: the samples of every
run as one table per file (and column layout), keyed by run (`_run`), as text and typed; one row per run of
run-level facts (rows, the largest gap, the column set); one row per run of the manifest. Each failure is attributed
to its run with the expectation that names it (a fact is reported as the table expectation it stands for, e.g.
expect_table_row_count_to_be_between) and that run's offending values.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ect.raw.atomic import read_json
from ect.raw.columns import (CPU_COLUMNS, CPU_NUMERIC, CPU_POWER_SOURCES, GPU_COLUMNS, GPU_NUMERIC, TIMESTAMP_PATTERN)
from ect.raw.layout import CPU_FILE, GPU_FILE, MANIFEST_FILE, RunKey
from ect.raw.manifest import Manifest

NUMBER = r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$"


@dataclass(frozen=True)
class Limits:
    max_gap_factor: float = 20.0
    min_samples: int = 3
    power_limit_factor: float = 1.5


@dataclass(frozen=True)
class Failure:
    file: str
    check: str  # the Great Expectations expectation type, or file_readable / file_complete
    column: str | None
    details: str

    def to_dict(self) -> dict:
        return {"file": self.file, "check": self.check, "column": self.column, "details": self.details}


def read_text_csv(folder: Path, name: str) -> tuple[pa.Table | None, list[Failure]]:
    """A CSV as a table of strings (empty fields null), or the reason it cannot be read. A last line cut while being
    written is reported and left out."""
    path = folder / name
    if not path.exists():
        return None, [Failure(name, "file_readable", None, "file is missing")]
    data = path.read_bytes()
    if not data:
        return None, [Failure(name, "file_readable", None, "file is empty (0 bytes)")]
    failures = []
    if not data.endswith(b"\n"):
        last = data.rsplit(b"\n", 1)[-1].decode(errors="replace")
        failures.append(Failure(name, "file_complete", None, f"last line is truncated (no line end): {last[:80]!r}"))
        data = data[:data.rfind(b"\n") + 1] or data
    try:
        names = next(csv.reader([data.split(b"\n", 1)[0].decode("utf-8").rstrip("\r")]))
        table = pacsv.read_csv(io.BytesIO(data), convert_options=pacsv.ConvertOptions(
            column_types={column: pa.string() for column in names}, strings_can_be_null=True, null_values=[""]))
    except (pa.ArrowInvalid, UnicodeDecodeError, StopIteration):
        # pandas names what is wrong (line and field counts); it also reads what pyarrow refuses, e.g. short rows
        try:
            frame = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
            return None, failures + [Failure(name, "file_readable", None, f"cannot be parsed as CSV: {error}")]
        table = pa.Table.from_pandas(frame.astype(object), preserve_index=False)
    return table, failures


def _floats(values: pa.ChunkedArray) -> np.ndarray:
    """Text as float64, NaN where empty or not a number (the regex expectation reports those)."""
    try:  # the usual case, every value a number: one conversion in C
        return _nan_filled(pc.cast(values, pa.float64()))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        numbers = pc.if_else(pc.match_substring_regex(values.cast(pa.string()), NUMBER), values, None)
        return _nan_filled(pc.cast(numbers, pa.float64()))


def _milliseconds(values: pa.ChunkedArray) -> np.ndarray:
    """Timestamps of the contract as ms since the epoch (float64, exact below 2**53); NaN where a value is not one."""
    values = values.cast(pa.string())
    try:
        times = pc.cast(values, pa.timestamp("ms", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        times = pc.cast(pc.if_else(pc.match_substring_regex(values, TIMESTAMP_PATTERN), values, None),
                        pa.timestamp("ms", tz="UTC"))
    return _nan_filled(times.cast(pa.int64()).cast(pa.float64()))


def _nan_filled(values: pa.ChunkedArray) -> np.ndarray:
    return values.fill_null(np.nan).to_numpy()


def _grouped_steps(values: np.ndarray, keys: list) -> np.ndarray:
    """Each value minus the previous present one of its group (a counter need not be read on every row); NaN on
    the first of a group, where a value is missing, and where a group key is."""
    series = pd.Series(values)
    present = series.notna().to_numpy()
    steps = series[present].groupby([key[present] for key in keys]).diff()
    return steps.reindex(series.index).to_numpy()


@dataclass
class _Samples:
    """One file's samples of a batch's runs with the same columns: as text, typed with derived columns, and per-run
    figures for the run-level facts."""

    text: pd.DataFrame
    typed: pd.DataFrame
    first_ms: pd.Series  # per run (`_run`): the first and last sample time
    last_ms: pd.Series
    max_step_s: pd.Series
    rows: pd.Series
    gpus: pd.Series


def _samples(file: str, tables: dict[int, pa.Table], limits: Limits) -> _Samples:
    """The tables of a batch's runs (by run number) as one table keyed by `_run`, text and typed."""
    table = pa.concat_tables([t.append_column("_run", pa.array(np.full(t.num_rows, n, dtype=np.int64)))
                              for n, t in tables.items()])
    runs = table["_run"].to_numpy()
    numeric = GPU_NUMERIC if file == GPU_FILE else CPU_NUMERIC
    typed = pd.DataFrame({c: _floats(table[c]) for c in table.column_names if c in numeric})
    typed["_run"] = runs
    times = _milliseconds(table["timestamp"]) if "timestamp" in table.column_names else None
    series = [runs]
    if file == GPU_FILE:
        if "gpu_index" not in table.column_names:
            series = None
        else:
            series.append(table["gpu_index"].to_pandas().to_numpy())
        if "power_limit_W" in typed:
            typed["power_limit_max_W"] = limits.power_limit_factor * typed["power_limit_W"]
        if "energy_counter_mJ" in typed and series:
            typed["energy_counter_step_mJ"] = _grouped_steps(typed["energy_counter_mJ"].to_numpy(), series)
    else:
        for column in ("rapl_package_energy_uJ", "rapl_dram_energy_uJ"):
            if column in typed:
                typed[column.replace("_energy_uJ", "_step_uJ")] = _grouped_steps(typed[column].to_numpy(), series)
    if times is not None and series:
        typed["timestamp_step_s"] = _grouped_steps(times, series) / 1000
    by_run = typed.groupby("_run")
    present_times = pd.Series(times if times is not None else np.full(len(runs), np.nan)).groupby(runs)
    gpus = (pd.Series(series[1]).groupby(runs).nunique() if file == GPU_FILE and series else by_run.size() * 0 + 1)
    steps = typed["timestamp_step_s"] if "timestamp_step_s" in typed else pd.Series(np.nan, index=typed.index)
    return _Samples(table.to_pandas(), typed, present_times.min(), present_times.max(), steps.groupby(runs).max(),
                    pd.Series({n: t.num_rows for n, t in tables.items()}), gpus)


def _format_expectations(present: set, file: str, columns: tuple[str, ...], numeric: tuple[str, ...]) -> list:
    """The contract's columns, numbers where numbers belong, and UTC millisecond timestamps."""
    import great_expectations.expectations as gxe

    expectations = [gxe.ExpectColumnValuesToMatchRegex(column=c, regex=NUMBER, meta={"meaning": f"{c} values are numbers"})
                     for c in numeric if c in present]
    if "timestamp" in present:
        expectations.append(gxe.ExpectColumnValuesToMatchRegex(column="timestamp", regex=TIMESTAMP_PATTERN,
                                                               meta={"meaning": "UTC ms timestamps"}))
    return expectations


def gpu_expectations(present: set, limits: Limits) -> tuple[list, list]:
    """(expectations on the text frame, expectations on the typed frame) of gpu.csv samples."""
    import great_expectations.expectations as gxe

    text = _format_expectations(present, "gpu.csv", GPU_COLUMNS, GPU_NUMERIC)
    typed = []
    text += [gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"meaning": f"{c} is never empty"})
             for c in ("timestamp", "gpu_index", "power_W") if c in present]
    if "power_W" in present:
        typed.append(gxe.ExpectColumnValuesToBeBetween(column="power_W", min_value=0, meta={"meaning": "power is >= 0 W"}))
    if "power_limit_max_W" in present and "power_W" in present:
        typed.append(gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A="power_limit_max_W", column_B="power_W", or_equal=True, ignore_row_if="either_value_is_missing",
            meta={"meaning": f"power_W at most {limits.power_limit_factor} x power_limit_W (pairs: limit, power)"}))
    for column in ("utilization_gpu_pct", "utilization_memory_pct"):
        if column in present:
            typed.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, max_value=100,
                                                           meta={"meaning": f"{column} is within 0-100"}))
    typed += _time_expectations(present)
    if "energy_counter_step_mJ" in present:
        typed.append(gxe.ExpectColumnValuesToBeBetween(column="energy_counter_step_mJ", min_value=0,
                                                       meta={"meaning": "the energy counter never decreases"}))
    return text, typed


def cpu_expectations(present: set, limits: Limits) -> tuple[list, list]:
    import great_expectations.expectations as gxe

    text = _format_expectations(present, "cpu.csv", CPU_COLUMNS, CPU_NUMERIC)
    if "cpu_power_source" in present:
        text.append(gxe.ExpectColumnValuesToBeInSet(column="cpu_power_source", value_set=list(CPU_POWER_SOURCES),
                                                    meta={"meaning": f"cpu_power_source is one of {list(CPU_POWER_SOURCES)}"}))
    typed = []
    if "timestamp" in present:
        text.append(gxe.ExpectColumnValuesToNotBeNull(column="timestamp", meta={"meaning": "timestamp is never empty"}))
    for column in ("process_cpu_pct", "process_rss_MiB", "cpu_power_estimated_W"):
        if column in present:
            typed.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, meta={"meaning": f"{column} is >= 0"}))
    if "system_cpu_pct" in present:
        typed.append(gxe.ExpectColumnValuesToBeBetween(column="system_cpu_pct", min_value=0, max_value=100,
                                                       meta={"meaning": "system_cpu_pct is within 0-100"}))
    typed += _time_expectations(present)
    for column in ("rapl_package_step_uJ", "rapl_dram_step_uJ"):
        if column in present:
            typed.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0,
                                                           meta={"meaning": "RAPL energy never decreases (wrap-around handled)"}))
    return text, typed


def _time_expectations(present: set) -> list:
    """The order of the samples (a file with fewer than two samples has no steps: nothing to say; the largest gap
    is a run-level fact)."""
    import great_expectations.expectations as gxe

    if "timestamp_step_s" not in present:
        return []
    return [gxe.ExpectColumnValuesToBeBetween(column="timestamp_step_s", min_value=0, strict_min=True,
                                              meta={"meaning": "timestamps strictly increase"})]


def manifest_row(manifest: Manifest, first_ms: float | None, last_ms: float | None) -> dict:
    """The manifest as one row, with the window measured against the first and last time of the samples that carry
    the energy."""
    window, sensors = manifest.window, manifest.sensors
    row = {key: getattr(manifest, key) for key in ("run_id", "environment", "architecture", "status")}
    row["sampling_interval_s"] = sensors.sampling_interval_s if sensors else None
    row["window_start_unix_s"] = window.start_unix_s if window else None
    row["window_end_unix_s"] = window.end_unix_s if window else None
    if row["window_start_unix_s"] is not None and first_ms is not None:
        row["window_start_after_first_sample_ms"] = round(row["window_start_unix_s"] * 1000) - first_ms
        row["window_end_before_last_sample_ms"] = last_ms - round(row["window_end_unix_s"] * 1000)
    return row


def manifest_expectations(frame: pd.DataFrame) -> list:
    import great_expectations.expectations as gxe

    present = set(frame.columns)
    expectations = [gxe.ExpectColumnValuesToNotBeNull(column=c, meta={"meaning": f"the manifest has {c}"})
                    for c in ("run_id", "environment", "architecture", "status", "sampling_interval_s",
                              "window_start_unix_s", "window_end_unix_s")]
    expectations.append(gxe.ExpectColumnValuesToBeInSet(column="status", value_set=["completed"],
                                                        meta={"meaning": "the run completed"}))
    expectations.append(gxe.ExpectColumnValuesToBeBetween(column="sampling_interval_s", min_value=0, strict_min=True,
                                                          meta={"meaning": "the sampling interval is > 0 s"}))
    for column, meaning in (("window_start_after_first_sample_ms", "the measurement window starts inside the samples"),
                            ("window_end_before_last_sample_ms", "the measurement window ends inside the samples")):
        if column in present:
            expectations.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, meta={"meaning": meaning}))
    return expectations


def _quiet_and_unhashed() -> None:
    """Great Expectations' INFO lines are noise in task logs; and it fingerprints every batch by hashing all its
    values (a batch marker ect never reads), which costs more than validating a batch of runs' samples."""
    from great_expectations.execution_engine import pandas_execution_engine

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    pandas_execution_engine.HASH_THRESHOLD = 0


@lru_cache(maxsize=1)
def _batch_definition():
    """One ephemeral Great Expectations context per process, made on first use (no network, no files)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    _quiet_and_unhashed()
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("ect").add_dataframe_asset("raw")
    return asset.add_batch_definition_whole_dataframe("whole")


class DataDocs:
    """Validations through a file-backed Great Expectations project, so that its Data Docs (HTML) show them.

    Slower than the ephemeral context (every validation is stored): used only when asked for.
    """

    def __init__(self, project_dir: Path):
        os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
        import great_expectations as gx
        from great_expectations.data_context.types.base import ProgressBarsConfig

        _quiet_and_unhashed()
        self.context = gx.get_context(mode="file", project_root_dir=str(project_dir))
        self.context.variables.progress_bars = ProgressBarsConfig(globally=False)
        source = self.context.data_sources.add_or_update_pandas("ect")
        asset = source.get_asset("raw") if "raw" in [a.name for a in source.assets] else source.add_dataframe_asset("raw")
        names = [b.name for b in asset.batch_definitions]
        self.batch = asset.get_batch_definition("whole") if "whole" in names else \
            asset.add_batch_definition_whole_dataframe("whole")

    def validate(self, frame: pd.DataFrame, suite, name: str):
        import great_expectations as gx
        from great_expectations.checkpoint import UpdateDataDocsAction

        key = re.sub(r"[^A-Za-z0-9_.-]+", "__", name)  # stores reject "/" in names
        for store in (self.context.checkpoints, self.context.validation_definitions, self.context.suites):
            try:
                store.delete(key)
            except Exception:  # not there yet
                pass
        suite.name = key
        suite = self.context.suites.add(suite)
        definition = self.context.validation_definitions.add(gx.ValidationDefinition(name=key, data=self.batch, suite=suite))
        checkpoint = self.context.checkpoints.add(gx.Checkpoint(name=key, validation_definitions=[definition],
                                                                actions=[UpdateDataDocsAction(name="data_docs")],
                                                                result_format="COMPLETE"))
        result = checkpoint.run(batch_parameters={"dataframe": frame})
        return next(iter(result.run_results.values()))

    def index(self) -> str:
        return self.context.get_docs_sites_urls()[0]["site_url"]


def facts_expectations(files: list[str]) -> list:
    """Run-level facts of each file, reported as the table expectations they stand for."""
    import great_expectations.expectations as gxe

    expectations = []
    for file in files:
        prefix = _prefix(file)
        expectations += [
            gxe.ExpectColumnValuesToBeInSet(column=f"{prefix}columns_ok", value_set=[True], meta={
                "file": file, "check": "expect_table_columns_to_match_set", "column": None}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{prefix}rows", column_B=f"{prefix}min_rows", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": file, "check": "expect_table_row_count_to_be_between", "column": None}),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=f"{prefix}max_gap_s", column_B=f"{prefix}max_step_s", or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta={"file": file, "check": "expect_column_max_to_be_between", "column": "timestamp_step_s"}),
        ]
    return expectations


def _prefix(file: str) -> str:
    return file.split(".")[0] + "_"


def _facts(file: str, columns: list[str], samples: _Samples, run: int, interval_s: float, limits: Limits) -> dict:
    """One file's run-level facts: its columns, its rows against the fewest allowed, its largest gap."""
    prefix, expected = _prefix(file), set(GPU_COLUMNS if file == GPU_FILE else CPU_COLUMNS)
    max_step = samples.max_step_s.get(run, np.nan)
    return {f"{prefix}columns_ok": set(columns) == expected, f"{prefix}columns": sorted(columns),
            f"{prefix}expected_columns": sorted(expected), f"{prefix}rows": int(samples.rows[run]),
            f"{prefix}min_rows": limits.min_samples * max(int(samples.gpus.get(run, 1)), 1),
            f"{prefix}max_step_s": None if max_step != max_step else float(max_step),
            f"{prefix}max_gap_s": limits.max_gap_factor * interval_s, f"{prefix}interval_s": interval_s}


def _fact_details(check: str, file: str, facts: dict, limits: Limits) -> str:
    prefix = _prefix(file)
    if check == "expect_table_columns_to_match_set":
        expected, seen = set(facts[f"{prefix}expected_columns"]), set(facts[f"{prefix}columns"])
        return f"expected the columns of {file}: missing {sorted(expected - seen)}, unexpected {sorted(seen - expected)}"
    if check == "expect_table_row_count_to_be_between":
        per = " per GPU" if file == GPU_FILE else ""
        return f"expected at least {limits.min_samples} samples{per}: observed {facts[f'{prefix}rows']}"
    max_gap_s, interval_s = facts[f"{prefix}max_gap_s"], facts[f"{prefix}interval_s"]
    return (f"expected no gap between samples longer than {max_gap_s:g} s ({limits.max_gap_factor:g} x "
            f"{interval_s:g} s): observed {_plain(facts[f'{prefix}max_step_s'])}")


@dataclass
class _Run:
    """One run of a batch: what could be read of it, and the failures so far."""

    folder: Path
    failures: list[Failure]
    manifest: Manifest | None = None
    tables: dict[str, pa.Table] = field(default_factory=dict)  # file: its samples as text
    facts: dict = field(default_factory=dict)
    manifest_row: dict | None = None

    @property
    def interval_s(self) -> float:
        return (self.manifest.sensors.sampling_interval_s if self.manifest.sensors else None) or 1.0

    @property
    def energy_file(self) -> str | None:
        """The file whose samples carry the energy (the window must lie inside them)."""
        sensors = self.manifest.sensors
        if GPU_FILE in self.tables:
            return GPU_FILE
        cpu_energy = (sensors.cpu_energy_source if sensors else None) != "unavailable"
        return CPU_FILE if CPU_FILE in self.tables and cpu_energy else None


def _read_run(folder: Path) -> _Run:
    """The manifest and the CSVs of a run, with the failures of reading them."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        return _Run(folder, [Failure(MANIFEST_FILE, "file_readable", None, "file is missing")])
    data = read_json(manifest_path)
    if data is None:
        return _Run(folder, [Failure(MANIFEST_FILE, "file_readable", None, "not a valid JSON object")])
    run = _Run(folder, [], Manifest.from_dict(data))
    sensors = run.manifest.sensors
    gpu_expected = sensors is not None and sensors.gpu_energy_source not in (None, "unavailable")
    cpu_expected = sensors is not None and bool(set(sensors.used or []) & {"process", "psutil", "rapl", "estimate"})
    for name, expected in ((CPU_FILE, cpu_expected), (GPU_FILE, gpu_expected)):
        if not expected and not (folder / name).exists():
            continue
        table, read_failures = read_text_csv(folder, name)
        run.failures += read_failures
        if table is not None:
            run.tables[name] = table
    return run


def _failures(frame: pd.DataFrame, expectations: list, file: str, suite_name: str, docs) -> dict[int, list[Failure]]:
    """Validates a batch's table (its `_run` column names each row's run); the failures of each run, with its own
    offending values."""
    import great_expectations as gx

    if not expectations or frame.empty:
        return {}
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    if docs is None:
        result = _batch_definition().get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="COMPLETE")
    else:
        result = docs.validate(frame, suite, suite_name)
    runs = frame["_run"].to_numpy()
    found: dict[int, list[Failure]] = {}
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        meta = config.meta or {}
        column = meta.get("column", config.kwargs.get("column") or config.kwargs.get("column_B"))
        check, failed_file = meta.get("check", config.type), meta.get("file", file)
        if item.exception_info and item.exception_info.get("raised_exception"):
            detail = f"expected {meta.get('meaning', '')}: could not be evaluated: " \
                     f"{item.exception_info.get('exception_message')}"
            for run in sorted(set(runs.tolist())):
                found.setdefault(run, []).append(Failure(failed_file, check, column, detail))
            continue
        by_run: dict[int, list] = {}
        for position, value in zip(item.result.get("unexpected_index_list") or [],
                                   item.result.get("unexpected_list") or []):
            by_run.setdefault(int(runs[position]), []).append(_plain(value))
        for run, values in by_run.items():
            detail = None if "meaning" not in meta else \
                f"expected {meta['meaning']}: {len(values)} offending value(s), e.g. {values[:5]}"
            found.setdefault(run, []).append(Failure(failed_file, check, column, detail))
    return found


def _plain(value):
    """numpy scalars (and tuples of them) as plain Python values, NaN as None, for readable messages."""
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def check_runs(folders: list[Path], limits: Limits, docs: DataDocs | None = None) -> dict[Path, list[Failure]]:
    """Every failed check of each run folder of a batch (empty for a valid run), in a handful of validations."""
    runs = [_read_run(folder) for folder in folders]
    label = RunKey.of_folder(folders[0]).name if len(folders) == 1 else f"batch of {len(folders)} runs"
    found: list[dict[int, list[Failure]]] = []
    times: dict[tuple[int, str], tuple] = {}  # (run, file): its first and last sample time
    for file, expectations_of in ((CPU_FILE, cpu_expectations), (GPU_FILE, gpu_expectations)):
        layouts: dict[tuple, list[int]] = {}
        for number, run in enumerate(runs):
            if file in run.tables:
                layouts.setdefault(tuple(run.tables[file].column_names), []).append(number)
        for layout, members in layouts.items():
            samples = _samples(file, {n: runs[n].tables[file] for n in members}, limits)
            for n in members:
                runs[n].facts.update(_facts(file, list(layout), samples, n, runs[n].interval_s, limits))
                first, last = samples.first_ms.get(n, np.nan), samples.last_ms.get(n, np.nan)
                times[n, file] = (None, None) if first != first else (float(first), float(last))
            text_checks, typed_checks = expectations_of(set(samples.typed.columns) | set(layout), limits)
            found.append(_failures(samples.text, text_checks, file, f"{label} {file} text", docs))
            found.append(_failures(samples.typed, typed_checks, file, f"{label} {file} values", docs))
    for n, run in enumerate(runs):
        if run.manifest is not None:
            run.manifest_row = manifest_row(run.manifest, *times.get((n, run.energy_file), (None, None)))
    with_facts = [n for n, run in enumerate(runs) if run.facts]
    if with_facts:
        facts = pd.DataFrame([{**runs[n].facts, "_run": n} for n in with_facts])
        present = [file for file in (CPU_FILE, GPU_FILE) if f"{_prefix(file)}rows" in facts]
        for run, failures in _failures(facts, facts_expectations(present), "", f"{label} facts", docs).items():
            found.append({run: [Failure(f.file, f.check, f.column,
                                        _fact_details(f.check, f.file, runs[run].facts, limits)) for f in failures]})
    with_manifest = [n for n, run in enumerate(runs) if run.manifest_row is not None]
    if with_manifest:
        manifests = pd.DataFrame([{**runs[n].manifest_row, "_run": n} for n in with_manifest])
        found.append(_failures(manifests, manifest_expectations(manifests), MANIFEST_FILE, f"{label} manifest", docs))
    for failures in found:
        for run, items in failures.items():
            runs[run].failures += items
    return {run.folder: run.failures for run in runs}
