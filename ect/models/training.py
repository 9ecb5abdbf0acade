"""Two-phase training as in the SEAA 2023 package, and `ect train`: one model without energy profiling.

Phase 1 trains a new head on the frozen base (OPTIMIZER, default Adam) for INITIAL_EPOCHS; phase 2
unfreezes the whole base and fine-tunes (FT_OPTIMIZER, default SGD) for at most FT_EPOCHS more. Both phases stop early on validation accuracy
and reduce the learning rate on plateaus; phase 2 restores the best weights.
"""

from __future__ import annotations

import csv
import platform
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ect.config import Config
from ect.io import write_json_atomic
from ect.models.build import METRIC_NAMES
from ect.models.registry import get_architecture

HISTORY_COLUMNS = (
    "epoch", "phase", "duration_s", "learning_rate", "loss",
    *METRIC_NAMES, "f1", "val_loss", *(f"val_{m}" for m in METRIC_NAMES), "val_f1",
)
# Added by profiled runs: the epoch's measurement window.
EPOCH_ENERGY_COLUMNS = ("gpu_energy_J", "gpu_energy_source", "cpu_energy_J", "cpu_energy_source", "total_energy_J")


def f1_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class TrainingResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch, HISTORY_COLUMNS
    initial_epochs_trained: int = 0
    ft_epochs_trained: int = 0


def _epoch_recorder(result: TrainingResult, phase: str, last_epoch: int, history_csv: Path | None,
                    print_line: Callable[[str], None], monitor=None):
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        """Appends one history row per epoch (flushed, so a crash keeps the epochs done) and prints progress."""

        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.perf_counter()
            if monitor is not None:
                monitor.begin_window(f"epoch_{epoch + 1}")

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            row = {
                "epoch": epoch + 1, "phase": phase, "duration_s": time.perf_counter() - self.started,
                "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                **{key: float(value) for key, value in logs.items() if key in HISTORY_COLUMNS},
            }
            row["f1"] = f1_score(row.get("precision", 0.0), row.get("recall", 0.0))
            row["val_f1"] = f1_score(row.get("val_precision", 0.0), row.get("val_recall", 0.0))
            if monitor is not None:
                row.update(epoch_energy(monitor.end_window(f"epoch_{epoch + 1}")))
            result.history.append(row)
            if history_csv is not None:
                new = not history_csv.exists()
                with open(history_csv, "a", newline="") as handle:
                    columns = HISTORY_COLUMNS + (EPOCH_ENERGY_COLUMNS if monitor is not None else ())
                    writer = csv.DictWriter(handle, columns, extrasaction="ignore")
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
            print_line(
                f"  epoch {epoch + 1}/{last_epoch} ({phase}) {row['duration_s']:.1f} s  loss {row.get('loss', float('nan')):.4f}"
                f"  val_accuracy {row.get('val_accuracy', float('nan')):.4f}  val_f1 {row['val_f1']:.4f}"
                + (f"  energy {row['total_energy_J']:.1f} J" if "total_energy_J" in row else "")
            )

    return EpochRecorder()


def epoch_energy(measurement) -> dict:
    gpu = measurement.gpu_energy_J
    return {
        "gpu_energy_J": sum(gpu.values()) if gpu else None,
        "gpu_energy_source": "+".join(sorted(set(measurement.gpu_energy_source.values()))) or "unavailable",
        "cpu_energy_J": measurement.cpu_energy_J,
        "cpu_energy_source": measurement.cpu_energy_source,
        "total_energy_J": measurement.total_energy_J,
    }


def train_two_phase(model, base, train_ds, val_ds, experiment, history_csv: Path | None = None,
                    callbacks=(), print_line: Callable[[str], None] = print, monitor=None) -> TrainingResult:
    """Runs both phases on `model` (built by build_model). `callbacks` are added to both phases.

    With an EnergyMonitor, every epoch is a measurement window named epoch_<n> whose energy goes
    into its history row."""
    import keras

    from ect.models.build import compile_model, make_optimizer

    def stopping_callbacks(restore_best: bool):
        return [
            keras.callbacks.EarlyStopping(
                monitor="val_accuracy", mode="max", patience=experiment.early_stopping_patience,
                min_delta=experiment.early_stopping_min_delta, restore_best_weights=restore_best,
            ),
            keras.callbacks.ReduceLROnPlateau(
                monitor="val_accuracy", mode="max", factor=experiment.reduce_lr_factor,
                patience=experiment.reduce_lr_patience, min_delta=experiment.early_stopping_min_delta,
            ),
        ]

    result = TrainingResult()
    first = experiment.initial_epochs
    recorder = _epoch_recorder(result, "initial", first, history_csv, print_line, monitor)
    history = model.fit(train_ds, validation_data=val_ds, epochs=first, verbose=0, shuffle=False,
                        callbacks=[*stopping_callbacks(False), recorder, *callbacks])
    result.initial_epochs_trained = len(history.epoch)

    base.trainable = True
    compile_model(model, make_optimizer(experiment.ft_optimizer, experiment.ft_learning_rate, experiment.ft_momentum))
    last = result.initial_epochs_trained + experiment.ft_epochs
    recorder = _epoch_recorder(result, "fine_tuning", last, history_csv, print_line, monitor)
    history = model.fit(train_ds, validation_data=val_ds, initial_epoch=result.initial_epochs_trained, shuffle=False,
                        epochs=last, verbose=0, callbacks=[*stopping_callbacks(True), recorder, *callbacks])
    result.ft_epochs_trained = len(history.epoch)
    return result


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


