"""bench/legacy_speed.py on a tiny size: every step runs, its table has a time and a peak memory per step, and ect's
per-run GPU energy agrees with the pandas baseline's (exit status 0). No timed assertions."""

import json
import re
import subprocess
import sys

from conftest import REPO

SCRIPT = REPO / "bench" / "legacy_speed.py"
STEPS = ["baseline (pandas, no validation)", "import-legacy", "validate", "aggregate", "ect end to end",
         "no-op rerun: import-legacy", "no-op rerun: validate", "no-op rerun: aggregate", "no-op rerun: total",
         "10 new runs: import-legacy", "10 new runs: validate", "10 new runs: aggregate", "10 new runs: total"]


def test_tiny_run_prints_every_step_with_its_time_and_peak_memory(tmp_path):
    figures = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--runs", "4", "--hours", "0.02", "--json", str(figures)],
                            capture_output=True, text=True, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]

    rows = {}
    for line in result.stdout.splitlines():
        match = re.fullmatch(r"(.+?)\s+(\d+\.\d+)\s+(\d+\.\d+)", line)
        if match:
            rows[match.group(1)] = (float(match.group(2)), float(match.group(3)))
    assert list(rows) == STEPS, output[-6000:]
    assert all(seconds > 0 and peak_MiB > 0 for seconds, peak_MiB in rows.values())
    assert "wrote 4/4 run pairs (100%)" in output
    assert "processed runs after the 10 new runs: 14 (expected 14)" in output
    assert re.search(r"target: no-op rerun \(validate \+ aggregate\) under 1 s: .* (met|not met)", output)
    assert re.search(r"target: 10 new runs .* under 6 s: .* (met|not met)", output)
    assert "per-run GPU energy agree" in output

    size = json.loads(figures.read_text())["sizes"][0]
    assert size["runs"] == 4 and size["energy_agrees"] is True and size["processed_runs_after_new"] == 14
    assert [step["name"] for step in size["steps"]] == STEPS
    assert all(step["seconds"] > 0 and step["peak_MiB"] > 0 for step in size["steps"])
    assert set(size["targets"]) == {"no-op rerun under 1 s", "10 new runs under 6 s"}  # no speed target at 4 runs
