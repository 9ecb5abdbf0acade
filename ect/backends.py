"""The Keras backends ect can train on, as plain data: config validates names against them, preflight checks that
they are installed, and a run selects one (KERAS_BACKEND) before Keras is imported. Importing this module imports
no framework.

A backend is part of a training environment like the host: the same model, data and settings trained with Keras 3
on TensorFlow, JAX or PyTorch is a different workload, recorded in the manifest and treated as a factor.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from importlib import metadata, util

from ect.errors import ConfigError

DEFAULT_BACKEND = "tensorflow"


@dataclass(frozen=True)
class Backend:
    name: str  # KERAS_BACKEND's value
    module: str  # the framework's import name
    distribution: str  # the framework's package name on PyPI, for its version
    install: str  # how a host installs it (README: "Backends")
    unsupported_architectures: frozenset[str] = frozenset()

    def installed(self) -> bool:
        return util.find_spec(self.module) is not None

    def version(self) -> str | None:
        try:
            return metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            return None


BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("tensorflow", "tensorflow", "tensorflow",
            "pip install -r requirements.txt (GPU host: pip install 'tensorflow[and-cuda]==2.21.0'; README: Backends)"),
    Backend("jax", "jax", "jax",
            "pip install -r requirements.txt (GPU host: pip install 'jax[cuda13]==0.10.2'; README: Backends)"),
    Backend("torch", "torch", "torch",
            "pip install -r requirements-torch.txt (GPU host: with --extra-index-url "
            "https://download.pytorch.org/whl/cu130, the CUDA build; README: Backends)",
            # Keras 3.15: "NASNetMobile is not available with the torch backend at this time due to an outstanding bug"
            unsupported_architectures=frozenset({"nasnet_mobile"})),
)}


def get_backend(name: str) -> Backend:
    try:
        return BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}") from None


def check_offers(name: str, architectures) -> Backend:
    """The backend, offering every architecture (whatever host it is installed on); ConfigError naming both."""
    backend = get_backend(name)
    refused = sorted(set(architectures) & backend.unsupported_architectures)
    if refused:
        raise ConfigError(f"backend {name} does not offer architecture(s) {', '.join(refused)}")
    return backend


def check_backend(name: str, architectures=()) -> Backend:
    """The backend, offering every architecture and installed here; ConfigError naming what is missing."""
    backend = check_offers(name, architectures)
    if not backend.installed():
        raise ConfigError(f"backend {name} is not installed on this host (no module {backend.module!r}): "
                          f"{backend.install}")
    return backend


def select_backend(name: str) -> Backend:
    """Makes `name` the Keras backend of this process (KERAS_BACKEND), TensorFlow unimportable in it unless it is the
    backend; Keras must not be imported yet with another one."""
    backend = check_backend(name)
    loaded = sys.modules.get("keras")
    if loaded is not None and loaded.backend.backend() != name:
        raise ConfigError(f"backend {name}: Keras was already imported with backend {loaded.backend.backend()} in "
                          "this process; a run's backend is chosen before Keras is imported (one process per run)")
    os.environ["KERAS_BACKEND"] = name
    if name != "tensorflow" and "tensorflow" not in sys.modules:
        # Keras probes for TensorFlow wherever it is installed (seeding, saving a model), which would import it into
        # a JAX or PyTorch run: seconds and memory in the measured process. In this process it is not there.
        sys.modules["tensorflow"] = None
    return backend


def keras_backend() -> str:
    """The backend Keras runs on in this process (imports Keras)."""
    import keras

    return keras.backend.backend()


def backend_record(name: str) -> dict:
    """What a manifest records of a run's backend: its name, its version and Keras's."""
    backend = get_backend(name)
    try:
        keras_version = metadata.version("keras")
    except metadata.PackageNotFoundError:
        keras_version = None
    return {"name": name, "version": backend.version(), "keras_version": keras_version}
