"""The one error tree of ect. Every error a user can meet derives from EctError, and its message names the
file, key or value at fault and what was expected; `ect` prints it as one line and exits with the error's
exit_code. The exit statuses of `ect`:
    0  all good
    1  the command ran, and some of its items did not pass (runs quarantined or not measured, files not
       imported, runs not published or synced, an energy regression)
    2  usage or configuration error: bad arguments, settings, input files or data, or nothing to work on (no runs
       to check, compare, analyse or export); nothing was changed
    3  the system or a bug: a file could not be read or written (disk full, read-only, no permission: `ect` names
       the path and the OS's reason), the run store, a runner or a sensor failed, or an unexpected exception (a bug,
       printed with its traceback)
"""

import errno
import reprlib

USAGE_ERROR = 2
INTERNAL_ERROR = 3


class EctError(Exception):
    """Base of every error ect reports to its user."""

    exit_code = INTERNAL_ERROR


class InputError(EctError, ValueError):
    """Bad input from the user: arguments, settings, files or data."""

    exit_code = USAGE_ERROR


class NothingToDo(InputError):
    """Nothing to work on: no processed dataset, or no runs in it (of the environment or campaign asked for)."""


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


class BudgetExceeded(EctError):
    """A DAG run's predicted energy is above its ENERGY_BUDGET_KWH (or a person rejected it): nothing was trained."""

    exit_code = 1


class StoreError(EctError):
    """The run store (RUN_STORE) cannot be reached, read or written; the message names it, credentials masked."""


# Error lines stay readable whatever they quote: a value is cut after QUOTE_LIMIT characters, a line after LINE_LIMIT.
QUOTE_LIMIT = 500
LINE_LIMIT = 1000
_CONTAINER_REPR = reprlib.Repr()  # a list or mapping quoted: its first items, nested 3 deep, however large it is
_CONTAINER_REPR.maxlevel, _CONTAINER_REPR.maxstring, _CONTAINER_REPR.maxother = 3, 60, 60
_CONTAINER_REPR.maxlist = _CONTAINER_REPR.maxtuple = _CONTAINER_REPR.maxdict = _CONTAINER_REPR.maxset = 10


def shorten(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text`, cut after `limit` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def quoted(value, limit: int = QUOTE_LIMIT) -> str:
    """repr(value) for an error message, at most `limit` characters (and a note of how many more)."""
    try:
        text = _CONTAINER_REPR.repr(value) if isinstance(value, (list, tuple, dict, set)) else repr(value)
    except ValueError:  # an integer past Python's int-to-string limit (sys.get_int_max_str_digits)
        return f"<an integer of about {int(abs(value).bit_length() * 0.30103) + 1:,} digits>"
    return shorten(text, limit)


# What the OS says when the machine, not ect, refuses: a full disk, a read-only file system, missing permission.
SYSTEM_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG, errno.EIO,
                 errno.EMFILE, errno.ENFILE}
WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


def is_system_error(error: BaseException) -> bool:
    """An OSError the operating system raised about a file (it names one) or about the machine (disk, permission)."""
    return isinstance(error, OSError) and (error.filename is not None or error.errno in SYSTEM_ERRNOS)


def describe_os_error(error: OSError) -> str:
    """ "cannot write /x/y: No space left on device (ENOSPC)": the path, what failed and the OS's reason."""
    reason = error.strerror or str(error)
    if error.errno in errno.errorcode:
        reason += f" ({errno.errorcode[error.errno]})"
    verb = "cannot write" if error.errno in WRITE_ERRNOS else "cannot access"
    if error.filename is None:
        return f"the system refused: {reason}"
    if error.filename2 is not None:
        return f"{verb} {error.filename} -> {error.filename2}: {reason}"
    return f"{verb} {error.filename}: {reason}"
