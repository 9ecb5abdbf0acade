"""Which validation metrics show a model that predicts one class."""

import math

import numpy as np
import pytest

from ect.numbers import finite
from ect.quality import one_class_reason, predicts_one_class


def metrics(accuracy, precision, recall):
    return {"val_accuracy": accuracy, "val_precision": precision, "val_recall": recall}


def confusion_metrics(tp, fp, tn, fn):
    """The metrics Keras reports for a confusion matrix (precision 0 when nothing is called positive)."""
    return metrics((tp + tn) / (tp + fp + tn + fn), tp / (tp + fp) if tp + fp else 0.0, tp / (tp + fn))


@pytest.mark.parametrize("value, expected", [
    (0.5, 0.5), ("0.25", 0.25), (np.float32(2.0), 2.0), (3, 3.0),
    (None, None), (math.nan, None), (math.inf, None), (-math.inf, None), ("x", None), ([1], None), (True, None),
])
def test_finite_is_a_float_or_none(value, expected):
    assert finite(value) == expected


def test_every_image_called_positive_on_a_balanced_set_is_one_class():
    # Accuracy 0.5, F1 0.667: the numbers that put such a model on the Pareto front before.
    every_positive = confusion_metrics(tp=30, fp=30, tn=0, fn=0)
    assert predicts_one_class(every_positive)
    assert one_class_reason(every_positive) == ("validation recall 1 and precision 0.5 = accuracy: every validation "
                                                "image called positive")
    # float32 arithmetic leaves the last digits apart
    assert predicts_one_class(metrics(np.float32(0.4285714), np.float32(0.42857146), np.float32(0.99999994)))


def test_every_image_called_negative_is_one_class():
    assert one_class_reason(confusion_metrics(tp=0, fp=0, tn=30, fn=30)) == (
        "validation recall 0, precision 0, accuracy 0.5: every positive validation image called negative")
    assert predicts_one_class(metrics(None, 0.0, None))  # precision 0 alone says it
    assert predicts_one_class(metrics(0.4, None, 0.0))


@pytest.mark.parametrize("confusion", [
    (30, 0, 30, 0),  # perfect: recall 1, precision 1 = accuracy, both classes predicted
    (30, 10, 20, 0),  # recall 1, but some images called negative
    (20, 5, 25, 10),
    (1, 0, 30, 29),  # one positive recognised
])
def test_a_model_that_predicts_both_classes_is_not_one_class(confusion):
    assert not predicts_one_class(confusion_metrics(*confusion))
    assert one_class_reason(confusion_metrics(*confusion)) is None


def test_missing_metrics_say_nothing():
    assert not predicts_one_class({})
    assert not predicts_one_class(metrics(math.nan, math.nan, math.nan))
    assert not predicts_one_class({"val_f1": 0.667, "val_accuracy": 0.5})  # without precision and recall
    assert not predicts_one_class(metrics(None, 0.5, 1.0))  # recall 1 without accuracy: undecided
