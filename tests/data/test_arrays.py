"""Tests for ect.data.arrays, the input pipeline without TensorFlow: the same pixels and augmentation arithmetic as
the tf.data pipeline (compared with TensorFlow here), its order, determinism and cache, and training under JAX and
PyTorch in a process that never imports TensorFlow."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from ect.data import ImageFile, Split, make_synthetic_dataset, split_dataset
from ect.data import arrays
from ect.data.arrays import load_image, make_array_datasets
from ect.errors import DatasetError

EXACT = 1e-6  # float32 rounding: the ports do TensorFlow's arithmetic in TensorFlow's order
JPEG_LEVELS = 6 / 255  # TensorFlow decodes JPEG with libjpeg's fast integer DCT, Pillow with the accurate one


def fixture_images(root: Path) -> dict[str, Path]:
    """One small file per kind of pixels the TF pipeline reads: colour, grey, alpha, palette, 16 bits, JPEG."""
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, (13, 9, 3), dtype=np.uint8)
    images = {
        "rgb.png": Image.fromarray(rgb),
        "grey.png": Image.fromarray(rgb[:, :, 0]),
        "grey-alpha.png": Image.fromarray(np.ascontiguousarray(rgb[:, :, :2])),  # mode LA
        "rgba.png": Image.fromarray(np.dstack([rgb, rgb[:, :, :1]])),
        "palette.png": Image.fromarray(rgb).convert("P"),
        "grey16.png": Image.fromarray(rng.integers(0, 65536, (13, 9), dtype=np.uint16)),  # decode_image: high byte
        "rgb.jpg": Image.fromarray(rgb),
    }
    root.mkdir(parents=True, exist_ok=True)
    for name, image in images.items():
        image.save(root / name)
    return {name: root / name for name in images}


def all_batches(dataset) -> tuple[np.ndarray, np.ndarray]:
    batches = [dataset[i] for i in range(len(dataset))]
    return np.concatenate([images for images, _ in batches]), np.concatenate([labels for _, labels in batches])


def file_of(image: np.ndarray, plain: list[np.ndarray]) -> int:
    """Which file an un-augmented image is (each synthetic image is distinct)."""
    matches = [i for i, candidate in enumerate(plain) if np.array_equal(candidate, image)]
    assert len(matches) == 1
    return matches[0]


@pytest.fixture(scope="module")
def shapes_split(tmp_path_factory) -> Split:
    index = make_synthetic_dataset(tmp_path_factory.mktemp("arrays") / "shapes", images=14, size=12, seed=5)
    return split_dataset(index, 0.25, seed=0)  # 10 training, 4 validation images


# --- the same pixels as the tf.data pipeline -----------------------------------------------------------------------


@pytest.mark.parametrize("image_size", [5, 20])  # down and up
def test_decoded_images_are_the_tf_pipelines(tmp_path, image_size):
    from ect.data.pipeline import load_images

    paths = fixture_images(tmp_path)
    files = tuple(ImageFile(path, 0) for path in paths.values())
    for image_file, (expected, _) in zip(files, load_images(files, image_size, cache=False)):
        image = load_image(image_file.path, image_size)
        assert image.shape == (image_size, image_size, 3) and image.dtype == np.float32
        tolerance = JPEG_LEVELS if image_file.path.suffix == ".jpg" else EXACT
        assert np.abs(image - expected.numpy()).max() <= tolerance, image_file.path.name


def test_a_file_that_cannot_be_decoded_is_named(tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot decode image .*broken.png"):
        load_image(broken, 8)


def random_images():
    rng = np.random.default_rng(11)
    steps = (rng.integers(0, 256, (7, 6, 3)) / 255).astype(np.float32)
    steps[:, :, 1] = steps[:, :, 0]  # ties between channels
    steps[0] = 0.5  # grey pixels
    return [rng.random((9, 11, 3), dtype=np.float32), steps,
            (rng.random((8, 8, 3), dtype=np.float32) * 3 - 1)]  # outside [0, 1], as after brightness and contrast


@pytest.mark.parametrize("name, factors", [
    ("brightness", [-0.2, 0.0, 0.13]),
    ("contrast", [0.5, 1.0, 1.37, 2.0]),
    ("saturation", [0.0, 0.75, 1.1, 1.25, 3.0]),
    ("hue", [-1.0, -0.1, 0.0, 0.04, 0.1, 0.7]),
])
def test_each_adjustment_is_tensorflows(name, factors):
    import tensorflow as tf

    ours, theirs = getattr(arrays, f"adjust_{name}"), getattr(tf.image, f"adjust_{name}")
    for image in random_images():
        for factor in factors:
            adjusted = ours(image, factor)
            assert adjusted.dtype == np.float32 and adjusted.shape == image.shape
            assert np.abs(adjusted - theirs(image, factor).numpy()).max() <= EXACT, (name, factor)


def test_resize_is_tensorflows_bilinear_resize():
    import tensorflow as tf

    for image in random_images():
        for size in (1, 4, 8, 15):
            expected = tf.image.resize(image, (size, size), method="bilinear", antialias=False).numpy()
            assert np.abs(arrays.resize_bilinear(image, size) - expected).max() <= EXACT


def test_augmentation_is_clipped_and_leaves_its_input_alone():
    image = random_images()[0]
    before = image.copy()
    augmented = [arrays.augment_image(image, np.random.default_rng(seed)) for seed in range(6)]
    assert np.array_equal(image, before)
    assert all(a.dtype == np.float32 and a.shape == image.shape and 0 <= a.min() and a.max() <= 1 for a in augmented)
    assert len({a.tobytes() for a in augmented}) == len(augmented)


# --- the datasets ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("empty", ["training", "validation"])
def test_an_empty_split_is_refused_as_the_tf_pipeline_refuses_it(shapes_split, empty):
    split = Split(train=() if empty == "training" else shapes_split.train,
                  validation=() if empty == "validation" else shapes_split.validation)
    with pytest.raises(DatasetError, match=f"the {empty} split is empty"):
        make_array_datasets(split, image_size=8, batch_size=4, seed=0, cache=False)


def test_batches_are_float32_images_and_labels_with_the_last_one_partial(shapes_split):
    import keras

    train, val = make_array_datasets(shapes_split, image_size=8, batch_size=4, seed=0, cache=False, workers=2)
    assert isinstance(train, keras.utils.PyDataset) and isinstance(val, keras.utils.PyDataset)
    assert (len(train), len(val)) == (3, 1)
    shapes = [(images.shape, labels.shape) for images, labels in (train[i] for i in range(len(train)))]
    assert shapes == [((4, 8, 8, 3), (4, 1)), ((4, 8, 8, 3), (4, 1)), ((2, 8, 8, 3), (2, 1))]
    images, labels = train[2]
    assert images.dtype == np.float32 and labels.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 1
    with pytest.raises(IndexError):
        train[3]


def test_validation_is_every_image_in_file_order_unaugmented(shapes_split):
    _, val = make_array_datasets(shapes_split, image_size=8, batch_size=3, seed=0, cache=False)
    for _ in range(2):
        images, labels = all_batches(val)
        assert labels.ravel().tolist() == [float(f.label) for f in shapes_split.validation]
        assert np.array_equal(images, np.stack([load_image(f.path, 8) for f in shapes_split.validation]))
        val.on_epoch_end()


def test_each_training_pass_is_a_new_permutation_with_labels_following_their_images(shapes_split):
    plain = [load_image(f.path, 8) for f in shapes_split.train]
    train, _ = make_array_datasets(shapes_split, image_size=8, batch_size=4, seed=1, cache=False, augment=False)
    orders = []
    for _ in range(3):
        images, labels = all_batches(train)
        order = [file_of(image, plain) for image in images]  # un-augmented: exactly the decoded images
        assert sorted(order) == list(range(len(shapes_split.train)))
        assert labels.ravel().tolist() == [float(shapes_split.train[i].label) for i in order]
        orders.append(order)
        train.on_epoch_end()
    assert orders[0] != orders[1] != orders[2]


def test_augmented_passes_repeat_for_the_same_seed_and_pass(shapes_split):
    def passes(seed, augment=True, count=2):
        train, _ = make_array_datasets(shapes_split, image_size=8, batch_size=4, seed=seed, cache=False,
                                       augment=augment, workers=3)
        result = []
        for _ in range(count):
            result.append(all_batches(train))
            train.on_epoch_end()
        return result

    first, again, other_seed, plain = passes(0), passes(0), passes(1), passes(0, augment=False)
    for (images, labels), (same_images, same_labels) in zip(first, again):
        assert np.array_equal(images, same_images) and np.array_equal(labels, same_labels)
    assert not np.array_equal(first[0][0], other_seed[0][0])
    assert not np.array_equal(first[0][0], first[1][0])  # another pass, another order and other draws
    for (images, labels), (plain_images, plain_labels) in zip(first, plain):
        assert np.array_equal(labels, plain_labels)  # the order does not depend on the augmentation
        assert not np.array_equal(images, plain_images)


def test_a_pass_cut_short_leaves_nothing_for_the_next(shapes_split):
    """fit() reads one batch before its first epoch, then ends that pass: the next pass is still whole."""
    plain = [load_image(f.path, 8) for f in shapes_split.train]
    train, _ = make_array_datasets(shapes_split, image_size=8, batch_size=2, seed=0, cache=False, augment=False)
    train[0]
    train.on_epoch_end()
    images, _ = all_batches(train)
    assert sorted(file_of(image, plain) for image in images) == list(range(len(shapes_split.train)))


@pytest.mark.parametrize("cache, decodes", [(True, 10), (False, 20)])  # in two passes over 10 images
def test_the_cache_keeps_each_image_after_its_first_decoding(shapes_split, monkeypatch, cache, decodes):
    decoded = []
    real = arrays.load_image
    monkeypatch.setattr(arrays, "load_image", lambda path, size: decoded.append(path) or real(path, size))
    train, _ = make_array_datasets(shapes_split, image_size=8, batch_size=4, seed=0, cache=cache)
    assert decoded == []  # nothing decoded up front
    first, _ = all_batches(train)
    train.on_epoch_end()
    all_batches(train)
    assert len(decoded) == decodes
    train.epoch = 0
    assert np.array_equal(all_batches(train)[0], first)  # cached images are not changed by the augmentation


# --- training without TensorFlow -----------------------------------------------------------------------------------

FIT_SCRIPT = """
import json, sys
from pathlib import Path
import numpy as np
import keras
from PIL import Image
from ect.data import scan_dataset, split_dataset
from ect.data.arrays import make_array_datasets

