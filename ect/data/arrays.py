"""The input pipeline of the JAX and PyTorch Keras backends: Pillow and numpy, no TensorFlow.

It gives what ect.data.pipeline's tf.data pipeline gives, image for image:
- the same pixels: Pillow decodes to what tf.io.decode_image(channels=3) returns (8 bits per channel; a 16-bit
  PNG keeps its high byte, as TensorFlow's does; alpha dropped), scaled to [0, 1] as tf.image.convert_image_dtype
  does, resized as tf.image.resize(method="bilinear", antialias=False) does (half-pixel centres). One exception:
  TensorFlow decodes JPEG with libjpeg's fast integer DCT and Pillow with the accurate one, so a JPEG's pixels
  can differ by a few levels of 255;
- the same split and batches: the Split given, batches of `batch_size` in order, the last one partial;
- the same order semantics: validation in file order; training reshuffled at every pass over the data, each pass's
  order drawn from (seed, pass) with numpy's default_rng, so that a run repeats. tf.data's own permutation (and its
  random draws) cannot be reproduced outside TensorFlow: the orders and augmentations differ from the TF pipeline's,
  their distribution does not;
- the same augmentation: numpy ports of tf.image's random flip, brightness, contrast, saturation and hue, with the
  TF pipeline's ranges and TensorFlow's kernels' arithmetic (contrast around each channel's mean over the image,
  saturation and hue through TensorFlow's HSV conversions), then a clip to [0, 1]; the random factors of image i in
  pass p drawn from (seed, p, i);
- the same cache: with cache=True an image is decoded and resized once, on its first use, and kept in memory.

tests/data/test_arrays.py compares the pixels and each adjustment with TensorFlow's.

The datasets are keras.utils.PyDataset objects that fit() and evaluate() read batch by batch; a pass ends at each
on_epoch_end, which Keras calls after every epoch and also after the batch that fit() reads before its first one.
Call fit() with shuffle=False, as ect.models.training does: Keras's shuffle would reorder the batches with Python's
random module. Batches are prepared ahead by a pool of threads (Pillow's decoding and numpy release the GIL), not by
Keras's own workers: Keras 3.15's enqueuer serves the batches left over from an interrupted pass (that first batch)
in the next pass, so that a pass could repeat some images and miss others.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from ect.data.folder import ImageFile, Split
from ect.errors import DatasetError

MAX_DEFAULT_WORKERS = 4
BATCHES_AHEAD_PER_WORKER = 2
SHUFFLE_STREAM = 0  # the random streams of one pass, kept apart in numpy's SeedSequence
AUGMENT_STREAM = 1
BRIGHTNESS_MAX_DELTA = 0.2  # the TF pipeline's augmentation (ect.data.pipeline.augment_image)
CONTRAST_RANGE = (0.5, 2.0)
SATURATION_RANGE = (0.75, 1.25)
HUE_MAX_DELTA = 0.1
SIXTEEN_BIT_GREY_MODES = frozenset({"I", "I;16", "I;16B", "I;16L"})  # Pillow's modes of a 16-bit grey PNG


def make_array_datasets(
    split: Split,
    image_size: int,
    batch_size: int,
    seed: int,
    cache: bool,
    augment: bool = True,
    workers: int | None = None,
):
    """Return (train, val) keras.utils.PyDataset objects yielding (images (B, S, S, 3) in [0, 1], labels (B, 1))
    float32 batches, as make_tf_datasets does; `workers` threads (default min(4, CPUs)) prepare batches ahead."""
    split.check_not_empty()
    workers = min(MAX_DEFAULT_WORKERS, os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise DatasetError(f"the input pipeline needs at least 1 worker thread, got workers={workers}")

    image_batches = image_batches_class()
    executor = ThreadPoolExecutor(workers, thread_name_prefix="ect-images")  # one pool: fit reads one split at a time
    common = dict(image_size=image_size, batch_size=batch_size, seed=seed, cache=cache, executor=executor,
                  batches_ahead=BATCHES_AHEAD_PER_WORKER * workers)
    train = image_batches(split.train, shuffle=True, augment=augment, **common)
    val = image_batches(split.validation, shuffle=False, augment=False, **common)
    return train, val


@functools.cache
def image_batches_class():
    """The PyDataset subclass, made on first use: Keras is imported only when a pipeline is built."""
    import keras

    class ImageBatches(keras.utils.PyDataset):
        """Batches of one split's images; `epoch` counts the passes over them (on_epoch_end ends one), and
        batches_ahead batches from the one asked for are prepared by the executor's threads."""

        def __init__(self, files: tuple[ImageFile, ...], image_size: int, batch_size: int, seed: int, shuffle: bool,
                     augment: bool, cache: bool, executor: ThreadPoolExecutor, batches_ahead: int):
            super().__init__(workers=1, use_multiprocessing=False)  # 1: no Keras enqueuer (see the module's doc)
            self.files = files
            self.labels = np.array([[image_file.label] for image_file in files], dtype=np.float32)
            self.image_size = image_size
            self.batch_size = batch_size
            self.seed = seed
            self.shuffle = shuffle
            self.augment = augment
            self.cache: dict[int, np.ndarray] | None = {} if cache else None
            self.executor = executor
            self.batches_ahead = batches_ahead
            self.epoch = 0
            self.lock = threading.Lock()
            self.pending = {}  # (epoch, batch index) -> Future of the batch
            self.order_of_epoch = (None, None)

        def __len__(self) -> int:
            return math.ceil(len(self.files) / self.batch_size)

        def __getitem__(self, index: int):
            if not 0 <= index < len(self):
                raise IndexError(f"batch {index} out of range: {len(self)} batches")
            with self.lock:
                epoch, order = self.epoch, self.order()
                for ahead in range(index, min(index + self.batches_ahead, len(self))):
                    if (epoch, ahead) not in self.pending:
                        members = order[ahead * self.batch_size:(ahead + 1) * self.batch_size]
                        self.pending[(epoch, ahead)] = self.executor.submit(self.load_batch, epoch, members)
                batch = self.pending.pop((epoch, index))
            return batch.result()

        def on_epoch_end(self):
            with self.lock:
                self.epoch += 1
                for batch in self.pending.values():
                    batch.cancel()
                self.pending.clear()

        def order(self) -> np.ndarray:
            """The file indices of this pass in order (a permutation for training, file order for validation)."""
            if self.order_of_epoch[0] != self.epoch:
                order = (np.random.default_rng([self.seed, self.epoch, SHUFFLE_STREAM]).permutation(len(self.files))
                         if self.shuffle else np.arange(len(self.files)))
                self.order_of_epoch = (self.epoch, order)
            return self.order_of_epoch[1]

        def load_batch(self, epoch: int, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            return np.stack([self.image(int(i), epoch) for i in members]), self.labels[members]

        def image(self, i: int, epoch: int) -> np.ndarray:
            image = self.cache.get(i) if self.cache is not None else None
            if image is None:
                image = load_image(self.files[i].path, self.image_size)
                if self.cache is not None:
                    self.cache[i] = image
            if self.augment:
                image = augment_image(image, np.random.default_rng([self.seed, epoch, AUGMENT_STREAM, i]))
            return image

    return ImageBatches


# --- decoding and resizing ----------------------------------------------------------------------------------------


def load_image(path: Path, image_size: int) -> np.ndarray:
    """The file's pixels as the TF pipeline has them: RGB float32 in [0, 1], image_size x image_size."""
    return resize_bilinear(to_float(read_rgb(path)), image_size)


def read_rgb(path: Path) -> np.ndarray:
    """The uint8 (H, W, 3) pixels that tf.io.decode_image(channels=3, expand_animations=False) returns."""
    try:
        with Image.open(path) as image:  # an animation's first frame, as expand_animations=False
            if image.mode in SIXTEEN_BIT_GREY_MODES:
                grey = (np.asarray(image).astype(np.int64) >> 8).clip(0, 255).astype(np.uint8)
                return np.repeat(grey[:, :, None], 3, axis=2)
            return np.asarray(image.convert("RGB"))  # 16-bit colour: Pillow keeps the high byte, as TensorFlow
    except Exception as error:  # Pillow raises many types for bad files
        raise DatasetError(f"cannot decode image {path}: {error}") from error


def to_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1], as tf.image.convert_image_dtype (a multiplication by 1/255)."""
    return pixels.astype(np.float32) * np.float32(1 / 255)


def resize_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, C) -> (size, size, C) as tf.image.resize(method="bilinear", antialias=False): half-pixel centres,
    TensorFlow's float32 arithmetic."""
    y_low, y_high, y_lerp = interpolation_weights(image.shape[0], size)
    x_low, x_high, x_lerp = interpolation_weights(image.shape[1], size)
    x_lerp = x_lerp[None, :, None]
    top, bottom = image[y_low], image[y_high]
    top = top[:, x_low] + (top[:, x_high] - top[:, x_low]) * x_lerp
    bottom = bottom[:, x_low] + (bottom[:, x_high] - bottom[:, x_low]) * x_lerp
    return top + (bottom - top) * y_lerp[:, None, None]


