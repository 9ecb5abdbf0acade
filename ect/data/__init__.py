"""Dataset folders: scanning, validation, splitting, fingerprinting and a synthetic generator.

The tf.data pipeline lives in ect.data.pipeline; import it explicitly (it needs TensorFlow).
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
