"""Forward-pass cost of a model in the SEAA 2023 paper's convention: FLOPs as TensorFlow's profiler counts them on
the frozen inference graph of one image (MACs = FLOPs / 2).

`keras_flops` reproduces that count from the Keras layers alone, so that it is the same number under every Keras
backend (backends' own counters differ: JAX's compiled cost analysis is 1.9 % to 13 % below the profiler). Each
layer's rule below was measured against `profiler_flops` (TensorFlow 2.21.0, Keras 3.15.1);
tests/models/test_flops.py checks them, layer type by layer type.
"""

from __future__ import annotations

import math

from ect.errors import ModelError

# Layers that compute nothing the profiler counts, or nothing at all at inference.
_ZERO_FLOP_LAYERS = {
    "InputLayer", "ZeroPadding2D", "Cropping2D", "Dropout", "SpatialDropout2D", "Flatten", "Reshape", "Concatenate",
    "GlobalMaxPooling2D",
}

# FLOPs per output element of an activation. The profiler does not count Relu, Relu6, LeakyRelu, Sigmoid or Tanh;
# Softmax counts 5 per element, silu (x * sigmoid(x)) 2.
_ACTIVATION_FLOPS = {"linear": 0, "relu": 0, "relu6": 0, "leaky_relu": 0, "sigmoid": 0, "tanh": 0, "softmax": 5,
                     "silu": 2, "swish": 2}


def forward_flops(model, image_size: int) -> int:
    """Floating-point operations of one forward pass of one image_size x image_size image (MACs = FLOPs / 2)."""
    shape = tuple(model.inputs[0].shape[1:3])
    if shape != (image_size, image_size):
        raise ModelError(f"cannot count the FLOPs of {model.name} at {image_size}x{image_size} pixels: "
                         f"the model takes inputs of {shape[0]}x{shape[1]} pixels")
    return keras_flops(model)


def keras_flops(model) -> int:
    """FLOPs of one forward pass of batch 1, summed over the layers of a built Keras model (nested models included),
    in TensorFlow profiler's convention. Raises ModelError for a layer type without a measured rule."""
    total = 0
    for layer in model.layers:
        # Each node is one call of the layer in the graph; a nested model is counted once per call.
        calls = layer._inbound_nodes
        if hasattr(layer, "layers"):
            total += keras_flops(layer) * max(1, len(calls))
            continue
        for node in calls:
            inputs = [_elements_shape(layer, t.shape) for t in node.input_tensors]
            outputs = [_elements_shape(layer, t.shape) for t in node.output_tensors]
            total += layer_flops(layer, inputs, outputs)
    return total


def layer_flops(layer, inputs: list[tuple[int, ...]], outputs: list[tuple[int, ...]]) -> int:
    """FLOPs of one call of `layer` with these input and output shapes (batch dimension included)."""
    kind = type(layer).__name__
    if kind in _ZERO_FLOP_LAYERS:
        return 0
    out = math.prod(outputs[0])
    if kind == "Conv2D":
        kernel_h, kernel_w = layer.kernel_size
        per_output = 2 * kernel_h * kernel_w * inputs[0][-1] // layer.groups
        return per_output * out + _bias(layer, out) + _activation(layer, out)
    if kind == "DepthwiseConv2D":
        kernel_h, kernel_w = layer.kernel_size
        return 2 * kernel_h * kernel_w * out + _bias(layer, out) + _activation(layer, out)
    if kind == "SeparableConv2D":
        kernel_h, kernel_w = layer.kernel_size
        depthwise = math.prod(outputs[0][:-1]) * inputs[0][-1] * layer.depth_multiplier
        pointwise = 2 * inputs[0][-1] * layer.depth_multiplier * out
        return 2 * kernel_h * kernel_w * depthwise + pointwise + _bias(layer, out) + _activation(layer, out)
    if kind == "Dense":
        return 2 * inputs[0][-1] * out + _bias(layer, out) + _activation(layer, out)
    if kind == "BatchNormalization":
        # x * inv + (beta - mean * inv) on the elements; per channel: variance + epsilon, rsqrt (2), gamma * inv,
        # mean * inv and beta - mean * inv (or its negation). The frozen graph does not fold them into the conv.
        channels = inputs[0][layer.axis]
        return 2 * out + (5 + int(layer.scale)) * channels
    if kind == "Activation":
        return _activation(layer, out)
    if kind == "ReLU":
        if float(layer.threshold) != 0.0:
            raise ModelError(f"cannot count the FLOPs of layer {layer.name} (ReLU with threshold {layer.threshold}): "
                             "only threshold 0 has a measured rule")
        return 0
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        return math.prod(layer.pool_size) * out
    if kind == "GlobalAveragePooling2D":
        return math.prod(inputs[0])
    if kind in ("Add", "Subtract", "Multiply"):
        return (len(inputs) - 1) * out
    if kind == "Average":
        return len(inputs) * out
    if kind == "Rescaling":
        return 2 * out  # x * scale + offset, also when the offset is 0
    if kind == "Normalization":
        return 2 * out + inputs[0][-1]  # (x - mean) / max(sqrt(variance), epsilon)
    if kind == "ImagePreprocessing":  # ect.models.layers: x * 2 - 1, or flip, * 255 and - means
        return 0 if layer.mode == "none" else 2 * out
    raise ModelError(f"cannot count the FLOPs of layer {layer.name}: no rule for layer type {kind} "
                     f"(known: {', '.join(sorted(_KNOWN_LAYERS))})")


_KNOWN_LAYERS = _ZERO_FLOP_LAYERS | {
    "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense", "BatchNormalization", "Activation", "ReLU",
    "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Add", "Subtract", "Multiply", "Average",
    "Rescaling", "Normalization", "ImagePreprocessing",
}


def _bias(layer, out: int) -> int:
    return out if layer.use_bias else 0


def _activation(layer, out: int) -> int:
    name = getattr(layer.activation, "__name__", repr(layer.activation))
    if name not in _ACTIVATION_FLOPS:
        raise ModelError(f"cannot count the FLOPs of layer {layer.name}: no rule for activation {name!r} "
                         f"(known: {', '.join(_ACTIVATION_FLOPS)})")
    return _ACTIVATION_FLOPS[name] * out


def _elements_shape(layer, shape) -> tuple[int, ...]:
    """The shape with batch 1; every other dimension must be known."""
    if any(size is None for size in shape[1:]):
        raise ModelError(f"cannot count the FLOPs of layer {layer.name}: its shape {tuple(shape)} is not fully known; "
                         "build the model with a fixed input size")
    return (1, *shape[1:])


def profiler_flops(model) -> int:
    """The reference count: TensorFlow's profiler on the frozen forward graph of batch 1 (TensorFlow backend only;
    the model's input shape must be fixed)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    forward = tf.function(lambda images: model(images, training=False))
    concrete = forward.get_concrete_function(tf.TensorSpec([1, *model.inputs[0].shape[1:]], tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profile = tf.compat.v1.profiler.profile(
        graph=frozen.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
    )
    return int(profile.total_float_ops)
