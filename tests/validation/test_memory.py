"""Validating a run larger than the batch limit holds about one run's typed columns, not its text nor the batch's.
Measured in the validating process, once Great Expectations is loaded and a smaller run of several blocks was
validated: the peak of what numpy and Python hold (tracemalloc) plus the peak of Arrow's memory pool, and the growth of
the peak resident memory (which adds what the allocators keep for reuse)."""

import json
import subprocess
import sys
from pathlib import Path

from raw_runs import write_valid_run

SCRIPT = """
import json, sys, tracemalloc
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import pyarrow as pa
from raw_runs import write_valid_run
import ect.validation.reading as reading
import ect.validation.validate as validate
from ect.validation import Limits, validate_raw, validate_run

def kB(field):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(field + ":"))

root = Path(sys.argv[1])
reading.BLOCK_BYTES = 1 << 20
validate.BATCH_BYTES = 1 << 20
validate_run(write_valid_run(root / "raw" / "local" / "vgg16" / "small", gpus=2, samples=10_000,
                             power=lambda t: 200 + 50 * ((t // 10) % 2)), Limits())
pool = pa.proxy_memory_pool(pa.default_memory_pool())  # its own peak, from now on
pa.set_memory_pool(pool)
open("/proc/self/clear_refs", "w").write("5")  # the peak resident memory (VmHWM) starts again from now
before = kB("VmRSS")
tracemalloc.start()
results = validate_raw(root / "raw", Limits(), root / "validation")
print(json.dumps({"statuses": {r.run: r.status for r in results}, "reused": {r.run: r.reused for r in results},
                  "held_bytes": tracemalloc.get_traced_memory()[1] + pool.max_memory(),
                  "resident_growth_bytes": 1024 * (kB("VmHWM") - before)}))
"""


def test_a_run_larger_than_the_batch_limit_is_validated_within_twice_its_csv(tmp_path):
    big = write_valid_run(tmp_path / "raw" / "local" / "vgg16" / "big", gpus=2, samples=100_000,
                          power=lambda t: 200 + 50 * ((t // 10) % 2))
    csv_bytes = sum((big / name).stat().st_size for name in ("gpu.csv", "cpu.csv"))
    assert csv_bytes > 20 * (1 << 20)  # twenty times the batch limit and the block size set in SCRIPT
    tests = Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path), str(tests)], capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout.strip().splitlines()[-1])
    assert measured["statuses"] == {"local/vgg16/big": "passed", "local/vgg16/small": "passed"}, result.stderr[-3000:]
    assert measured["reused"] == {"local/vgg16/big": False, "local/vgg16/small": True}
    assert 0 < measured["held_bytes"] < 2 * csv_bytes, (measured, csv_bytes)
    assert 0 < measured["resident_growth_bytes"] < 4 * csv_bytes, (measured, csv_bytes)  # the text and pandas: 6-20 x
