"""A real labelled image set without a download: two classes of Fashion-MNIST, from Debian's
`dataset-fashion-mnist` package (MIT licence), written as a binary dataset folder of RGB PNGs.

The package holds the original IDX files (train and t10k, images and labels, gzip-compressed). Both parts are
pooled (7,000 images per class), a seeded random, balanced subset is drawn, and each 28x28 grey image is resized
to SIZE x SIZE and stored as RGB (the architectures take three channels).
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ect.data.folder import DatasetIndex, scan_dataset
from ect.data.synthetic import check_request, remove, replace_folder
from ect.errors import DatasetError
from ect.raw.atomic import remove_stale_temporaries, temporary_name

log = logging.getLogger(__name__)

DEFAULT_IDX_DIR = Path("/usr/share/datasets/fashion-mnist")  # where Debian's dataset-fashion-mnist puts them
PARTS = ("train", "t10k")
IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions (count, rows, columns)
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension (count)
# Folder names of the ten labels, in label order (Fashion-MNIST's README).
CLASS_NAMES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
# Pullover vs coat: both long-sleeved tops that differ in texture and detail (buttons, zips, collars), not in
# outline, so a binary classifier has to learn more than the silhouette (which alone separates t-shirt and trouser)
# while staying learnable in a few CPU epochs (shirt vs t-shirt is the hardest pair and needs more).
DEFAULT_CLASSES = (2, 4)
PROGRESS_EVERY = 1000
INSTALL_HINT = "install Debian's package (apt-get install dataset-fashion-mnist) or pass --idx-dir"


@dataclass(frozen=True)
class LabelledImages:
    images: np.ndarray  # (count, rows, columns) uint8
    labels: np.ndarray  # (count,) uint8


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """The array of an IDX file of unsigned bytes (gzip-compressed when its name ends in .gz)."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            data = stream.read()
    except (OSError, EOFError) as error:  # gzip raises BadGzipFile (an OSError) or EOFError on a damaged file
        if isinstance(error, FileNotFoundError):
            raise DatasetError(f"IDX file not found: {path}; {INSTALL_HINT}") from None
        raise DatasetError(f"cannot read IDX file {path}: {error}") from None

    dimensions = magic & 0xFF
    header_size = 4 + 4 * dimensions
    found = int.from_bytes(data[:4], "big") if len(data) >= 4 else None
    if found != magic:
        found_text = f"0x{found:08x}" if found is not None else f"a {len(data)}-byte file"
        raise DatasetError(f"{path} is not an IDX file of the expected kind: magic number {found_text}, expected "
                           f"0x{magic:08x} (unsigned bytes, {dimensions} dimension(s))")
    if len(data) < header_size:
        raise DatasetError(f"{path} is truncated: {len(data)} bytes, shorter than its {header_size}-byte header")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dimensions))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        raise DatasetError(f"{path} has {len(data)} bytes, expected {expected} for its header and "
                           f"{' x '.join(map(str, shape))} values")
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def idx_file(idx_dir: Path, name: str) -> Path:
    """idx_dir/NAME.gz, else idx_dir/NAME (an unpacked copy)."""
    for candidate in (idx_dir / f"{name}.gz", idx_dir / name):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"Fashion-MNIST file {name}[.gz] not found in {idx_dir}; {INSTALL_HINT}")


def read_part(idx_dir: str | Path, part: str) -> LabelledImages:
    """The images and labels of one part (train or t10k) of an IDX folder, checked against each other."""
    idx_dir = Path(idx_dir)
    images_path = idx_file(idx_dir, f"{part}-images-idx3-ubyte")
    labels_path = idx_file(idx_dir, f"{part}-labels-idx1-ubyte")
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
                           "expected one label per image")
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise DatasetError(f"{labels_path} has label {labels.max()}, expected 0-{len(CLASS_NAMES) - 1}")
    return LabelledImages(images=images, labels=labels)


