"""The first validation of a process (Great Expectations imported then) adds no Great Expectations INFO lines to a log
that shows INFO, as an Airflow task log does."""

import subprocess
import sys
from pathlib import Path

SCRIPT = """
import logging, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
from raw_runs import write_valid_run
from ect.raw.layout import RunKey
from ect.validation import Limits, validate_run
folder = RunKey("local", "tiny_cnn", "r1").folder(Path(sys.argv[1]) / "raw")
write_valid_run(folder)
print("status:", validate_run(folder, Limits()).status)
"""


def test_a_first_validation_logs_no_great_expectations_info_lines(tmp_path):
    tests = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(tests)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "status: passed" in result.stdout
    assert "Skipping registering function" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("great_expectations")] == []
