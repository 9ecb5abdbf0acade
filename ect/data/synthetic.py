"""A small, deterministic, learnable dataset: filled circles versus filled squares."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from ect.data.folder import DatasetIndex, scan_dataset
from ect.errors import DatasetError
from ect.raw.atomic import remove_stale_temporaries, temporary_name

CLASS_NAMES = ("circles", "squares")
MIN_IMAGES = 4
MIN_SIZE = 8
SHAPE_MIN_FRACTION = 0.35  # shape diameter / side as a fraction of the image side
SHAPE_MAX_FRACTION = 0.65
NOISE_STDDEV = 6.0
BACKGROUND_MAX = 80  # per channel: backgrounds are dark colours ...
FOREGROUND_MIN = 175  # ... and shapes bright ones


def check_request(source: str, root: Path, images: int, size: int, force: bool) -> None:
    """The checks every dataset writer makes before it writes: enough images, a usable size, no folder replaced
    unasked."""
    if images < MIN_IMAGES:
        raise DatasetError(f"{source} dataset needs at least {MIN_IMAGES} images, got {images}")
    if size < MIN_SIZE:
        raise DatasetError(f"{source} image size must be at least {MIN_SIZE} pixels, got {size}")
    if is_non_empty(root) and not force:
        raise DatasetError(f"dataset folder {root} already exists; pass force=True / --force to replace it")

def make_synthetic_dataset(
    root: str | Path,
    images: int = 200,
    size: int = 64,
    seed: int = 0,
    force: bool = False,
) -> DatasetIndex:
    """Write `images` PNGs (half circles, half squares) to root and return its index."""
    root = Path(root)
    check_request("synthetic", root, images, size, force)

    # Built next to root and renamed into place, so an interrupted run never leaves
    # a folder that looks like a complete dataset.
    root.parent.mkdir(parents=True, exist_ok=True)
    for name in (root.name, f"{root.name}.old"):  # what a killed make-dataset left
        remove_stale_temporaries(root.parent, name)
    temporary = root.parent / temporary_name(root.name)
    remove(temporary)
    try:
        write_images(temporary, images, size, seed)
        replace_folder(temporary, root)
    except BaseException:
        remove(temporary)
        raise
    return scan_dataset(root, progress=False)


def is_non_empty(path: Path) -> bool:
    if path.is_dir():
        return any(path.iterdir())
    return path.exists() or path.is_symlink()


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def replace_folder(new: Path, target: Path) -> None:
    """Move `new` to `target`; an old target is deleted only once `new` is in place."""
    if not is_non_empty(target):
        remove(target)
        os.replace(new, target)
        return
    old = target.parent / temporary_name(f"{target.name}.old")
    remove(old)
    os.replace(target, old)
    os.replace(new, target)
    remove(old)


def write_images(folder: Path, images: int, size: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    circle_count = images - images // 2
    counts = {"circles": circle_count, "squares": images // 2}
    digits = len(str(images))
    for class_name in CLASS_NAMES:
        class_folder = folder / class_name
        class_folder.mkdir(parents=True)
        for number in range(counts[class_name]):
            pixels = draw_shape(rng, class_name, size)
            Image.fromarray(pixels).save(class_folder / f"{class_name[:-1]}_{number:0{digits}d}.png")


def draw_shape(rng: np.random.Generator, class_name: str, size: int) -> np.ndarray:
    """One size x size RGB uint8 image: a filled shape on a plain background, plus noise."""
    # Always a bright shape on a dark background: with a random light/dark polarity a
    # small CNN needs far more images and epochs to pick up the shape.
    background = rng.integers(0, BACKGROUND_MAX + 1, size=3)
    foreground = rng.integers(FOREGROUND_MIN, 256, size=3)

    extent = rng.uniform(SHAPE_MIN_FRACTION, SHAPE_MAX_FRACTION) * size
    left = rng.uniform(0, size - extent)
    top = rng.uniform(0, size - extent)
    rows, columns = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    if class_name == "circles":
        radius = extent / 2
        mask = (columns - left - radius) ** 2 + (rows - top - radius) ** 2 <= radius**2
    else:
        mask = (columns >= left) & (columns < left + extent) & (rows >= top) & (rows < top + extent)

    image = np.where(mask[..., None], foreground, background).astype(np.float64)
    image += rng.normal(0.0, NOISE_STDDEV, size=image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