def prepare_run(cfg: Config, environment: str, architecture: str,
                print_line: Callable[[str], None] = print) -> PreparedRun:
    """Validates the inputs, then (and only then) imports TensorFlow and builds data and model."""
    started = time.perf_counter()
    env = cfg.environment(environment)
    arch = get_architecture(architecture)
    experiment = cfg.experiment
    arch.check_input_size(experiment.image_size)
    from ect.data import fingerprint, scan_dataset, split_dataset

    index = scan_dataset(cfg.dataset_dir(), skip_corrupt=experiment.skip_corrupt_images,
                         warn=lambda message: print_line(f"warning: {message}"))
    split = split_dataset(index, experiment.validation_split, experiment.seed)
    print_line(f"dataset {index.root}: {len(split.train)} training and {len(split.validation)} validation images "
               f"({', '.join(index.class_names)})")

    import keras

    from ect.data.pipeline import make_tf_datasets
    from ect.models.build import build_model, make_optimizer
    from ect.models.device import configure_gpus
    from ect.models.flops import forward_flops

    gpu_names = configure_gpus(env.gpus, cfg.resources.gpu_mem_limit)
    print_line(f"devices: {', '.join(gpu_names) if gpu_names else 'CPU only (no GPU visible to TensorFlow)'}")
    keras.utils.set_random_seed(experiment.seed)
    train_ds, val_ds = make_tf_datasets(split, experiment.image_size, experiment.batch_size, experiment.seed,
                                        cache=cfg.resources.use_cache)
    optimizer = make_optimizer(experiment.optimizer, experiment.learning_rate, experiment.momentum)
    model, base = build_model(arch, experiment.image_size, experiment.weights, optimizer)
    flops = forward_flops(model, experiment.image_size)
    return PreparedRun(model, base, train_ds, val_ds, split, fingerprint(index), gpu_names, flops,
                       time.perf_counter() - started)


def final_metrics(run: PreparedRun, result: TrainingResult, experiment) -> dict:
    """Validation metrics of the final weights, cost and size of the model, and how much data it saw."""
    scores = run.model.evaluate(run.val_ds, verbose=0, return_dict=True)
    trained_epochs = result.initial_epochs_trained + result.ft_epochs_trained
    n_train, n_val = len(run.split.train), len(run.split.validation)
    return {
        **{f"val_{name}": float(scores[name]) for name in ("loss", *METRIC_NAMES)},
        "val_f1": f1_score(float(scores["precision"]), float(scores["recall"])),
        "gflops": run.flops / 1e9,
        "macs": run.flops / 2,
        "params_total": int(run.model.count_params()),
        "params_trainable": int(sum(int(w.shape.num_elements()) for w in run.model.trainable_weights)),
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


def run_training(cfg: Config, environment: str, architecture: str, experiment_name: str | None = None,
                 print_line: Callable[[str], None] = print) -> Path:
    """`ect train`: trains one model and writes MODELS_DIR/<environment>/<architecture>/<stamp>/.

    manifest.json says running, then completed or failed (atomically); history.csv grows one row per
    epoch; model.keras and then metrics.json are written when training ends. With MLFLOW_ENABLED the
    completed folder is tracked like a profiled run (without energy: nothing was measured).
    """
    from ect.models.saving import model_folder, save_model
    from ect.profiling.run import new_manifest, recorded_run, require_tracking_settings, track_if_enabled

    require_tracking_settings(cfg, experiment_name)
    run = prepare_run(cfg, environment, architecture, print_line)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    models_dir = cfg.path("MODELS_DIR")
    out = model_folder(models_dir, environment, architecture, stamp)
    out.mkdir(parents=True)
    manifest = new_manifest(cfg, "train", environment, architecture, stamp, experiment_name)
    manifest["host"] = {"hostname": socket.gethostname(), "platform": platform.platform(), "gpus": run.gpu_names}
    manifest["dataset"] = {"path": str(cfg.dataset_dir()), "fingerprint": run.fingerprint}
    print_line(f"training {architecture} for {environment}: up to {cfg.experiment.initial_epochs} + "
               f"{cfg.experiment.ft_epochs} epochs -> {out}")

    def train() -> None:
        started = time.perf_counter()
        result = train_two_phase(run.model, run.base, run.train_ds, run.val_ds, cfg.experiment,
                                 history_csv=out / "history.csv", print_line=print_line)
        duration_s = time.perf_counter() - started
        metrics = final_metrics(run, result, cfg.experiment)
        manifest["model"] = {"file": save_model(run.model, out).relative_to(models_dir).as_posix()}
        write_json_atomic(out / "metrics.json", {
            "environment": environment, "architecture": architecture, "experiment_name": experiment_name,
            "profile": cfg.profile, "seed": cfg.experiment.seed, "weights": cfg.experiment.weights,
            "gpus": run.gpu_names, "training_duration_s": duration_s, **metrics,
        })
        print_line(f"done in {duration_s:.1f} s: val_accuracy {metrics['val_accuracy']:.4f}, val_f1 "
                   f"{metrics['val_f1']:.4f}, {metrics['gflops']:.6g} GFLOPs per image -> {out}")

    recorded_run(out, manifest, train)
    track_if_enabled(cfg, out, experiment_name, print_line)
    return out
