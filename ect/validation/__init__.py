"""Great Expectations checks of raw measurements; failed runs are quarantined (marked, never moved or deleted)."""

from ect.validation.verdicts import Failure, Limits
from ect.validation.validate import PASSED, QUARANTINED, RunValidation, limits_from, validate_raw, validate_run

__all__ = ["Failure", "Limits", "PASSED", "QUARANTINED", "RunValidation", "limits_from", "validate_raw", "validate_run"]
