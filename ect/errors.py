"""The one error tree of ect. Every error a user can meet derives from EctError, and its message names the
file, key or value at fault and what was expected; `ect` prints it as one line and exits with the error's
exit_code. The exit statuses of `ect`:
    0  all good
    1  the command ran, and some of its items did not pass (runs quarantined or not measured, files not
       imported, runs not published or synced, an energy regression)
    2  usage or configuration error: bad arguments, settings, input files or data (nothing was changed)
    3  internal error: the run store, a runner or a sensor failed, or a bug (an unexpected exception)
"""

USAGE_ERROR = 2
INTERNAL_ERROR = 3


class EctError(Exception):
    """Base of every error ect reports to its user."""

    exit_code = INTERNAL_ERROR


class InputError(EctError, ValueError):
    """Bad input from the user: arguments, settings, files or data."""

    exit_code = USAGE_ERROR


class ConfigError(InputError):
    """A configuration value is missing or invalid; the message names the file, key, value and what is allowed."""


class DatasetError(InputError):
    """Bad dataset input; the message names the culprit and what was expected."""


class ModelError(InputError):
    """A model cannot be built as configured; the message says why and what to do."""


class GpuSelectionError(InputError):
    """The selected GPUs do not all exist."""


class MeasurementError(InputError):
    """A measurement was asked for wrongly (a window opened twice, never begun, a sampling interval <= 0)."""


class LegacyImportError(InputError):
    """The legacy data cannot be imported as it is; the message names the file (and line)."""


class TrackingError(EctError):
    """A run cannot be tracked in MLflow as asked (e.g. it is not completed)."""


class RunnerError(EctError):
    """A profiled run cannot be launched (no Docker engine, no image, `python -m ect` broken) or it failed."""


class RunsNotMeasured(EctError):
    """Planned runs of a DAG run failed, were quarantined or were never validated."""

    exit_code = 1


class EnergyRegression(EctError):
    """The latest campaign used significantly more energy than its baseline."""

    exit_code = 1


class StoreError(EctError):
    """The run store (RUN_STORE) cannot be reached, read or written; the message names it, credentials masked."""
