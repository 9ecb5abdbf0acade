"""Trained models on disk: MODELS_DIR/<environment>/<architecture>/<run id>/model.keras and model-summary.txt.

`ect train` and every profiled run (after its measurement window) save their model here; MLflow
tracking logs it from here. A crash never leaves a model.keras that looks complete.
"""

from __future__ import annotations

from pathlib import Path

from ect.raw.atomic import atomic_path
from ect.raw.layout import RunKey
from ect.raw.manifest import Manifest

MODEL_FILE = "model.keras"
SUMMARY_FILE = "model-summary.txt"


def save_model(model, folder: Path) -> Path:
    """Writes model-summary.txt, then model.keras through a temporary name; returns the model's path."""
    folder.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    model.summary(print_fn=lambda line, *args, **kwargs: lines.append(line))
    (folder / SUMMARY_FILE).write_text("\n".join(lines) + "\n")
    with atomic_path(folder / MODEL_FILE) as partial:  # the temporary name keeps the .keras suffix Keras insists on
        model.save(partial)
    return folder / MODEL_FILE


def keep_model(model, models_dir: Path, key: RunKey, enabled: bool) -> dict:
    """A profiled run's model, saved after the measurement; what the manifest records as `model`.

    Never raises: a model that cannot be saved costs no measurement, and the reason is recorded.
    """
    if not enabled:
        return {"file": None, "reason": "SAVE_MODELS is false"}
    folder = key.folder(models_dir)
    try:
        path = save_model(model, folder)
    except Exception as error:
        return {"file": None, "error": f"{type(error).__name__}: {error}", "folder": str(folder)}
    return {"file": path.relative_to(models_dir).as_posix(), "bytes": path.stat().st_size}


def find_model(models_dir: Path, manifest: Manifest, folder: Path) -> Path | None:
    """The model file of a run folder's manifest (relative to MODELS_DIR), else model.keras in the folder."""
    recorded = (manifest.model or {}).get("file")
    for path in ([Path(models_dir) / recorded] if recorded else []) + [Path(folder) / MODEL_FILE]:
        if path.is_file():
            return path
    return None