root, rng = Path(sys.argv[1]), np.random.default_rng(0)
for label, (low, high) in {"bright": (150, 250), "dark": (5, 105)}.items():  # learnable from the mean brightness
    (root / label).mkdir(parents=True)
    for number in range(12):
        Image.fromarray(rng.integers(low, high, (10, 10, 3), dtype=np.uint8)).save(root / label / f"{number:02d}.png")
split = split_dataset(scan_dataset(root), 0.25, seed=0)
train, val = make_array_datasets(split, image_size=8, batch_size=4, seed=0, cache=True, workers=2)
weights = keras.initializers.GlorotUniform(seed=0)
model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.GlobalAveragePooling2D(),
                          keras.layers.Dense(1, "sigmoid", kernel_initializer=weights)])
model.compile(keras.optimizers.Adam(0.1), "binary_crossentropy")
before = model.evaluate(val, verbose=0)
history = model.fit(train, validation_data=val, epochs=4, verbose=0, shuffle=False)
print(json.dumps({"backend": keras.backend.backend(), "before": before, "after": model.evaluate(val, verbose=0),
                  "losses": history.history["loss"], "tensorflow_imported": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_a_model_trains_on_the_arrays_pipeline_without_tensorflow(tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", FIT_SCRIPT, str(tmp_path / "shapes")], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == backend and len(result["losses"]) == 4 and all(np.isfinite(result["losses"]))
    assert result["after"] < result["before"] - 0.1  # validation loss: it learned from the batches
    assert result["tensorflow_imported"] is False
