"""Trained models on disk: MODELS_DIR/<environment>/<architecture>/<run id>/model.keras and model-summary.txt.

`ect train` and every profiled run (after its measurement window) save their model here; MLflow
tracking logs it from here. A crash never leaves a model.keras that looks complete.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_FILE = "model.keras"
SUMMARY_FILE = "model-summary.txt"


def model_folder(models_dir: Path, environment: str, architecture: str, run_id: str) -> Path:
    return Path(models_dir) / environment / architecture / run_id


def save_model(model, folder: Path) -> Path:
    """Writes model-summary.txt, then model.keras through a temporary name; returns the model's path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    (folder / SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    partial = folder / f".partial-{os.getpid()}-{MODEL_FILE}"  # Keras insists on the .keras suffix
    try:
        model.save(partial)
        os.replace(partial, folder / MODEL_FILE)
    finally:
        partial.unlink(missing_ok=True)
    return folder / MODEL_FILE


def keep_model(model, models_dir: Path, environment: str, architecture: str, run_id: str, enabled: bool) -> dict:
    """A profiled run's model, saved after the measurement; what the manifest records as `model`.

    Never raises: a model that cannot be saved costs no measurement, and the reason is recorded.
    """
    if not enabled:
        return {"file": None, "reason": "SAVE_MODELS is false"}
    folder = model_folder(models_dir, environment, architecture, run_id)
    try:
        path = save_model(model, folder)
    except Exception as error:
        return {"file": None, "error": f"{type(error).__name__}: {error}", "folder": str(folder)}
    return {"file": path.relative_to(models_dir).as_posix(), "bytes": path.stat().st_size}


def find_model(models_dir: Path, manifest: dict, folder: Path) -> Path | None:
    """The model file of a run folder's manifest (relative to MODELS_DIR), else model.keras in the folder."""
    recorded = (manifest.get("model") or {}).get("file")
    for path in ([Path(models_dir) / recorded] if recorded else []) + [Path(folder) / MODEL_FILE]:
        if path.is_file():
            return path
    return None
