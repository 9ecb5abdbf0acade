"""The original's per-run model quality (its interim model_metrics Parquet: index train_environment, architecture, run;
columns split number, training size, validation size, batch size, GFLOPs, accuracy, precision, recall, AUC, trained
epochs, total seen images, f1-score), attached to imported runs as their metrics.json, so that energy per image, the
F1 statistics and the Pareto front work on imported data.

Runs are matched on environment, architecture and run number (the repetition the importer gave them); rows without
a run and runs without a row are reported. A run that has a metrics.json keeps it.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

from ect.errors import LegacyImportError
from ect.raw.atomic import write_json
from ect.raw.layout import METRICS_FILE, RunKey, find_runs
from ect.raw.manifest import read_manifest

log = logging.getLogger(__name__)

KEY_COLUMNS = ("train_environment", "architecture", "run")
# The original's column -> metrics.json's key (the names `ect train` writes).
COLUMNS = {
    "accuracy": "val_accuracy", "precision": "val_precision", "recall": "val_recall", "AUC": "val_auc",
    "f1-score": "val_f1", "GFLOPs": "gflops", "trained epochs": "trained_epochs",
    "total seen images": "images_seen", "training size": "train_images", "validation size": "validation_images",
    "batch size": "batch_size", "split number": "split_number",
}
INTEGERS = {"trained_epochs", "images_seen", "train_images", "validation_images", "batch_size", "split_number"}
ASSUMPTION = "the original's accuracy, precision, recall, AUC and f1-score are of its validation split"


def read_model_metrics(path: Path):
    """The model_metrics table with its key as columns; LegacyImportError naming what is missing."""
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as error:
        raise LegacyImportError(f"--model-metrics {path}: cannot be read as Parquet ({error})") from None
    frame = frame.reset_index() if set(KEY_COLUMNS) - set(frame.columns) else frame
    missing = [c for c in (*KEY_COLUMNS, *COLUMNS) if c not in frame.columns]
    if missing:
        raise LegacyImportError(f"--model-metrics {path}: no column(s) {', '.join(missing)}; expected the index "
                                f"{', '.join(KEY_COLUMNS)} and the columns {', '.join(COLUMNS)}")
    return frame


def _value(key: str, value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value) if key in INTEGERS else float(value)


def attach_model_metrics(frame, raw: Path, source: Path) -> tuple[int, list[str]]:
    """Writes metrics.json into each imported run under raw that has a row; returns (runs given metrics, the rows
    that matched no run)."""
    runs = {}
    for folder in find_runs(raw):
        manifest = read_manifest(folder)
        if manifest is not None and manifest.source == "legacy-import":
            runs[(manifest.environment, manifest.architecture, manifest.repetition)] = folder
    attached, unmatched, matched = 0, [], set()
    for row in frame.to_dict("records"):
        run = (str(row["train_environment"]), str(row["architecture"]), int(row["run"]))
        folder = runs.get(run)
        if folder is None:
            unmatched.append(f"{run[0]}/{run[1]} run {run[2]}")
            continue
        matched.add(run)
        if (folder / METRICS_FILE).exists():
            log.info(f"{RunKey.of_folder(folder)} has a {METRICS_FILE} already; kept")
            continue
        metrics = {key: _value(key, row[column]) for column, key in COLUMNS.items()}
        write_json(folder / METRICS_FILE, {**metrics, "source": f"the original's model_metrics ({Path(source).name})",
                                           "assumption": ASSUMPTION})
        attached += 1
    without = sorted(f"{e}/{a} run {r}" for e, a, r in set(runs) - matched)
    log.info(f"model metrics from {source}: {attached} run(s) given a {METRICS_FILE}, {len(unmatched)} row(s) "
             f"without an imported run, {len(without)} imported run(s) without a row")
    for line in unmatched:
        log.warning(f"model metrics: no imported run for {line}")
    if without:
        log.warning(f"model metrics: no row for {', '.join(without[:10])}" + (" ..." if len(without) > 10 else ""))
    return attached, unmatched
