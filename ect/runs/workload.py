"""The training workload of a run, set up before any measurement starts: the dataset checked and split, the
input pipelines, the model built and its forward-pass cost counted; and its final metrics afterwards."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from ect.architectures import get_architecture
from ect.backends import check_backend, keras_backend, select_backend
from ect.config import Config
from ect.models.training import TrainingResult, f1_score
from ect.raw.columns import QUALITY_METRICS

log = logging.getLogger(__name__)


@dataclass
class PreparedRun:
    """Everything a training run needs, set up before any measurement starts."""

    model: object
    base: object
    train_ds: object
    val_ds: object
    split: object
    fingerprint: dict
    gpu_names: list[str]
    flops: int
    seconds_to_prepare: float
    backend: str


def prepare_run(cfg: Config, environment: str, architecture: str, backend: str) -> PreparedRun:
    """Validates the inputs, selects the Keras backend, then (and only then) imports the framework and builds data
    and model."""
    started = time.perf_counter()
    env = cfg.environment(environment)
    arch = get_architecture(architecture)
    experiment = cfg.experiment
    arch.check_input_size(experiment.image_size)
    check_backend(backend, [architecture])
    from ect.data import fingerprint, scan_dataset, split_dataset

    index = scan_dataset(cfg.dataset_dir(), skip_corrupt=experiment.skip_corrupt_images)
    split = split_dataset(index, experiment.validation_split, experiment.seed)
    log.info(f"dataset {index.root}: {len(split.train)} training and {len(split.validation)} validation images "
             f"({', '.join(index.class_names)})")

    from ect.models.device import configure_gpus

    select_backend(backend)
    gpu_names = configure_gpus(backend, env.gpus, cfg.resources.gpu_mem_limit)  # before the framework is imported
    from ect.models.build import build_model, make_optimizer, set_seed
    from ect.models.flops import forward_flops

    log.info(f"backend {backend} ({keras_backend()} in Keras); devices: "
             f"{', '.join(gpu_names) if gpu_names else f'CPU only (no GPU visible to {backend})'}")
    set_seed(experiment.seed)
    train_ds, val_ds = input_pipeline(backend)(split, experiment.image_size, experiment.batch_size, experiment.seed,
                                               cache=cfg.resources.use_cache)
    optimizer = make_optimizer(experiment.optimizer, experiment.learning_rate, experiment.momentum)
    model, base = build_model(arch, experiment.image_size, experiment.weights, optimizer)
    flops = forward_flops(model, experiment.image_size)
    return PreparedRun(model, base, train_ds, val_ds, split, fingerprint(index), gpu_names, flops,
                       time.perf_counter() - started, backend)


def input_pipeline(backend: str):
    """tf.data on TensorFlow; on JAX and PyTorch the array pipeline (same images, split and augmentation, no
    TensorFlow)."""
    if backend == "tensorflow":
        from ect.data.pipeline import make_tf_datasets

        return make_tf_datasets
    from ect.data.arrays import make_array_datasets

    return make_array_datasets


def final_metrics(run: PreparedRun, result: TrainingResult, experiment) -> dict:
    """Validation metrics of the final weights, cost and size of the model, and how much data it saw."""
    scores = run.model.evaluate(run.val_ds, verbose=0, return_dict=True)
    trained_epochs = result.initial_epochs_trained + result.ft_epochs_trained
    n_train, n_val = len(run.split.train), len(run.split.validation)
    return {
        **{f"val_{name}": float(scores[name]) for name in ("loss", *QUALITY_METRICS)},
        "val_f1": f1_score(float(scores["precision"]), float(scores["recall"])),
        "gflops": run.flops / 1e9,
        "macs": run.flops / 2,
        "params_total": int(run.model.count_params()),
        "params_trainable": sum(math.prod(tuple(w.shape)) for w in run.model.trainable_weights),  # any Keras backend
        "trained_epochs": trained_epochs,
        "initial_epochs_trained": result.initial_epochs_trained,
        "ft_epochs_trained": result.ft_epochs_trained,
        "train_images": n_train,
        "validation_images": n_val,
        "train_images_seen": n_train * trained_epochs,
        "images_seen": (n_train + n_val) * trained_epochs,
        "image_size": experiment.image_size,
        "batch_size": experiment.batch_size,
        "dataset_fingerprint": run.fingerprint,
    }
