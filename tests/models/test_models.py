import keras
import numpy as np
import pytest

from ect.architectures import BENCHMARK_ARCHITECTURES, get_architecture
from ect.errors import ModelError
from ect.models.build import build_model, make_optimizer


def adam():
    return make_optimizer("adam", 1e-3, 0.0)


def test_xception_refuses_images_smaller_than_71_pixels_before_building_anything():
    with pytest.raises(ModelError) as error:
        build_model(get_architecture("xception"), 64, "none", None)
    message = str(error.value)
    assert "xception" in message and "71x71" in message and "IMAGE_SIZE is 64" in message


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(ModelError, match=r"unknown architecture 'alexnet'.*vgg16.*nasnet_mobile"):
        get_architecture("alexnet")


def test_missing_local_weights_file_is_named(tmp_path):
    missing = tmp_path / "vgg16_notop.h5"
    with pytest.raises(ModelError, match=f"weights file {missing} not found"):
        build_model(get_architecture("vgg16"), 32, str(missing), None)


def test_tiny_cnn_has_no_pretrained_weights():
    with pytest.raises(ModelError, match="tiny_cnn has no pretrained weights"):
        build_model(get_architecture("tiny_cnn"), 32, "imagenet", None)


def test_failed_imagenet_download_suggests_a_local_weights_file(tmp_path, monkeypatch):
    # Force the download to fail fast whether or not this machine has internet access.
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(ModelError) as error:
        build_model(get_architecture("vgg16"), 32, "imagenet", adam())
    message = str(error.value)
    assert "could not download the ImageNet weights of vgg16" in message
    assert "set WEIGHTS to its path" in message


@pytest.mark.parametrize("mode, application", [("caffe", "vgg16"), ("tf", "xception"), ("tf", "mobilenet_v2")])
def test_preprocessing_matches_keras_applications_on_0_255_images(mode, application):
    from ect.models.layers import ImagePreprocessing

    images = np.random.default_rng(0).uniform(0, 1, size=(2, 8, 8, 3)).astype("float32")
    expected = getattr(keras.applications, application).preprocess_input(images * 255.0)
    got = keras.ops.convert_to_numpy(ImagePreprocessing(mode)(images))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def vgg16_conv_flops(size: int) -> int:
    """Multiply-adds of VGG16's 13 3x3 convolutions (same padding, pooling after each block), times 2."""
    flops, channels = 0, 3
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]):
        side = size // 2**block
        for _ in range(convs):
            flops += 2 * side * side * 9 * channels * filters
            channels = filters
    return flops


def test_vgg16_flops_agree_with_the_analytic_count():
    from ect.models.flops import forward_flops

    model, _ = build_model(get_architecture("vgg16"), 32, "none", adam())
    flops = forward_flops(model, 32)
    analytic = vgg16_conv_flops(32)
    # The profiler also counts bias additions, pooling and the head: a little more than the convolutions.
    assert analytic <= flops <= analytic * 1.02


@pytest.mark.parametrize("name", BENCHMARK_ARCHITECTURES)
def test_every_benchmark_architecture_builds_and_trains_a_step_on_cpu(name):
    """Once per architecture in the suite: building them is slow on CPU (graph building, see CI.md)."""
    from ect.models.flops import forward_flops

    arch = get_architecture(name)
    size = max(32, arch.min_input_size)
    keras.utils.set_random_seed(0)
    model, base = build_model(arch, size, "none", adam())
    assert not base.trainable and model.output_shape == (None, 1)
    head = model.get_layer("prediction")
    before = [w.copy() for w in head.get_weights()]
    frozen_before = [w.copy() for w in base.get_weights()[:2]]

    images = np.random.default_rng(0).uniform(0, 1, size=(4, size, size, 3)).astype("float32")
    labels = np.array([[0], [1], [1], [1]], dtype="float32")  # unbalanced: a zero bias gradient is impossible
    history = model.fit(images, labels, batch_size=4, epochs=1, verbose=0)

    assert np.isfinite(history.history["loss"][0])
    assert any(not np.allclose(a, b) for a, b in zip(before, head.get_weights())), "the head did not learn"
    assert all(np.array_equal(a, b) for a, b in zip(frozen_before, base.get_weights()[:2])), "the frozen base changed"
    assert forward_flops(model, size) > 1e6
    keras.backend.clear_session()
