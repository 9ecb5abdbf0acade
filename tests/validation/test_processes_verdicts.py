"""A batch large enough for worker processes (issue 27: both cores) gets exactly the verdicts it gets in one process,
and the workers' log lines reach the validation's log."""

import shutil

from conftest import log_lines
from test_validation import CORRUPTIONS, VALID, corrupted_run, write_valid_run
from ect import processes
from ect.validation import Limits, checks, validate_raw


def verdicts(results) -> dict:
    return {r.run: (r.status, [f.to_dict() for f in r.failures], [f.to_dict() for f in r.warnings]) for r in results}


def test_worker_processes_give_the_verdicts_of_one_process(tmp_path, monkeypatch):
    raw = tmp_path / "one" / "raw"
    for environment, architecture, run_id, kwargs in VALID:
        write_valid_run(raw / environment / architecture / run_id, **kwargs)
    for name, mutate, *_ in CORRUPTIONS:
        corrupted_run(raw / "local" / "mobilenet_v2" / f"corrupt-{name}", mutate)
    shutil.copytree(raw, tmp_path / "workers" / "raw")

    one = verdicts(validate_raw(raw, Limits(), tmp_path / "one" / "validation"))
    monkeypatch.setattr(checks, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(processes, "cpu_count", lambda: 2)
    with log_lines() as lines:
        workers = verdicts(validate_raw(tmp_path / "workers" / "raw", Limits(), tmp_path / "workers" / "validation"))
    assert any("in 2 processes" in line for line in lines), lines
    assert workers == one
    assert sum(status == "quarantined" for status, _, _ in one.values()) == len(CORRUPTIONS)
