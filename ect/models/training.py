"""Two-phase training as in the SEAA 2023 package: the training loop every run uses (ect.runs).

Phase 1 trains a new head on the frozen base (OPTIMIZER, default Adam) for INITIAL_EPOCHS; phase 2
unfreezes the whole base and fine-tunes (FT_OPTIMIZER, default SGD) for at most FT_EPOCHS more. Both phases stop early on validation accuracy
and reduce the learning rate on plateaus; phase 2 restores the best weights.
"""

from __future__ import annotations

import csv
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from ect.projection import PROJECTION_COLUMNS, History, Plan, project
from ect.raw.columns import EPOCH_ENERGY_COLUMNS, HISTORY_COLUMNS

log = logging.getLogger(__name__)


def f1_score(precision: float, recall: float) -> float:
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


@dataclass
class TrainingResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch, HISTORY_COLUMNS
    initial_epochs_trained: int = 0
    ft_epochs_trained: int = 0


def _epoch_recorder(result: TrainingResult, phase: str, last_epoch: int, history_csv: Path | None, monitor=None,
                    plan: Plan | None = None, projection_history: History | None = None):
    import keras

    class EpochRecorder(keras.callbacks.Callback):
        """Appends one history row per epoch (flushed, so a crash keeps the epochs done) and logs progress."""

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
            projection = None
            if monitor is not None:
                row.update(epoch_energy(monitor.end_window(f"epoch_{epoch + 1}")))
                # EarlyStopping (listed before this callback) has set stop_training when this epoch ends the phase.
                ended = epoch + 1 >= last_epoch or bool(getattr(self.model, "stop_training", False))
                projection = project([*result.history, row], plan, projection_history, ended) if plan else None
                row.update(projection.columns() if projection else {})
            result.history.append(row)
            if history_csv is not None:
                new = not history_csv.exists()
                with open(history_csv, "a", newline="") as handle:
                    columns = HISTORY_COLUMNS + (EPOCH_ENERGY_COLUMNS + PROJECTION_COLUMNS if monitor is not None
                                                 else ())
                    writer = csv.DictWriter(handle, columns, extrasaction="ignore")
                    if new:
                        writer.writeheader()
                    writer.writerow(row)
            log.info(
                f"  epoch {epoch + 1}/{last_epoch} ({phase}) {row['duration_s']:.1f} s  loss {row.get('loss', float('nan')):.4f}"
                f"  val_accuracy {row.get('val_accuracy', float('nan')):.4f}  val_f1 {row['val_f1']:.4f}"
                + (f"  energy {row['total_energy_J']:.1f} J" if "total_energy_J" in row else "")
            )
            if projection is not None:
                log.info(f"  {projection.text()}")

    return EpochRecorder()


def epoch_energy(measurement) -> dict:
    """An EnergyMonitor Measurement as the history row's energy columns."""
    return {
        "gpu_energy_J": measurement.energy.gpu_total_J,
        "gpu_energy_source": measurement.energy.gpu_sources,
        "cpu_energy_J": measurement.cpu_energy_J,
        "cpu_energy_source": measurement.cpu_energy_source,
        "total_energy_J": measurement.total_energy_J,
    }


def train_two_phase(model, base, train_ds, val_ds, experiment, history_csv: Path | None = None,
                    callbacks=(), monitor=None, projection_history: History | None = None) -> TrainingResult:
    """Runs both phases on `model` (built by build_model). `callbacks` are added to both phases.

    With an EnergyMonitor, every epoch is a measurement window named epoch_<n> whose energy goes
    into its history row, with the run's projected total energy (ect.projection) from `projection_history`
    (early stopping's distribution in the history; None: the plan only)."""
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
    plan = Plan(experiment.initial_epochs, experiment.ft_epochs)
    recorder = _epoch_recorder(result, "initial", first, history_csv, monitor, plan, projection_history)
    history = model.fit(train_ds, validation_data=val_ds, epochs=first, verbose=0, shuffle=False,
                        callbacks=[*stopping_callbacks(False), recorder, *callbacks])
    result.initial_epochs_trained = len(history.epoch)

    base.trainable = True
    compile_model(model, make_optimizer(experiment.ft_optimizer, experiment.ft_learning_rate, experiment.ft_momentum))
    last = result.initial_epochs_trained + experiment.ft_epochs
    recorder = _epoch_recorder(result, "fine_tuning", last, history_csv, monitor, plan, projection_history)
    history = model.fit(train_ds, validation_data=val_ds, initial_epoch=result.initial_epochs_trained, shuffle=False,
                        epochs=last, verbose=0, callbacks=[*stopping_callbacks(True), recorder, *callbacks])
    result.ft_epochs_trained = len(history.epoch)
    return result
