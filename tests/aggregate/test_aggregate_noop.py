"""Nothing to aggregate costs nothing: an aggregate whose runs all kept their files and verdicts reads the index and
the verdicts alone, without importing pandas, Arrow, numpy or Great Expectations, and rewrites nothing (issue 27,
part 3)."""

import ast
import json
import os
import subprocess
import sys

import pandas as pd

from conftest import REPO
from raw_runs import write_valid_run

HEAVY = ("pandas", "pyarrow", "numpy", "great_expectations")
PROBE = f"""
import sys
from ect.cli import main
status = main(["aggregate", sys.argv[1]])
print({{"status": status, "loaded": sorted(m for m in {HEAVY!r} if m in sys.modules)}})
"""


def aggregate_in_a_fresh_process(raw, env) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, str(raw)], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def a_history(tmp_path, project, runs=3):
    metrics = tmp_path / "metrics"
    for n in range(runs):
        write_valid_run(metrics / "raw" / "local" / "vgg16" / f"run-{n}", samples=60)
    env = {**os.environ, "ECT_HOME": str(project), "ECT_METRICS_DIR": str(metrics)}
    first = aggregate_in_a_fresh_process(metrics / "raw", env)
    assert first["status"] == 0 and "pandas" in first["loaded"]  # validated and aggregated
    return metrics, env


def outputs(metrics) -> dict:
    paths = [metrics / "processed" / "runs.parquet", metrics / "processed" / "runs.csv",
             metrics / "interim" / "index.json", *sorted((metrics / "interim" / "samples.parquet").iterdir())]
    return {path: path.stat().st_mtime_ns for path in paths}


def index_of(metrics) -> dict:
    return json.loads((metrics / "interim" / "index.json").read_text())["runs"]


def test_a_no_op_aggregate_imports_neither_pandas_nor_arrow_nor_numpy_and_rewrites_nothing(tmp_path, project):
    metrics, env = a_history(tmp_path, project)
    before = outputs(metrics)
    again = aggregate_in_a_fresh_process(metrics / "raw", env)
    assert again == {"status": 0, "loaded": []}
    assert outputs(metrics) == before
    assert len(pd.read_parquet(metrics / "processed" / "runs.parquet")) == 3


def test_a_changed_or_added_run_is_aggregated(tmp_path, project):
    metrics, env = a_history(tmp_path, project)
    before, index_before = outputs(metrics), index_of(metrics)
    gpu = metrics / "raw" / "local" / "vgg16" / "run-0" / "gpu.csv"
    stat = gpu.stat()
    os.utime(gpu, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the same samples, a new signature
    write_valid_run(metrics / "raw" / "local" / "vgg16" / "run-3", samples=60)
    again = aggregate_in_a_fresh_process(metrics / "raw", env)
    assert again["status"] == 0 and {"pandas", "pyarrow"} <= set(again["loaded"])
    index = index_of(metrics)
    assert sorted(index) == [f"local/vgg16/run-{n}" for n in range(4)]
    assert index["local/vgg16/run-0"]["signature"]["gpu.csv"][1] == stat.st_mtime_ns + 10**9
    assert index["local/vgg16/run-0"]["signature"] != index_before["local/vgg16/run-0"]["signature"]
    after = outputs(metrics)
    for name in ("processed/runs.parquet", "processed/runs.csv", "interim/index.json"):
        assert after[metrics / name] != before[metrics / name]
    assert list(pd.read_parquet(metrics / "processed" / "runs.parquet")["run_id"]) == [f"run-{n}" for n in range(4)]
