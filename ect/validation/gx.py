"""Great Expectations plumbing: a quiet ephemeral context made on first use, a file-backed project for Data Docs, and
validating a table with a suite, each failed expectation with its offending rows. Imported only when runs need
checking (its import costs seconds)."""

from __future__ import annotations

import logging
import os
import re
import threading
from functools import lru_cache
from pathlib import Path


def _quiet() -> None:
    """Importing Great Expectations logs about 220 INFO lines ("Skipping registering function ...", "Multiple
    declarations of metric ..."), noise in the first validation's task log: its loggers are set to WARNING before it is
    imported. One of its modules sets its own logger to INFO when imported; a filter keeps that one at WARNING too."""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    logging.getLogger("great_expectations.data_context.types.base").addFilter(
        lambda record: record.levelno >= logging.WARNING)


_quiet()


def _quiet_and_unhashed() -> None:
    """Great Expectations' INFO lines are noise in task logs; and it fingerprints every batch by hashing all its
    values (a batch marker ect never reads)."""
    from great_expectations.execution_engine import pandas_execution_engine

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    pandas_execution_engine.HASH_THRESHOLD = 0


_warming: threading.Thread | None = None


def warm_up() -> None:
    """Starts importing Great Expectations and making its context in a background thread: seconds of pure Python
    that overlap the reading of the runs (Arrow parses without holding the interpreter). Its first use waits for it."""
    global _warming
    if _warming is None:
        _warming = threading.Thread(target=_made_quietly, name="ect-great-expectations-import", daemon=True)
        _warming.start()


def _made_quietly() -> None:
    try:
        _context_batch()
    except Exception:  # noqa: BLE001 - made again, and its error raised, where it is used
        pass


def ready() -> None:
    """Waits for warm_up's import (if any): nothing imports pandas or Great Expectations while it runs."""
    if _warming is not None:
        _warming.join()


def _batch_definition():
    ready()
    return _context_batch()


@lru_cache(maxsize=1)
def _context_batch():
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

    def validate(self, frame, suite, name: str):
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


def unexpected(frame, expectations: list, file: str, suite_name: str, docs: DataDocs | None):
    """Validates a table; (file, check, column, meta, [(row position, offending value)]) of each failed expectation.
    An expectation that cannot be evaluated raises (the caller then looks for the run at fault)."""
    ready()
    import great_expectations as gx

    if not expectations or frame.empty:
        return
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    if docs is None:
        result = _batch_definition().get_batch(batch_parameters={"dataframe": frame}).validate(
            suite, result_format="COMPLETE")
    else:
        result = docs.validate(frame, suite, suite_name)
    for item in result.results:
        if item.success:
            continue
        config = item.expectation_config
        meta = config.meta or {}
        column = meta.get("column", config.kwargs.get("column") or config.kwargs.get("column_B"))
        check, failed_file = meta.get("check", config.type), meta.get("file", file)
        if item.exception_info and item.exception_info.get("raised_exception"):
            raise RuntimeError(f"{failed_file} {check} [{column}] could not be evaluated: "
                               f"{item.exception_info.get('exception_message')}")
        yield failed_file, check, column, meta, list(zip(item.result.get("unexpected_index_list") or [],
                                                         item.result.get("unexpected_list") or []))