def interpolation_weights(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each output position: the lower and upper source index and the weight of the upper one."""
    scale = np.float32(in_size) / np.float32(out_size)
    centres = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(centres)
    low = np.maximum(floor, 0).astype(np.intp)
    high = np.minimum(np.ceil(centres), in_size - 1).astype(np.intp)
    return low, high, centres - floor


# --- augmentation ---------------------------------------------------------------------------------------------------


def augment_image(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """ect.data.pipeline.augment_image in numpy: flip, brightness, contrast, saturation, hue (factors drawn from
    `rng` in that order), clipped to [0, 1]. `image` is not modified."""
    if rng.random() < 0.5:
        image = image[:, ::-1]
    image = adjust_brightness(image, rng.uniform(-BRIGHTNESS_MAX_DELTA, BRIGHTNESS_MAX_DELTA))
    image = adjust_contrast(image, rng.uniform(*CONTRAST_RANGE))
    image = adjust_saturation(image, rng.uniform(*SATURATION_RANGE))
    image = adjust_hue(image, rng.uniform(-HUE_MAX_DELTA, HUE_MAX_DELTA))
    return np.clip(image, 0.0, 1.0)


def adjust_brightness(image: np.ndarray, delta: float) -> np.ndarray:
    """tf.image.adjust_brightness of a float32 image."""
    return image + np.float32(delta)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """tf.image.adjust_contrast of one float32 (H, W, C) image: each channel moved away from its mean."""
    mean = channel_means(image)
    return mean + np.float32(factor) * (image - mean)


def channel_means(image: np.ndarray) -> np.ndarray:
    """Each channel's mean over the image, summed as TensorFlow's contrast kernel sums: folding the pixels in half
    until one is left (so the float32 rounding is the same)."""
    pixels = image.reshape(-1, image.shape[-1]).copy()
    remaining = len(pixels)
    while remaining > 1:
        right = remaining // 2
        left = remaining - right
        pixels[:right] += pixels[left:remaining]
        remaining = left
    return pixels[0] * (np.float32(1) / np.float32(len(pixels)))


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """tf.image.adjust_saturation of a float32 RGB image: saturation times `factor`, clipped to [0, 1], in HSV."""
    hue, saturation, value = rgb_to_hsv(image)
    saturation = np.minimum(np.float32(1), np.maximum(np.float32(0), saturation * np.float32(factor)))
    return hsv_to_rgb(hue, saturation, value)


def rgb_to_hsv(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's saturation kernel's RGB -> HSV, hue in [0, 1)."""
    red, green, blue = channels(image)
    value = np.maximum(red, np.maximum(green, blue))
    chroma = value - np.minimum(red, np.minimum(green, blue))
    with np.errstate(divide="ignore", invalid="ignore"):
        saturation = np.where(value > 0, chroma / value, np.float32(0))
        norm = np.float32(1) / (np.float32(6) * chroma)
        green_largest = green == value
        # The kernel adds the offsets of the green and blue sectors in double precision, then rounds to float.
        offset = np.where(green_largest, 2.0 / 6.0, 4.0 / 6.0)
        turn = (norm * np.where(green_largest, blue - red, red - green)).astype(np.float64) + offset
        hue = np.where(red == value, norm * (green - blue), turn.astype(np.float32))
    hue = np.where(chroma <= 0, np.float32(0), hue)
    hue = np.where(hue < 0, hue + np.float32(1), hue)
    return hue, saturation, value


def hsv_to_rgb(hue: np.ndarray, saturation: np.ndarray, value: np.ndarray) -> np.ndarray:
    """TensorFlow's saturation kernel's HSV -> RGB."""
    chroma = saturation * value
    minimum = value - chroma
    sector_position = hue * np.float32(6)
    sector = sector_position.astype(np.int8)  # 6 when the hue rounded up to 1: grey (minimum), as in the kernel
    position_in_pair = sector_position - (sector & ~1)  # the kernel's fmod(sector_position, 2), exact
    x = chroma * (np.float32(1) - np.abs(position_in_pair - np.float32(1)))
    red = chroma * in_sectors(sector, 0, 5) + x * in_sectors(sector, 1, 4)
    green = chroma * in_sectors(sector, 1, 2) + x * in_sectors(sector, 0, 3)
    blue = chroma * in_sectors(sector, 3, 4) + x * in_sectors(sector, 2, 5)
    return np.stack([red + minimum, green + minimum, blue + minimum], axis=-1)


def in_sectors(sector: np.ndarray, first: int, second: int) -> np.ndarray:
    """Whether each pixel's hue sector is one of the two. A choice by multiplying with it is exact (finite values,
    a + 0 * b = a) and much faster than np.choose or np.select."""
    return (sector == first) | (sector == second)


def adjust_hue(image: np.ndarray, delta: float) -> np.ndarray:
    """tf.image.adjust_hue of a float32 RGB image: hue turned by `delta`, a fraction of the circle in [-1, 1] (the
    range tf.image.adjust_hue documents)."""
    hue, v_min, v_max = rgb_to_hue_range(image)
    hue = hue + np.float32(delta) * np.float32(6)
    hue = np.where(hue < 0, hue + np.float32(6), hue)  # back into [0, 6) as the kernel's loops, for |delta| <= 1
    hue = np.where(hue >= 6, hue - np.float32(6), hue)
    return hue_range_to_rgb(hue, v_min, v_max)


def rgb_to_hue_range(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TensorFlow's hue kernel's RGB -> (hue in [0, 6), smallest, largest channel)."""
    red, green, blue = channels(image)
    # The kernel's sectors: red < green: 1 if blue < red, else 3 if blue > green, else 2; otherwise 0 if
    # blue < green, else 4 if blue > red, else 5 (within each branch the two tests cannot both hold).
    sector = np.where(red < green,
                      2 - (blue < red).astype(np.int8) + (blue > green),
                      5 - 5 * (blue < green).astype(np.int8) - (blue > red))
    v_max = np.maximum(red, np.maximum(green, blue))
    v_min = np.minimum(red, np.minimum(green, blue))
    v_mid = green * in_sectors(sector, 0, 3) + red * in_sectors(sector, 1, 4) + blue * in_sectors(sector, 2, 5)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (v_mid - v_min) / (v_max - v_min)
    hue = sector.astype(np.float32) + np.where(sector % 2 == 0, ratio, np.float32(1) - ratio)
    return np.where(v_max == v_min, np.float32(0), hue), v_min, v_max


def hue_range_to_rgb(hue: np.ndarray, v_min: np.ndarray, v_max: np.ndarray) -> np.ndarray:
    """TensorFlow's hue kernel's (hue in [0, 6), smallest, largest channel) -> RGB."""
    sector = hue.astype(np.int8)
    ratio = hue - sector.astype(np.float32)
    ratio = np.where(sector % 2 == 0, ratio, np.float32(1) - ratio)
    v_mid = v_min + ratio * (v_max - v_min)
    red = v_max * in_sectors(sector, 0, 5) + v_mid * in_sectors(sector, 1, 4) + v_min * in_sectors(sector, 2, 3)
    green = v_max * in_sectors(sector, 1, 2) + v_mid * in_sectors(sector, 0, 3) + v_min * in_sectors(sector, 4, 5)
    blue = v_max * in_sectors(sector, 3, 4) + v_mid * in_sectors(sector, 2, 5) + v_min * in_sectors(sector, 0, 1)
    return np.stack([red, green, blue], axis=-1)


def channels(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The red, green and blue planes of an (H, W, 3) image, each contiguous (faster to compute on)."""
    red, green, blue = np.ascontiguousarray(np.moveaxis(image, -1, 0))
    return red, green, blue
