"""Which GPUs TensorFlow may use, and how much of their memory. Must run before TensorFlow touches a GPU."""

from __future__ import annotations


def configure_gpus(gpus: str | tuple[int, ...], memory_limit_mb: int | None) -> list[str]:
    """Restrict TensorFlow to the environment's GPUs ("all", "none" or indices); returns the visible GPUs' names."""
    import tensorflow as tf

    from ect.errors import ConfigError

    physical = tf.config.list_physical_devices("GPU")
    if gpus == "none":
        selected = []
    elif gpus == "all":
        selected = physical
    else:
        missing = [i for i in gpus if i >= len(physical)]
        if missing:
            raise ConfigError(f"GPUS={list(gpus)}: GPU indices {missing} do not exist; TensorFlow sees {len(physical)} GPU(s)")
        selected = [physical[i] for i in gpus]
    tf.config.set_visible_devices(selected, "GPU")
    for gpu in selected:
        if memory_limit_mb is not None:
            tf.config.set_logical_device_configuration(gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=memory_limit_mb)])
    return [tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in selected]
