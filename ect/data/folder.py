"""Scan, validate, split and fingerprint a binary image-classification folder.

Layout: ROOT/<class_a>/*.png|jpg|jpeg and ROOT/<class_b>/*.png|jpg|jpeg.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ect.errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
# Pillow formats that tf.io.decode_image can also read; a PNG/JPEG name is no guarantee.
DECODABLE_FORMATS = frozenset({"PNG", "JPEG", "MPO", "GIF", "BMP", "WEBP"})
PROGRESS_MIN_FILES = 2000
PROGRESS_EVERY = 1000
MAX_PROBLEMS_LISTED = 5


@dataclass(frozen=True)
class ImageFile:
    path: Path
    label: int  # index into DatasetIndex.class_names


@dataclass(frozen=True)
class DatasetIndex:
    root: Path
    class_names: tuple[str, str]
    files: tuple[ImageFile, ...]
    skipped: tuple[tuple[Path, str], ...]


@dataclass(frozen=True)
class Split:
    train: tuple[ImageFile, ...]
    validation: tuple[ImageFile, ...]

    def check_not_empty(self) -> None:
        """Both sides hold images; DatasetError naming the empty one (an input pipeline needs both)."""
        if not self.train:
            raise DatasetError("the training split is empty; no images to train on")
        if not self.validation:
            raise DatasetError("the validation split is empty; no images to validate on")


def is_hidden(path: Path) -> bool:
    return path.name.startswith(".")


def scan_dataset(
    root: str | Path,
    skip_corrupt: bool = False,
    progress: bool = True,
) -> DatasetIndex:
    """Index and validate every image; raise DatasetError on bad input.

    With skip_corrupt=True, non-image entries and undecodable images are skipped
    (logged as warnings and recorded in `skipped`) instead of failing the scan.
    """
    root = Path(root)
    if not root.exists():
        raise DatasetError(f"dataset folder not found: {root}")
    if not root.is_dir():
        raise DatasetError(f"dataset path is not a folder: {root}")

    class_dirs = sorted(entry for entry in root.iterdir() if entry.is_dir() and not is_hidden(entry))
    if len(class_dirs) != 2:
        names = ", ".join(entry.name for entry in class_dirs) or "none"
        raise DatasetError(
            f"dataset folder {root} has {len(class_dirs)} class sub-folders ({names}); "
            f"exactly two are expected, one per class"
        )

    entries_per_class = [
        sorted(entry for entry in class_dir.iterdir() if not is_hidden(entry)) for class_dir in class_dirs
    ]
    total = sum(len(entries) for entries in entries_per_class)
    show_progress = progress and total > PROGRESS_MIN_FILES

    files: list[ImageFile] = []
    problems: list[tuple[Path, str]] = []
    checked = 0
    for label, entries in enumerate(entries_per_class):
        for entry in entries:
            problem = image_problem(entry)
            if problem is None:
                files.append(ImageFile(path=entry, label=label))
            else:
                problems.append((entry, problem))
            checked += 1
            if show_progress and checked % PROGRESS_EVERY == 0:
                log.info("checked %d/%d files in %s", checked, total, root)

    if problems and not skip_corrupt:
        raise DatasetError(problems_message(problems))
    for path, reason in problems:
        log.warning("skipping %s: %s", path, reason)

    for label, class_dir in enumerate(class_dirs):
        if not any(image_file.label == label for image_file in files):
            skipped_here = sum(1 for path, _ in problems if path.parent == class_dir)
            after_skipping = f" after skipping {skipped_here} bad file(s)" if skipped_here else ""
            raise DatasetError(
                f"class folder has no images{after_skipping}: {class_dir} "
                f"(expected {', '.join(IMAGE_EXTENSIONS)} files directly inside it)"
            )

    return DatasetIndex(
        root=root,
        class_names=(class_dirs[0].name, class_dirs[1].name),
        files=sort_files(files, root),
        skipped=tuple(problems),
    )


def image_problem(path: Path) -> str | None:
    """Why `path` is not a usable image, or None if it is one."""
    if path.is_dir():
        return "sub-folder inside a class folder (expected only image files, no nesting)"
    if path.suffix.lower() not in IMAGE_EXTENSIONS:
        return f"non-image file (expected extension {', '.join(IMAGE_EXTENSIONS)})"
    try:
        with Image.open(path) as image:
            image_format = image.format
            image.load()
    except Exception as error:  # Pillow raises many types for bad files
        return f"corrupt image (cannot decode: {error})"
    if image_format not in DECODABLE_FORMATS:
        return f"unsupported image format {image_format} (expected PNG or JPEG content)"
    return None


def problems_message(problems: list[tuple[Path, str]]) -> str:
    lines = [f"{path}: {reason}" for path, reason in problems[:MAX_PROBLEMS_LISTED]]
    if len(problems) > MAX_PROBLEMS_LISTED:
        lines.append(f"... and {len(problems) - MAX_PROBLEMS_LISTED} more")
    return (
        f"{len(problems)} bad file(s) in the dataset:\n  "
        + "\n  ".join(lines)
        + "\nremove them, or skip them with --skip-corrupt (SKIP_CORRUPT_IMAGES: true)"
    )


def class_counts(index: DatasetIndex) -> dict[str, int]:
    counts = {name: 0 for name in index.class_names}
    for image_file in index.files:
        counts[index.class_names[image_file.label]] += 1
    return counts


def split_dataset(index: DatasetIndex, validation_split: float, seed: int) -> Split:
    """Deterministic stratified split: each class contributes round(n * validation_split)."""
    if not 0 < validation_split < 1:
        raise DatasetError(f"validation_split must be between 0 and 1 (exclusive), got {validation_split}")

    train: list[ImageFile] = []
    validation: list[ImageFile] = []
    for label, class_name in enumerate(index.class_names):
        class_files = [image_file for image_file in index.files if image_file.label == label]
        # Seeding per class keeps one class's split independent of the other's size.
        random.Random(f"{seed}:{class_name}").shuffle(class_files)
        validation_count = round(len(class_files) * validation_split)
        validation.extend(class_files[:validation_count])
        train.extend(class_files[validation_count:])

    empty_part = "training" if not train else "validation" if not validation else None
    if empty_part:
        counts = ", ".join(f"{name}={count}" for name, count in class_counts(index).items())
        raise DatasetError(
            f"the {empty_part} split is empty: class counts {counts} with validation_split="
            f"{validation_split} leave no {empty_part} images; add more images per class "
            f"or choose a different validation split"
        )

    return Split(train=sort_files(train, index.root), validation=sort_files(validation, index.root))


def sort_files(files: list[ImageFile], root: Path) -> tuple[ImageFile, ...]:
    return tuple(sorted(files, key=lambda image_file: (image_file.label, image_file.path.relative_to(root).as_posix())))


def fingerprint(index: DatasetIndex) -> dict:
    """Class counts plus a sha256 over every file's relative path and content."""
    digest = hashlib.sha256()
    for image_file in index.files:
        relative = image_file.path.relative_to(index.root).as_posix()
        # The size keeps the byte stream unambiguous (one file's bytes can't pose as the next name).
        size = image_file.path.stat().st_size
        digest.update(f"{relative}\0{size}\0".encode())
        with open(image_file.path, "rb") as stream:
            for chunk in iter(lambda: stream.read(1 << 20), b""):
                digest.update(chunk)
    return {
        "class_counts": class_counts(index),
        "total_files": len(index.files),
        "skipped_files": len(index.skipped),
        "sha256": digest.hexdigest(),
    }
