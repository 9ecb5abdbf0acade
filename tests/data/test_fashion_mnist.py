"""Tests for ect.data.fashion_mnist: the IDX reader, the dataset writer, and Debian's real files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import run_ect
from ect.data import fingerprint, scan_dataset
from ect.data.fashion_mnist import (
    DEFAULT_IDX_DIR,
    IMAGES_MAGIC,
    LABELS_MAGIC,
    make_fashion_mnist_dataset,
    parse_classes,
    read_idx,
    read_part,
)
from ect.errors import DatasetError


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    header = magic.to_bytes(4, "big") + b"".join(dimension.to_bytes(4, "big") for dimension in array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, magic: int) -> Path:
    data = idx_bytes(array, magic)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as stream:
            stream.write(data)
    else:
        path.write_bytes(data)
    return path


def write_idx_folder(folder: Path, per_class: int = 6, compressed: bool = True) -> Path:
    """train and t10k parts with labels 0-9, `per_class` of each label per part; every image is filled with
    a value that encodes its part, label and number, so that tests can tell which ones were chosen."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if compressed else ""
    for part_number, part in enumerate(("train", "t10k")):
        labels = np.repeat(np.arange(10), per_class)
        values = (part_number * 100 + np.arange(len(labels))) % 256
        images = np.broadcast_to(values[:, None, None], (len(labels), 28, 28))
        write_idx(folder / f"{part}-images-idx3-ubyte{suffix}", images, IMAGES_MAGIC)
        write_idx(folder / f"{part}-labels-idx1-ubyte{suffix}", labels, LABELS_MAGIC)
    return folder


# --- read_idx -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["images-idx3-ubyte", "images-idx3-ubyte.gz"])
def test_read_idx_reads_plain_and_gzip_files(tmp_path, name):
    images = np.arange(2 * 3 * 4).reshape(2, 3, 4)
    path = write_idx(tmp_path / name, images, IMAGES_MAGIC)

    array = read_idx(path, IMAGES_MAGIC)

    assert array.shape == (2, 3, 4) and array.dtype == np.uint8
    assert (array == images).all()


def test_read_idx_refuses_a_bad_magic_number_naming_the_file(tmp_path):
    path = write_idx(tmp_path / "labels-idx1-ubyte", np.arange(5), LABELS_MAGIC)
    with pytest.raises(DatasetError) as error:
        read_idx(path, IMAGES_MAGIC)
    message = str(error.value)
    assert str(path) in message and "0x00000801" in message and "expected 0x00000803" in message


def test_read_idx_refuses_a_truncated_file(tmp_path):
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((3, 4, 4)), IMAGES_MAGIC)[:-5])
    with pytest.raises(DatasetError, match=f"{path} has 59 bytes, expected 64 .*3 x 4 x 4"):
        read_idx(path, IMAGES_MAGIC)


def test_read_idx_refuses_a_file_that_is_not_gzip(tmp_path):
    path = tmp_path / "images-idx3-ubyte.gz"
    path.write_bytes(idx_bytes(np.zeros((1, 2, 2)), IMAGES_MAGIC))
    with pytest.raises(DatasetError, match=f"cannot read IDX file {path}"):
        read_idx(path, IMAGES_MAGIC)


def test_read_part_refuses_a_label_count_that_differs_from_the_image_count(tmp_path):
    folder = write_idx_folder(tmp_path / "idx")
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(7) % 10, LABELS_MAGIC)
    with pytest.raises(DatasetError, match="has 60 images but .*train-labels-idx1-ubyte.gz has 7 labels"):
        read_part(folder, "train")


def test_read_part_reads_unpacked_files_too(tmp_path):
    part = read_part(write_idx_folder(tmp_path / "idx", per_class=2, compressed=False), "t10k")
    assert part.images.shape == (20, 28, 28) and list(part.labels[:3]) == [0, 0, 1]


def test_missing_files_say_how_to_install_them(tmp_path):
    with pytest.raises(DatasetError, match="not found in .*apt-get install dataset-fashion-mnist.*--idx-dir"):
        make_fashion_mnist_dataset(tmp_path / "data", idx_dir=tmp_path / "nowhere")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("text", "classes"), [("2,4", (2, 4)), ("Pullover, coat", (2, 4)), ("t-shirt,6", (0, 6))])
