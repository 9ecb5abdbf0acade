"""Profiled runs on a host whose CPUs other processes keep busy (two DAGs on two cores) pass validation: the
measurement window's edges are sampled when they happen, not when a starved sampler thread gets to run."""

import csv
import json
import os
import subprocess
import sys

from conftest import run_ect
from ect.raw.columns import iso_utc_ms
from ect.validation.facts import CPU_ENERGY_COLUMNS

BUSY_LOOPS = 2 * (os.cpu_count() or 1)  # twice as many spinning processes as cores


def test_runs_profiled_while_the_cpus_are_saturated_pass_validation(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(BUSY_LOOPS)]
    try:
        profiled = run_ect("profile", "local", "--profile", "demo", "-d", str(synthetic_dataset),
                           "--architectures", "tiny_cnn", "--repetitions", "3", "--set", f"METRICS_DIR={metrics}",
                           cwd=tmp_path, timeout=1800)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    assert profiled.returncode == 0, profiled.stdout + profiled.stderr

    validated = run_ect("validate", "--set", f"METRICS_DIR={metrics}", cwd=tmp_path)
    folders = sorted((metrics / "raw" / "local" / "tiny_cnn").iterdir())
    verdicts = {folder.name: json.loads((folder / "validation.json").read_text()) for folder in folders}
    assert len(verdicts) == 3
    assert {name: (v["status"], v["failures"]) for name, v in verdicts.items()} == \
        {name: ("passed", []) for name in verdicts}, validated.stdout + validated.stderr
    assert validated.returncode == 0, validated.stdout + validated.stderr
    for folder in folders:  # not merely within the tolerance: a CPU energy reading at each edge itself
        window = json.loads((folder / "manifest.json").read_text())["window"]
        with open(folder / "cpu.csv") as handle:
            read = {row["timestamp"] for row in csv.DictReader(handle) if any(row[c] for c in CPU_ENERGY_COLUMNS)}
        edges = [iso_utc_ms(round(window[edge] * 1000)) for edge in ("start_unix_s", "end_unix_s")]
        assert all(edge in read for edge in edges), (folder.name, edges, sorted(read)[:3], sorted(read)[-3:])
