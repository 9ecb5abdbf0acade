"""What a validation says of a run, without the checks: failure levels, the Failure record, the limits, and the
symbolic-link refusal. Light on purpose: reading verdicts (a no-op `ect validate`, the aggregation's eligibility)
does not import the checks, pandas or Great Expectations."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ect.raw.atomic import is_link
from ect.raw.layout import RUN_FILES

ERROR, WARNING = "error", "warning"  # a failure's level: an error quarantines its run, a warning is listed
NOT_A_LINK = "not_a_link"  # the check of a run file or folder that is a symbolic link (never followed)


@dataclass(frozen=True)
class Limits:
    max_gap_factor: float = 20.0
    min_samples: int = 3
    power_limit_factor: float = 1.5


@dataclass(frozen=True)
class Failure:
    file: str
    check: str  # the Great Expectations expectation type, or file_readable / file_complete / row_field_count
    column: str | None
    details: str
    level: str = ERROR  # ERROR quarantines the run; WARNING is listed (validation.json's "failures" or "warnings")

    def to_dict(self) -> dict:
        return {"file": self.file, "check": self.check, "column": self.column, "details": self.details}


def link_failure(name: str) -> Failure:
    """A run file that is a symbolic link: its target is not read (it could be any file of this machine)."""
    return Failure(name, NOT_A_LINK, None, f"{name} is a symbolic link: not read")


def linked_files(folder: Path) -> list[Failure]:
    """A failure for each run file of `folder` that is a symbolic link."""
    return [link_failure(name) for name in RUN_FILES if is_link(Path(folder) / name)]