def test_parse_classes_takes_numbers_and_names(text, classes):
    assert parse_classes(text) == classes


@pytest.mark.parametrize("text", ["2", "2,2", "2,10", "2,hat", "1,2,3"])
def test_parse_classes_refuses_anything_but_two_different_classes(text):
    with pytest.raises(DatasetError, match="expected"):
        parse_classes(text)


# --- make_fashion_mnist_dataset -------------------------------------------------------------


def test_writes_a_balanced_folder_of_rgb_images_that_the_scanner_accepts(tmp_path):
    idx_dir = write_idx_folder(tmp_path / "idx")

    index = make_fashion_mnist_dataset(tmp_path / "data", classes=(2, 4), images=9, size=20, idx_dir=idx_dir)

    rescanned = scan_dataset(tmp_path / "data")
    assert rescanned.class_names == index.class_names == ("coat", "pullover")
    assert fingerprint(rescanned)["class_counts"] == {"pullover": 5, "coat": 4}  # the first class takes the odd one
    for image_file in rescanned.files:
        with Image.open(image_file.path) as image:
            assert image.size == (20, 20) and image.mode == "RGB"
    # Every pullover written is a pullover of the pool: train values 12-17, t10k values 112-117.
    values = {int(np.asarray(Image.open(f.path))[0, 0, 0]) for f in rescanned.files if f.label == 1}
    assert values <= set(range(12, 18)) | set(range(112, 118))
    assert [entry.name for entry in tmp_path.iterdir() if entry.name != "idx"] == ["data"]  # no temporary left


def test_same_seed_same_fingerprint(tmp_path):
    idx_dir = write_idx_folder(tmp_path / "idx")

    def fingerprint_of(name: str, seed: int) -> str:
        return fingerprint(make_fashion_mnist_dataset(tmp_path / name, images=8, size=16, seed=seed,
                                                      idx_dir=idx_dir))["sha256"]

    first = fingerprint_of("a", 1)
    assert fingerprint_of("b", 1) == first
    assert fingerprint_of("c", 2) != first


def test_refuses_more_images_than_a_class_has(tmp_path):
    idx_dir = write_idx_folder(tmp_path / "idx", per_class=2)  # 4 pullovers in train + t10k
    with pytest.raises(DatasetError, match="has 4 images of class pullover, 5 asked for"):
        make_fashion_mnist_dataset(tmp_path / "data", images=10, idx_dir=idx_dir)
    assert not (tmp_path / "data").exists()


def test_refuses_a_non_empty_folder_unless_forced(tmp_path):
    idx_dir = write_idx_folder(tmp_path / "idx")
    root = tmp_path / "data"
    root.mkdir()
    (root / "keep.txt").write_text("old")
    with pytest.raises(DatasetError, match="already exists.*force"):
        make_fashion_mnist_dataset(root, images=4, size=8, idx_dir=idx_dir)
    assert (root / "keep.txt").exists()

    index = make_fashion_mnist_dataset(root, images=4, size=8, idx_dir=idx_dir, force=True)
    assert len(index.files) == 4 and not (root / "keep.txt").exists()


def test_make_dataset_command_writes_fashion_mnist(tmp_path):
    idx_dir = write_idx_folder(tmp_path / "idx")
    result = run_ect("make-dataset", "fashion", "--source", "fashion-mnist", "--classes", "0,6", "--images", "6",
                     "--idx-dir", str(idx_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 6 images (3 shirt, 3 t-shirt) of 32x32 pixels" in result.stdout

    missing = run_ect("make-dataset", "other", "--source", "fashion-mnist", "--idx-dir", str(tmp_path / "no"),
                      cwd=tmp_path)
    assert missing.returncode == 2 and "apt-get install dataset-fashion-mnist" in missing.stderr


# --- Debian's files -------------------------------------------------------------------------


@pytest.mark.fashion_mnist
def test_debian_package_files(tmp_path):
    train = read_part(DEFAULT_IDX_DIR, "train")
    assert train.images.shape == (60000, 28, 28)
    assert np.bincount(train.labels).tolist() == [6000] * 10

    index = make_fashion_mnist_dataset(tmp_path / "data", images=40, size=32)
    assert fingerprint(index)["class_counts"] == {"coat": 20, "pullover": 20}
