"""Nothing to validate costs nothing: a validate whose runs all kept their verdict reads the verdicts alone, without
importing the checks, pandas or Great Expectations (issue 27, part 3)."""

import ast
import json
import os
import subprocess
import sys

from conftest import REPO
from raw_runs import write_valid_run

PROBE = """
import sys
from ect.cli import main
status = main(["validate", sys.argv[1]])
print({"status": status, "loaded": sorted(m for m in ("pandas", "great_expectations", "ect.validation.checks")
                                         if m in sys.modules)})
"""


def validate_in_a_fresh_process(raw, env) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, str(raw)], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def test_a_no_op_validate_imports_neither_the_checks_nor_pandas_nor_great_expectations(tmp_path, project):
    raw = tmp_path / "metrics" / "raw"
    for n in range(3):
        write_valid_run(raw / "local" / "vgg16" / f"run-{n}", samples=60)
    env = {**os.environ, "ECT_HOME": str(project), "ECT_METRICS_DIR": str(tmp_path / "metrics")}
    first = validate_in_a_fresh_process(raw, env)
    assert first["status"] == 0 and "great_expectations" in first["loaded"]  # three runs checked
    again = validate_in_a_fresh_process(raw, env)
    assert again == {"status": 0, "loaded": []}
    summary = json.loads((tmp_path / "metrics" / "validation" / "summary.json").read_text())
    assert summary["passed"] == 3
    write_valid_run(raw / "local" / "vgg16" / "run-3", samples=60)  # one new run: the checks load again, for it
    assert "ect.validation.checks" in validate_in_a_fresh_process(raw, env)["loaded"]