def parse_classes(text: str) -> tuple[int, int]:
    """"2,4" or "pullover,coat" -> (2, 4)."""
    parts = [part.strip().lower() for part in text.split(",")]
    classes = []
    for part in parts:
        if part.isdigit() and int(part) < len(CLASS_NAMES):
            classes.append(int(part))
        elif part in CLASS_NAMES:
            classes.append(CLASS_NAMES.index(part))
        else:
            raise DatasetError(f"unknown Fashion-MNIST class {part!r} in {text!r}: expected 0-9 or one of "
                               f"{', '.join(CLASS_NAMES)}")
    if len(classes) != 2 or classes[0] == classes[1]:
        raise DatasetError(f"--classes {text!r}: expected two different classes, e.g. 2,4 (pullover, coat)")
    return classes[0], classes[1]


def make_fashion_mnist_dataset(
    root: str | Path,
    classes: tuple[int, int] = DEFAULT_CLASSES,
    images: int = 2000,
    size: int = 32,
    seed: int = 0,
    idx_dir: str | Path = DEFAULT_IDX_DIR,
    force: bool = False,
) -> DatasetIndex:
    """Write `images` PNGs of two Fashion-MNIST classes (half each; the first gets the odd one) to root, e.g.
    root/pullover/pullover_0001.png, and return its index. The same arguments write the same bytes."""
    root = Path(root)
    if len(classes) != 2 or classes[0] == classes[1] or not all(0 <= c < len(CLASS_NAMES) for c in classes):
        raise DatasetError(f"classes {classes}: expected two different labels between 0 and {len(CLASS_NAMES) - 1}")
    check_request("Fashion-MNIST", root, images, size, force)

    parts = [read_part(idx_dir, part) for part in PARTS]
    pool = LabelledImages(images=np.concatenate([p.images for p in parts]),
                          labels=np.concatenate([p.labels for p in parts]))
    counts = (images - images // 2, images // 2)
    chosen = choose(pool, classes, counts, seed, Path(idx_dir))

    # Built next to root and renamed into place, as the synthetic set: an interrupted run never leaves a folder
    # that looks like a complete dataset.
    root.parent.mkdir(parents=True, exist_ok=True)
    for name in (root.name, f"{root.name}.old"):
        remove_stale_temporaries(root.parent, name)
    temporary = root.parent / temporary_name(root.name)
    remove(temporary)
    try:
        write_images(temporary, pool, classes, chosen, size)
        replace_folder(temporary, root)
    except BaseException:
        remove(temporary)
        raise
    return scan_dataset(root, progress=False)


def choose(pool: LabelledImages, classes: tuple[int, int], counts: tuple[int, int], seed: int,
           idx_dir: Path) -> list[np.ndarray]:
    """Per class, `count` indices into the pool, drawn without replacement by a seeded generator, in pool order."""
    rng = np.random.default_rng(seed)
    chosen = []
    for label, count in zip(classes, counts):
        available = np.flatnonzero(pool.labels == label)
        if count > len(available):
            raise DatasetError(f"{idx_dir} has {len(available)} images of class {CLASS_NAMES[label]}, "
                               f"{count} asked for (--images {sum(counts)}: half per class)")
        chosen.append(np.sort(rng.choice(available, size=count, replace=False)))
    return chosen


def write_images(folder: Path, pool: LabelledImages, classes: tuple[int, int], chosen: list[np.ndarray],
                 size: int) -> None:
    total = sum(len(indices) for indices in chosen)
    digits = len(str(total))
    written = 0
    for label, indices in zip(classes, chosen):
        class_name = CLASS_NAMES[label]
        class_folder = folder / class_name
        class_folder.mkdir(parents=True)
        for number, index in enumerate(indices):
            image = Image.fromarray(pool.images[index])  # 2-D uint8: mode L
            if size != image.width:
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            image.convert("RGB").save(class_folder / f"{class_name}_{number:0{digits}d}.png")
            written += 1
            if written % PROGRESS_EVERY == 0:
                log.info("wrote %d/%d Fashion-MNIST images to %s", written, total, folder)
