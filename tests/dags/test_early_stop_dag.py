"""Repetitions that stop when the answer is known, in a DAG run (issue 26, part 7): the training tasks of the runs
whose architecture and backend already know the answer end without training (successfully: Airflow's skipped state
would skip validation, whose trigger rule counts a skipped upstream as not done); validation, aggregation and the
report still run, the skipped runs are listed as skipped (not missing) and the DAG run ends green."""

import json

import pandas as pd
import pytest

from conftest import airflow
from test_airflow import airflow_home  # noqa: F401 (the migrated metadata DB, a module-scoped fixture)

pytestmark = pytest.mark.airflow


def test_a_dag_run_skips_the_repetitions_whose_answer_is_known_and_ends_green(airflow_home):
    root, env = airflow_home
    # Any spread meets a target of 1000 %: after 2 completed runs the other 2 repetitions are skipped.
    env = {**env, "ECT_EARLY_STOP_SPREAD": "10", "ECT_EARLY_STOP_MIN_RUNS": "2"}
    conf = {"profile": "demo", "architectures": "tiny_cnn", "repetitions": 4}
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps(conf), env=env, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    # The mapped tasks run in any order: whichever two come last are skipped.
    assert output.count(": skipped, the answer is known: 2 completed runs spread by") == 2
    runs = pd.read_parquet(root / "metrics" / "processed" / "runs.parquet")
    assert len(runs) == 2
    summary = json.loads((root / "metrics" / "validation" / "summary.json").read_text())
    assert summary["passed"] == 2 and summary["planned_runs_without_folder"] == []
    assert len(summary["planned_runs_skipped"]) == 2
    assert set(summary["planned_runs_skipped"]).isdisjoint(f"local/tiny_cnn/{r}" for r in runs["run_id"])
    assert (root / "out" / "local" / "report.html").exists()
