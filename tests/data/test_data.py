"""Tests for ect.data: folder scanning and validation, split, fingerprint, synthetic data, tf.data pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import ect.data.folder
from conftest import log_lines
from ect.data import (
    fingerprint,
    make_synthetic_dataset,
    scan_dataset,
    split_dataset,
)
from ect.errors import DatasetError


def write_png(path: Path, size: int = 8, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return path


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    for class_name, count in counts.items():
        (root / class_name).mkdir(parents=True, exist_ok=True)
        for number in range(count):
            write_png(root / class_name / f"{number:03d}.png", value=number * 10 % 256)
    return root


def test_importing_ect_data_does_not_import_tensorflow():
    code = "import sys, ect.data; assert 'tensorflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parent.parent)


# --- make_synthetic_dataset ---------------------------------------------------------------


def test_synthetic_dataset_has_balanced_classes_of_rgb_images(tmp_path):
    index = make_synthetic_dataset(tmp_path / "synthetic", images=9, size=20, seed=1)

    assert index.class_names == ("circles", "squares")
    assert fingerprint(index)["class_counts"] == {"circles": 5, "squares": 4}
    for image_file in index.files:
        with Image.open(image_file.path) as image:
            assert image.size == (20, 20)
            assert image.mode == "RGB"
    assert [entry.name for entry in tmp_path.iterdir()] == ["synthetic"]  # no temporary folder left


def test_synthetic_dataset_is_deterministic_per_seed(tmp_path):
    first = fingerprint(make_synthetic_dataset(tmp_path / "a", images=6, size=16, seed=3))
    same = fingerprint(make_synthetic_dataset(tmp_path / "b", images=6, size=16, seed=3))
    other = fingerprint(make_synthetic_dataset(tmp_path / "c", images=6, size=16, seed=4))

    assert first["sha256"] == same["sha256"]
    assert first["sha256"] != other["sha256"]


def test_synthetic_dataset_refuses_non_empty_folder_unless_forced(tmp_path):
    root = tmp_path / "synthetic"
    root.mkdir()
    (root / "keep.txt").write_text("old")

    with pytest.raises(DatasetError, match="already exists.*force"):
        make_synthetic_dataset(root, images=4, size=8)
    assert (root / "keep.txt").exists()

    index = make_synthetic_dataset(root, images=4, size=8, force=True)
    assert not (root / "keep.txt").exists()
    assert len(index.files) == 4
    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["synthetic"]


def test_synthetic_dataset_accepts_existing_empty_folder(tmp_path):
    (tmp_path / "synthetic").mkdir()
    assert len(make_synthetic_dataset(tmp_path / "synthetic", images=4, size=8).files) == 4


@pytest.mark.parametrize(("images", "size", "culprit"), [(3, 16, "at least 4 images"), (4, 7, "at least 8 pixels")])
def test_synthetic_dataset_rejects_too_small_requests(tmp_path, images, size, culprit):
    with pytest.raises(DatasetError, match=culprit):
        make_synthetic_dataset(tmp_path / "synthetic", images=images, size=size)
    assert not (tmp_path / "synthetic").exists()


# --- scan_dataset ---------------------------------------------------------------------------


def test_scan_indexes_sorted_classes_and_files(tmp_path):
    root = make_folder(tmp_path / "data", {"dogs": 2, "cats": 3})
    write_png(root / "dogs" / "UPPER.PNG")
    (root / ".hidden_folder").mkdir()
    (root / "cats" / ".DS_Store").write_bytes(b"junk")

    index = scan_dataset(root)

    assert index.class_names == ("cats", "dogs")
    assert [(f.path.relative_to(root).as_posix(), f.label) for f in index.files] == [
        ("cats/000.png", 0),
        ("cats/001.png", 0),
        ("cats/002.png", 0),
        ("dogs/000.png", 1),
        ("dogs/001.png", 1),
        ("dogs/UPPER.PNG", 1),
    ]
    assert index.skipped == ()


def test_scan_accepts_jpeg_with_any_case_extension(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 1, "b": 1})
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "b" / "photo.JPEG", format="JPEG")
    assert len(scan_dataset(root).files) == 3


def test_scan_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=f"not found: {tmp_path / 'nowhere'}"):
        scan_dataset(tmp_path / "nowhere")


def test_scan_path_is_a_file(tmp_path):
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(DatasetError, match=f"not a folder: {tmp_path / 'file.png'}"):
        scan_dataset(tmp_path / "file.png")


def test_scan_one_class_folder(tmp_path):
    root = make_folder(tmp_path / "data", {"only": 2})
    with pytest.raises(DatasetError) as error:
        scan_dataset(root)
    message = str(error.value)
    assert str(root) in message and "1 class sub-folders (only)" in message and "exactly two" in message


def test_scan_three_class_folders(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 1, "b": 1, "c": 1})
    with pytest.raises(DatasetError, match=r"3 class sub-folders \(a, b, c\); exactly two"):
        scan_dataset(root)


def test_scan_empty_class(tmp_path):
    root = make_folder(tmp_path / "data", {"full": 2, "empty": 0})
    with pytest.raises(DatasetError, match=f"no images.*{root / 'empty'}"):
        scan_dataset(root)


def test_scan_rejects_non_image_file(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    (root / "a" / "notes.txt").write_text("hello")
    with pytest.raises(DatasetError, match=f"{root / 'a' / 'notes.txt'}: non-image file"):
        scan_dataset(root)


def test_scan_rejects_sub_folder_in_class(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    (root / "b" / "nested").mkdir()
    with pytest.raises(DatasetError, match=f"{root / 'b' / 'nested'}: sub-folder"):
        scan_dataset(root)


@pytest.mark.parametrize("content", [b"", b"\x89PNG\r\n\x1a\n" + bytes(range(200)), np.random.default_rng(0).bytes(300)])
def test_scan_rejects_corrupt_image(tmp_path, content):
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    (root / "b" / "broken.png").write_bytes(content)
    with pytest.raises(DatasetError, match=f"{root / 'b' / 'broken.png'}: corrupt image"):
        scan_dataset(root)


def test_scan_rejects_truncated_png(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    good = write_png(tmp_path / "big.png", size=64)
    noisy = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(good)
    (root / "a" / "cut.png").write_bytes(good.read_bytes()[:-2000])
    with pytest.raises(DatasetError, match="cut.png: corrupt image"):
        scan_dataset(root)


def test_scan_rejects_image_format_tensorflow_cannot_decode(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(root / "a" / "really_a_tiff.png", format="TIFF")
    with pytest.raises(DatasetError, match="really_a_tiff.png: unsupported image format TIFF"):
        scan_dataset(root)


def test_scan_reports_progress_on_large_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(ect.data.folder, "PROGRESS_MIN_FILES", 4)
    monkeypatch.setattr(ect.data.folder, "PROGRESS_EVERY", 2)
    root = make_folder(tmp_path / "data", {"a": 3, "b": 2})

    with log_lines() as lines:
        scan_dataset(root)
    assert lines == [f"checked 2/5 files in {root}", f"checked 4/5 files in {root}"]
    with log_lines() as lines:
        scan_dataset(root, progress=False)
    assert lines == []


def test_scan_skip_corrupt_skips_with_warning(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 3, "b": 2})
    (root / "a" / "broken.png").write_bytes(b"not an image")
    (root / "b" / "notes.txt").write_text("hello")
    with log_lines() as warnings:
        index = scan_dataset(root, skip_corrupt=True)

    assert len(index.files) == 5
    assert [path for path, _ in index.skipped] == [root / "a" / "broken.png", root / "b" / "notes.txt"]
    assert "corrupt image" in index.skipped[0][1] and "non-image file" in index.skipped[1][1]
    assert len(warnings) == 2 and all(line.startswith("warning: skipping ") for line in warnings)
    assert str(root / "a" / "broken.png") in warnings[0]
    assert str(root / "b" / "notes.txt") in warnings[1]
    assert fingerprint(index)["skipped_files"] == 2


def test_scan_class_empty_after_skipping(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 2})
    (root / "b").mkdir()
    (root / "b" / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(DatasetError, match=f"no images after skipping 1 bad file.*{root / 'b'}"):
        scan_dataset(root, skip_corrupt=True)


# --- split_dataset ----------------------------------------------------------------------------


def test_split_is_stratified(tmp_path):
    index = scan_dataset(make_folder(tmp_path / "data", {"a": 10, "b": 7}))

    split = split_dataset(index, 0.3, seed=0)

    assert [f.label for f in split.validation].count(0) == round(10 * 0.3)
    assert [f.label for f in split.validation].count(1) == round(7 * 0.3)
    assert {f.label for f in split.train} == {0, 1}
    assert sorted(split.train + split.validation, key=lambda f: f.path) == sorted(index.files, key=lambda f: f.path)
    assert list(split.train) == sorted(split.train, key=lambda f: (f.label, f.path))
    assert list(split.validation) == sorted(split.validation, key=lambda f: (f.label, f.path))


def test_split_is_deterministic_per_seed(tmp_path):
    index = scan_dataset(make_folder(tmp_path / "data", {"a": 20, "b": 20}))

    assert split_dataset(index, 0.25, seed=1) == split_dataset(index, 0.25, seed=1)
    assert split_dataset(index, 0.25, seed=1) != split_dataset(index, 0.25, seed=2)


def test_split_with_empty_validation_part(tmp_path):
    index = scan_dataset(make_folder(tmp_path / "data", {"a": 1, "b": 1}))
    with pytest.raises(DatasetError, match=r"validation split is empty: class counts a=1, b=1 .*0\.2.*more images"):
        split_dataset(index, 0.2, seed=0)


def test_split_with_empty_training_part(tmp_path):
    index = scan_dataset(make_folder(tmp_path / "data", {"a": 1, "b": 1}))
    with pytest.raises(DatasetError, match=r"training split is empty: class counts a=1, b=1 .*0\.9"):
        split_dataset(index, 0.9, seed=0)


@pytest.mark.parametrize("fraction", [0, 1, -0.1, 1.5])
def test_split_rejects_invalid_fraction(tmp_path, fraction):
    index = scan_dataset(make_folder(tmp_path / "data", {"a": 4, "b": 4}))
    with pytest.raises(DatasetError, match=f"validation_split must be between 0 and 1.*got {fraction}"):
        split_dataset(index, fraction, seed=0)


# --- fingerprint --------------------------------------------------------------------------------


def test_fingerprint_counts_and_sensitivity(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 3, "b": 2})
    original = fingerprint(scan_dataset(root))
    assert original["class_counts"] == {"a": 3, "b": 2}
    assert original["total_files"] == 5
    assert original["skipped_files"] == 0
    assert original == fingerprint(scan_dataset(root))

    # fingerprint reads the files when called, so the same index sees the edited byte.
    index = scan_dataset(root)
    target = root / "b" / "001.png"
    original_content = target.read_bytes()
    content = bytearray(original_content)
    content[len(content) // 2] ^= 0x01
    target.write_bytes(bytes(content))
    changed_byte = fingerprint(index)
    assert changed_byte["sha256"] != original["sha256"]
    assert changed_byte["class_counts"] == original["class_counts"]

    target.write_bytes(original_content)
    (root / "a" / "002.png").rename(root / "a" / "renamed.png")
    renamed = fingerprint(scan_dataset(root))
    assert renamed["total_files"] == 5
    assert renamed["sha256"] != original["sha256"]


def test_fingerprint_changes_when_a_file_is_added(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 2, "b": 2})
    before = fingerprint(scan_dataset(root))
    write_png(root / "a" / "extra.png")
    assert fingerprint(scan_dataset(root))["sha256"] != before["sha256"]


# --- make_tf_datasets -----------------------------------------------------------------------------


@pytest.mark.parametrize("cache", [False, True])
def test_tf_datasets_yield_normalised_batches(tmp_path, cache):
    from ect.data.pipeline import make_tf_datasets

    index = make_synthetic_dataset(tmp_path / "data", images=12, size=16, seed=0)
    split = split_dataset(index, 0.25, seed=0)
    train_ds, val_ds = make_tf_datasets(split, image_size=16, batch_size=4, seed=0, cache=cache, augment=True)

    for dataset, expected_count in ((train_ds, len(split.train)), (val_ds, len(split.validation))):
        seen = 0
        for epoch in range(2):  # the second pass reads from the cache when cache=True
            for images, labels in dataset:
                assert images.shape[1:] == (16, 16, 3) and labels.shape == (images.shape[0], 1)
                assert images.dtype.name == "float32" and labels.dtype.name == "float32"
                assert 0.0 <= float(images.numpy().min()) and float(images.numpy().max()) <= 1.0
                seen += images.shape[0]
        assert seen == 2 * expected_count

    val_labels = np.concatenate([labels.numpy() for _, labels in val_ds]).ravel()
    assert val_labels.tolist() == [float(f.label) for f in split.validation]


def test_tf_datasets_reject_empty_split(tmp_path):
    from ect.data import Split
    from ect.data.pipeline import make_tf_datasets

    index = make_synthetic_dataset(tmp_path / "data", images=4, size=8)
    with pytest.raises(DatasetError, match="validation split is empty"):
        make_tf_datasets(Split(train=index.files, validation=()), image_size=8, batch_size=2, seed=0, cache=False)
