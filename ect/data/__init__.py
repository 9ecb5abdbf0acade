"""Dataset folders: scanning, validation, splitting, fingerprinting and a synthetic generator.

The input pipelines are imported explicitly: tf.data in ect.data.pipeline (TensorFlow), the array pipeline of the
JAX and PyTorch backends in ect.data.arrays (no TensorFlow).
"""

from ect.data.folder import (
    IMAGE_EXTENSIONS,
    DatasetIndex,
    ImageFile,
    Split,
    fingerprint,
    scan_dataset,
    split_dataset,
)
from ect.data.synthetic import make_synthetic_dataset

__all__ = [
    "IMAGE_EXTENSIONS",
    "DatasetIndex",
    "ImageFile",
    "Split",
    "fingerprint",
    "make_synthetic_dataset",
    "scan_dataset",
    "split_dataset",
]
