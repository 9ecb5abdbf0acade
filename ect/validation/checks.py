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

import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import pandas as pd

from ect.raw.atomic import read_json
from ect.raw.columns import (CPU_COLUMNS, CPU_NUMERIC, CPU_POWER_SOURCES, GPU_COLUMNS, GPU_NUMERIC, TIMESTAMP_PATTERN,
                             timestamps_ms)
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


def read_text_csv(folder: Path, name: str) -> tuple[pd.DataFrame | None, list[Failure]]:
    """A CSV as a frame of strings, or the reason it cannot be read."""
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
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        return None, failures + [Failure(name, "file_readable", None, f"cannot be parsed as CSV: {error}")]
    return frame, failures


def _steps(frame: pd.DataFrame, column: str, by: str | None = None) -> pd.Series:
    """Each value minus the previous one that is present (a counter need not be read on every row)."""
    values = pd.to_numeric(frame[column], errors="coerce").dropna()
    steps = values.groupby(frame[by][values.index]).diff() if by else values.diff()
    return steps.reindex(frame.index)


def gpu_frame(raw: pd.DataFrame, limits: Limits) -> pd.DataFrame:
    """Typed GPU samples plus derived columns, for the expectations."""
    frame = raw.copy()
    if "power_limit_W" in raw:
        frame["power_limit_max_W"] = limits.power_limit_factor * pd.to_numeric(raw["power_limit_W"], errors="coerce")
    if "timestamp" in raw and "gpu_index" in raw:
        frame["timestamp_step_s"] = timestamps_ms(raw["timestamp"]).groupby(raw["gpu_index"]).diff() / 1000
    if "energy_counter_mJ" in raw and "gpu_index" in raw:
        frame["energy_counter_step_mJ"] = _steps(raw, "energy_counter_mJ", "gpu_index")
    return frame


def cpu_frame(raw: pd.DataFrame, limits: Limits) -> pd.DataFrame:
    frame = raw.copy()
    if "timestamp" in raw:
        frame["timestamp_step_s"] = timestamps_ms(raw["timestamp"]).diff() / 1000
    for column in ("rapl_package_energy_uJ", "rapl_dram_energy_uJ"):
        if column in raw:
            frame[column.replace("_energy_uJ", "_step_uJ")] = _steps(raw, column)
    return frame


def _numeric(frame: pd.DataFrame, columns) -> pd.DataFrame:
    """Numeric columns as numbers (text that is no number becomes NaN; the regex check reports it)."""
    typed = frame.copy()
    present = [column for column in columns if column in typed]
    try:  # the usual case, every value a number: one conversion in C
        typed[present] = typed[present].astype(float)
    except (ValueError, TypeError):
        for column in present:
            typed[column] = pd.to_numeric(typed[column], errors="coerce")
    return typed


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


def manifest_frame(manifest: Manifest, samples: pd.DataFrame | None) -> pd.DataFrame:
    """The manifest as a one-row frame, with the window measured against the samples that carry the energy."""
    window, sensors = manifest.window, manifest.sensors
    row = {key: getattr(manifest, key) for key in ("run_id", "environment", "architecture", "status")}
    row["sampling_interval_s"] = sensors.sampling_interval_s if sensors else None
    row["window_start_unix_s"] = window.start_unix_s if window else None
    row["window_end_unix_s"] = window.end_unix_s if window else None
    if samples is not None and "timestamp" in samples and row["window_start_unix_s"] is not None:
        times_ms = timestamps_ms(samples["timestamp"]).dropna()
        if len(times_ms):
            row["window_start_after_first_sample_ms"] = round(row["window_start_unix_s"] * 1000) - times_ms.min()
            row["window_end_before_last_sample_ms"] = times_ms.max() - round(row["window_end_unix_s"] * 1000)
    return pd.DataFrame([row])


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


