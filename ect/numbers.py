"""Numbers read from outside (JSON, CSV text): a plain finite float, or None."""

from __future__ import annotations

import math


def finite(value) -> float | None:
    """A plain float (from a number or its text), or None where the value is missing, not a number or not finite."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
