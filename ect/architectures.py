"""The architectures ect can train, as plain data: config validates names against it and models build from it.
Importing this module never imports TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, field

from ect.errors import ModelError


@dataclass(frozen=True)
class Architecture:
    name: str
    keras_class: str  # attribute of keras.applications, or "" for ect's own tiny CNN
    input_mode: str  # how [0, 1] images are rescaled for the base: caffe, tf (to [-1, 1]) or none
    min_input_size: int
    head_units: tuple[int, ...] = ()  # hidden Dense(relu) layers between pooling and the output
    base_kwargs: dict = field(default_factory=dict)
    benchmark: bool = True

    def check_input_size(self, image_size: int) -> None:
        if image_size < self.min_input_size:
            raise ModelError(
                f"{self.name} needs images of at least {self.min_input_size}x{self.min_input_size} pixels, "
                f"but IMAGE_SIZE is {image_size}: raise IMAGE_SIZE to {self.min_input_size} or more"
            )


# The heads and MobileNetV2's width (alpha 0.5) follow the SEAA 2023 replication package.
_REGISTRY = (
    Architecture("vgg16", "VGG16", "caffe", 32),
    Architecture("resnet50", "ResNet50", "caffe", 32, head_units=(1024, 512)),
    Architecture("xception", "Xception", "tf", 71, head_units=(1024,)),
    Architecture("mobilenet_v2", "MobileNetV2", "tf", 32, head_units=(512,), base_kwargs={"alpha": 0.5}),
    Architecture("nasnet_mobile", "NASNetMobile", "tf", 32, head_units=(512,)),
    # Not a benchmark architecture: a few-layer CNN so that tests and the demo run in seconds.
    Architecture("tiny_cnn", "", "none", 8, head_units=(32,), benchmark=False),
)

ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in _REGISTRY}
BENCHMARK_ARCHITECTURES: tuple[str, ...] = tuple(a.name for a in _REGISTRY if a.benchmark)


def get_architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ModelError(f"unknown architecture {name!r}: expected one of {', '.join(ARCHITECTURES)}") from None