@lru_cache(maxsize=1)
def _batch_definition():
    """One ephemeral Great Expectations context per process, made on first use (no network, no files)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)  # its INFO lines are noise in task logs
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

        logging.getLogger("great_expectations").setLevel(logging.WARNING)
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


def _facts(file: str, raw: pd.DataFrame, frame: pd.DataFrame, interval_s: float, limits: Limits) -> dict:
    """One file's run-level facts: its columns, its rows against the fewest allowed, its largest gap."""
    prefix, per = _prefix(file), file == GPU_FILE
    expected = set(GPU_COLUMNS if per else CPU_COLUMNS)
    gpus = raw["gpu_index"].nunique() if per and "gpu_index" in raw else 1
    steps = frame["timestamp_step_s"] if "timestamp_step_s" in frame else pd.Series(dtype=float)
    return {f"{prefix}columns_ok": set(raw.columns) == expected, f"{prefix}columns": sorted(raw.columns),
            f"{prefix}expected_columns": sorted(expected), f"{prefix}rows": len(raw),
            f"{prefix}min_rows": limits.min_samples * max(gpus, 1),
            f"{prefix}max_step_s": steps.max() if steps.notna().any() else None,
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
    frames: dict[str, tuple[pd.DataFrame, pd.DataFrame]] = field(default_factory=dict)  # file: (text, typed)
    facts: dict = field(default_factory=dict)
    manifest_row: dict | None = None


def _read_run(folder: Path, limits: Limits) -> _Run:
    """The manifest and the CSVs of a run, with the failures of reading them."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.exists():
        return _Run(folder, [Failure(MANIFEST_FILE, "file_readable", None, "file is missing")])
    data = read_json(manifest_path)
    if data is None:
        return _Run(folder, [Failure(MANIFEST_FILE, "file_readable", None, "not a valid JSON object")])
    manifest = Manifest.from_dict(data)
    sensors = manifest.sensors
    interval_s = (sensors.sampling_interval_s if sensors else None) or 1.0
    gpu_expected = sensors is not None and sensors.gpu_energy_source not in (None, "unavailable")
    cpu_expected = sensors is not None and bool(set(sensors.used or []) & {"process", "psutil", "rapl", "estimate"})

    run, energy_samples = _Run(folder, []), None
    for name, expected, frame_of, numeric in ((CPU_FILE, cpu_expected, cpu_frame, CPU_NUMERIC),
                                              (GPU_FILE, gpu_expected, gpu_frame, GPU_NUMERIC)):
        if not expected and not (folder / name).exists():
            continue
        raw, read_failures = read_text_csv(folder, name)
        run.failures += read_failures
        if raw is None:
            continue
        frame = frame_of(raw, limits)
        run.frames[name] = (raw, _numeric(frame, numeric))
        run.facts.update(_facts(name, raw, frame, interval_s, limits))
        if name == GPU_FILE or (sensors.cpu_energy_source if sensors else None) != "unavailable":
            energy_samples = raw
    run.manifest_row = manifest_frame(manifest, energy_samples).iloc[0].to_dict()
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
    runs = [_read_run(folder, limits) for folder in folders]
    label = RunKey.of_folder(folders[0]).name if len(folders) == 1 else f"batch of {len(folders)} runs"
    found: list[dict[int, list[Failure]]] = []
    for file, expectations_of in ((CPU_FILE, cpu_expectations), (GPU_FILE, gpu_expectations)):
        layouts: dict[tuple, list[int]] = {}
        for number, run in enumerate(runs):
            if file in run.frames:
                layouts.setdefault(tuple(run.frames[file][0].columns), []).append(number)
        for layout, members in layouts.items():
            text, typed = (pd.concat([runs[n].frames[file][k].assign(_run=n) for n in members], ignore_index=True)
                           for k in (0, 1))
            text_checks, typed_checks = expectations_of(set(typed.columns), limits)
            found.append(_failures(text, text_checks, file, f"{label} {file} text", docs))
            found.append(_failures(typed, typed_checks, file, f"{label} {file} values", docs))
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
