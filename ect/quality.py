"""Is a trained binary classifier's quality worth comparing? A model that calls every validation image one class
scores accuracy = the share of that class and, when the class is the positive one, a respectable-looking F1
(0.667 on a balanced set): such numbers say nothing of quality. Read from the validation metrics a run records
(metrics.json, history.csv and the processed runs all name them val_accuracy, val_precision, val_recall); neither
keeps a confusion matrix, so the predicted classes are read off these three."""

from __future__ import annotations

from typing import Mapping

from ect.numbers import finite

ONE_CLASS_NOTE = ("predicted one class: their accuracy and F1 say nothing of quality; left out of the Pareto front "
                  "and the F1 statistics")
_TOLERANCE = 1e-6  # Keras computes the metrics in float32


def _equal(a: float, b: float) -> bool:
    return abs(a - b) <= _TOLERANCE


def one_class_reason(metrics: Mapping) -> str | None:
    """Why the run's validation metrics show a model that predicts one class, or None (also where the metrics are
    missing). With every image called positive, recall is 1 and precision equals accuracy (both the positive share);
    recall 1 and precision = accuracy otherwise only holds for a perfect model (precision 1). Recall 0 or precision
    0 means no positive image was recognised (Keras reports precision 0 when nothing was called positive)."""
    precision, recall = finite(metrics.get("val_precision")), finite(metrics.get("val_recall"))
    accuracy = finite(metrics.get("val_accuracy"))
    if recall is not None and _equal(recall, 1) and precision is not None and accuracy is not None \
            and _equal(precision, accuracy) and precision < 1 - _TOLERANCE:
        return f"validation recall 1 and precision {precision:.4g} = accuracy: every validation image called positive"
    if (recall is not None and _equal(recall, 0)) or (precision is not None and _equal(precision, 0)):
        shown = ", ".join(f"{name} {value:.4g}" for name, value in
                          (("recall", recall), ("precision", precision), ("accuracy", accuracy)) if value is not None)
        return f"validation {shown}: every positive validation image called negative"
    return None


def predicts_one_class(metrics: Mapping) -> bool:
    """Whether the run's validation metrics (val_accuracy, val_precision, val_recall) show one predicted class."""
    return one_class_reason(metrics) is not None
