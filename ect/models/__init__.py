"""Keras models: building an architecture of the registry (ect.architectures), two-phase training, FLOPs, the
GPUs the run's framework may use (per backend), and saving trained models.

Only ect.models.layers imports Keras at import time; the other modules import TensorFlow when called.
"""
