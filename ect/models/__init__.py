"""Keras models: building an architecture of the registry (ect.architectures), two-phase training, FLOPs, the
GPUs TensorFlow may use, and saving trained models.

Only ect.models.layers imports Keras at import time; the other modules import TensorFlow when called.
"""
