"""Keras layers of ect's models. Importing this module imports Keras (and TensorFlow)."""

import keras

# Per-channel means of ImageNet in BGR order, as keras.applications' "caffe" preprocessing uses them.
_CAFFE_BGR_MEANS = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="ect")
class ImagePreprocessing(keras.layers.Layer):
    """Maps images in [0, 1] to the input range a base network was trained on.

    caffe: RGB -> BGR, scaled to [0, 255], ImageNet means subtracted (VGG16, ResNet50).
    tf: scaled to [-1, 1] (Xception, MobileNetV2, NASNetMobile). none: unchanged.
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "tf", "none"):
            raise ValueError(f"unknown preprocessing mode {mode!r}")
        self.mode = mode

    def call(self, images):
        if self.mode == "tf":
            return images * 2.0 - 1.0
        if self.mode == "caffe":
            bgr = keras.ops.flip(images, axis=-1) * 255.0
            return bgr - keras.ops.convert_to_tensor(_CAFFE_BGR_MEANS, dtype=bgr.dtype)
        return images

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
