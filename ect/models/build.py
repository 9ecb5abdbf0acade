"""Builds a model of a registered architecture: a (frozen) base plus a new binary-classification head."""

from __future__ import annotations

from pathlib import Path

from ect.architectures import Architecture
from ect.errors import ModelError
from ect.raw.columns import QUALITY_METRICS


def _resolve_weights(arch: Architecture, weights: str) -> str | None:
    if weights == "none":
        return None
    if arch.keras_class == "":
        raise ModelError(f"{arch.name} has no pretrained weights: set WEIGHTS to none (got {weights!r})")
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ModelError(f"WEIGHTS={weights!r}: weights file {path} not found; expected none, imagenet or a .h5 file")
    return str(path)


def _base_network(arch: Architecture, image_size: int, weights: str | None):
    import keras

    shape = (image_size, image_size, 3)
    if arch.keras_class == "":
        layers = keras.layers
        return keras.Sequential(
            [keras.Input(shape), layers.Conv2D(16, 3, activation="relu"), layers.MaxPooling2D(),
             layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(), layers.Conv2D(64, 3, activation="relu")],
            name="tiny_cnn_base",
        )
    application = getattr(keras.applications, arch.keras_class)
    try:
        return application(include_top=False, weights=weights, input_shape=shape, **arch.base_kwargs)
    except Exception as error:  # Keras reports a failed download as a bare Exception
        if weights == "imagenet" and ("URL fetch failure" in str(error) or isinstance(error, OSError)):
            raise ModelError(
                f"could not download the ImageNet weights of {arch.name} ({error}); this machine may have no "
                f"internet access: download the no-top weights file of keras.applications.{arch.keras_class} "
                "elsewhere and set WEIGHTS to its path, or set WEIGHTS to none"
            ) from None
        raise ModelError(f"cannot build {arch.name} with weights={weights!r} at {image_size}x{image_size}: {error}") from None


def compile_model(model, optimizer) -> None:
    import keras

    accuracy, precision, recall, auc = QUALITY_METRICS
    metrics = [
        keras.metrics.BinaryAccuracy(name=accuracy),
        keras.metrics.Precision(name=precision),
        keras.metrics.Recall(name=recall),
        keras.metrics.AUC(name=auc),
    ]
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=metrics)


def make_optimizer(name: str, learning_rate: float, momentum: float):
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum)
    return keras.optimizers.Adam(learning_rate)


def build_model(arch: Architecture, image_size: int, weights: str, optimizer):
    """Returns (model, base): the base frozen and the model compiled with `optimizer` for phase 1."""
    arch.check_input_size(image_size)
    resolved = _resolve_weights(arch, weights)
    import keras

    from ect.models.layers import ImagePreprocessing

    base = _base_network(arch, image_size, resolved)
    base.trainable = False
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = ImagePreprocessing(arch.input_mode, name="preprocessing")(inputs)
    x = base(x, training=False)  # BatchNormalization stays in inference mode, also when fine-tuning
    x = keras.layers.GlobalAveragePooling2D()(x)
    for units in arch.head_units:
        x = keras.layers.Dense(units, activation="relu")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="prediction")(x)
    model = keras.Model(inputs, outputs, name=arch.name)
    compile_model(model, optimizer)
    return model, base


def set_seed(seed: int) -> None:
    """Seeds Python, numpy and the backend, so that weights and augmentation repeat."""
    import keras

    keras.utils.set_random_seed(seed)
