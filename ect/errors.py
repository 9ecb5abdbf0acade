"""The one error tree of ect. Every error a user can meet derives from EctError, and its message names the
file, key or value at fault and what was expected; `ect` prints it as one line and exits with status 2."""


class EctError(Exception):
    """Base of every error ect reports to its user."""


class ConfigError(EctError, ValueError):
    """A configuration value is missing or invalid; the message names the file, key, value and what is allowed."""


class DatasetError(EctError, ValueError):
    """Bad dataset input; the message names the culprit and what was expected."""


class ModelError(EctError, ValueError):
    """A model cannot be built as configured; the message says why and what to do."""


class GpuSelectionError(EctError):
    """The selected GPUs do not all exist."""


class MeasurementError(EctError, ValueError):
    """A measurement was asked for wrongly (a window opened twice, never begun, a sampling interval <= 0)."""


class LegacyImportError(EctError, ValueError):
    """The legacy data cannot be imported as it is; the message names the file (and line)."""


class TrackingError(EctError):
    """A run cannot be tracked in MLflow as asked (e.g. it is not completed)."""


class RunnerError(EctError):
    """A profiled run cannot be launched (no Docker engine, no image, `python -m ect` broken) or it failed."""


class RunsNotMeasured(EctError):
    """Planned runs of a DAG run failed, were quarantined or were never validated."""


class EnergyRegression(EctError):
    """The latest campaign used significantly more energy than its baseline."""


class StoreError(EctError):
    """The run store (RUN_STORE) cannot be reached, read or written; the message names it, credentials masked."""
