"""tf.data input pipelines for a train/validation split.

TensorFlow is imported inside the functions: importing it takes seconds, and
the rest of ect must start fast without it. The JAX and PyTorch backends use
ect.data.arrays instead: the same pixels and augmentation, without TensorFlow.
"""

from __future__ import annotations

from ect.data.folder import ImageFile, Split


def make_tf_datasets(
    split: Split,
    image_size: int,
    batch_size: int,
    seed: int,
    cache: bool,
    augment: bool = True,
):
    """Return (train_ds, val_ds) yielding (images (B, S, S, 3) in [0, 1], labels (B, 1)) float32 batches."""
    import tensorflow as tf

    split.check_not_empty()

    train_ds = load_images(split.train, image_size, cache)
    train_ds = train_ds.shuffle(len(split.train), seed=seed, reshuffle_each_iteration=True)
    if augment:
        train_ds = train_ds.map(augment_image, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    train_ds = train_ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    val_ds = load_images(split.validation, image_size, cache)
    val_ds = val_ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)
    return train_ds, val_ds


def load_images(files: tuple[ImageFile, ...], image_size: int, cache: bool):
    """Decoded, resized (image, label) pairs in file order, optionally cached in memory."""
    import tensorflow as tf

    paths = [str(image_file.path) for image_file in files]
    labels = [[float(image_file.label)] for image_file in files]
    dataset = tf.data.Dataset.from_tensor_slices((paths, tf.constant(labels, dtype=tf.float32)))

    def decode(path, label):
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        image = tf.image.convert_image_dtype(image, tf.float32)  # scales uint8 and uint16 to [0, 1]
        image = tf.image.resize(image, (image_size, image_size))
        image.set_shape((image_size, image_size, 3))
        return image, label

    dataset = dataset.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
    return dataset


def augment_image(image, label):
    """The random colour and flip augmentation of the original paper package."""
    import tensorflow as tf

    image = tf.image.random_flip_left_right(image)
    image = tf.image.random_brightness(image, max_delta=0.2)
    image = tf.image.random_contrast(image, 0.5, 2.0)
    image = tf.image.random_saturation(image, 0.75, 1.25)
    image = tf.image.random_hue(image, 0.1)
    image = tf.clip_by_value(image, 0.0, 1.0)
    return image, label
