"""Architecture registry, model building, two-phase training and FLOPs.

Only the submodules build, training and flops import TensorFlow, and only when called.
"""

from ect.models.registry import ARCHITECTURES, BENCHMARK_ARCHITECTURES, Architecture, ModelError, get_architecture

__all__ = ["ARCHITECTURES", "BENCHMARK_ARCHITECTURES", "Architecture", "ModelError", "get_architecture"]
