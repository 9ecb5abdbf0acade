"""The original's raw measurements to a per-run dataset: ect end to end beside the original's own pandas approach.

    .venv/bin/python bench/legacy_speed.py --runs 300,3000      # issue 27's sizes (3,000 runs: about 4 GB of disk)
    .venv/bin/python bench/legacy_speed.py --runs 4 --hours 0.02   # smoke run (tests/bench/test_legacy_speed.py)

For each size in --runs (a comma list, default 300), in one invocation: writes that many run pairs in the original's
formats under a temporary folder: gpu-power-<stamp>.csv as nvidia-smi writes it (half with its native header, units
and "2023/03/08 21:29:56.373" timestamps, half with the original's renamed header and ISO timestamps),
cpu-mem-usage-<stamp>.csv as the original's psutil sampler wrote it; 1 Hz, --hours each, power with epoch-shaped
load, noise and centiwatt precision (lines built with numpy, progress every 10 %).

Then, each as the command a user runs (a fresh Python process, imports included), its wall time and its peak memory
(the child's peak resident set from os.wait4, or, where it starts worker processes, the largest sum of the resident
sets of it and its workers, sampled every 0.1 s):
- baseline: the original's approach in pandas: per run pd.read_csv(engine="python") with a per-value converter for
  every numeric field, skiprows/skipfooter=3, pd.to_datetime, merge_asof(gpu, cpu, nearest), per-run trapezoid energy
  and means, one Parquet table of samples and one of runs; no validation;
- ect end to end: `ect import-legacy SRC RAW` + `ect validate RAW` + `ect aggregate RAW`;
- a no-op rerun, nothing changed: `ect import-legacy SRC RAW` again (it skips every run, whose folder has a completed
  manifest, and writes nothing), `ect validate RAW`, `ect aggregate RAW`;
- 10 new runs: 10 more run pairs (later stamps) in a second source folder, `ect import-legacy NEWSRC RAW` +
  `ect validate RAW` + `ect aggregate RAW` over the existing history.
Prints a table per size, ect's speed against the baseline's and issue 27's targets (at least 3x the baseline's speed
at 300 runs and 8x at 3,000; the no-op rerun under 1 s; 10 new runs under 6 s), each "met" or "not met"; the
targets do not set the exit status. The per-run GPU energy of ect and the baseline must agree to 1e-9 (same samples,
same trapezoid); exit 1 if not. --json PATH writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from functools import reduce
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

NATIVE = ("timestamp, name, utilization.gpu [%], utilization.memory [%], memory.total [MiB], memory.used [MiB], "
          "power.draw [W], power.max_limit [W], temperature.gpu")
RENAMED = ("timestamp,gpu_name,gpu_usage,gpu_memory_usage,gpu_total_memory,gpu_memory_used,gpu_power_draw,"
           "gpu_max_power,gpu_temperature")
CPU_HEADER = "timestamp,cpu usage (%),memory usage (MB),temperature (Celsius)"
GPU_NAME = "NVIDIA GeForce RTX 3090"
TRIM = 3
NEW_RUNS = 10
START = datetime(2023, 3, 8, 21, 0, 0)
SPEED_TARGETS = {300: 3.0, 3000: 8.0}  # issue 27: ect at least this many times the baseline's speed at this size
NO_OP_TARGET_S = 1.0
NEW_RUNS_TARGET_S = 6.0


@dataclass
class Step:
    name: str
    seconds: float
    peak_MiB: float  # the command's peak resident memory (with its worker processes)


def run_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--runs wants run counts separated by commas (e.g. 300,3000), got {text!r}")
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--runs wants run counts of at least 1, got {text!r}")
    return sizes


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=run_sizes, default=[300],
                        help="run pairs to write, one size or a comma list (default 300; issue 27: 300,3000)")
    parser.add_argument("--hours", type=float, default=1.0, help="length of each run (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON to PATH")
    return parser.parse_args()


def _joined(*pieces) -> np.ndarray:
    """Element-wise concatenation of text arrays and constant strings."""
    return reduce(np.strings.add, pieces)


def _decimal(values: np.ndarray, places: int) -> np.ndarray:
    """Non-negative numbers as f"{value:.{places}f}" writes them, vectorised."""
    scale = 10 ** places
    scaled = np.rint(values * scale).astype(np.int64)
    return _joined((scaled // scale).astype(str), ".", np.strings.zfill((scaled % scale).astype(str), places))


def write_runs(src: Path, first: int, count: int, hours: float, progress: bool = False) -> None:
    """Run pairs first..first+count-1 (run r starts 2 h after run r-1), the same for any count and size."""
    n = int(hours * 3600)
    started = time.perf_counter()
    for r in range(first, first + count):
        rng = np.random.default_rng([2023, r])
        environment, architecture = ("workstation", "cloud")[r % 2], ("vgg16", "resnet50", "xception")[r % 3]
        begin = START + timedelta(hours=2 * r)
        stamp = begin.strftime("%Y%m%dT%H%M%S")
        folder = src / environment / architecture
        folder.mkdir(parents=True, exist_ok=True)
        t = np.arange(n)
        epoch = rng.uniform(70, 110)
        power = np.where((t % epoch) / epoch < 0.88, 265.0, 140.0) + rng.normal(0, 6, n)
        moments = np.datetime64(begin, "ms") + t * 1000 + rng.integers(0, 40, n)
        iso = np.datetime_as_string(moments, unit="ms")  # 2023-03-08T21:29:56.373
        native = r % 2 == 0
        if native:  # nvidia-smi's own: 2023/03/08 21:29:56.373
            times, separator, header = np.strings.replace(np.strings.replace(iso, "-", "/"), "T", " "), ", ", NATIVE
        else:
            times, separator, header = np.strings.replace(iso, "T", " "), ",", RENAMED
        gpu = _joined(times, f"{separator}{GPU_NAME}{separator}", rng.integers(80, 100, n).astype(str),
                      f" %{separator}30 %{separator}24576 MiB{separator}23573 MiB{separator}", _decimal(power, 2),
                      f" W{separator}350.00 W{separator}", rng.integers(60, 75, n).astype(str))
        (folder / f"gpu-power-{stamp}.csv").write_text(header + "\n" + "\n".join(gpu.tolist()) + "\n")
        cpu_times = np.datetime_as_string(moments.astype("datetime64[us]") + 123456, unit="us")  # isoformat()
        cpu = _joined(cpu_times, ",", _decimal(rng.uniform(90, 110, n), 1), ",",
                      _decimal(rng.uniform(12000, 12500, n), 3), ",", _decimal(rng.uniform(40, 60, n), 1))
        (folder / f"cpu-mem-usage-{stamp}.csv").write_text(CPU_HEADER + "\n" + "\n".join(cpu.tolist()) + "\n")
        done = r - first + 1
        if progress and done * 10 // count > (done - 1) * 10 // count:
            print(f"  wrote {done}/{count} run pairs ({done / count:.0%}) in {time.perf_counter() - started:.3g} s",
                  flush=True)


def _number(value: str) -> float:
    """The original's per-value parsing: one Python call per field ("119.17 W" -> 119.17)."""
    value = value.strip().split(" ")[0]
    return float(value) if value and value[0] != "[" else np.nan


def baseline(src: Path, out: Path) -> None:
    """The original's own approach, in pandas."""
    frames = []
    for gpu_file in sorted(src.glob("*/*/gpu-power-*.csv")):
        stamp = gpu_file.stem.removeprefix("gpu-power-")
        gpu = pd.read_csv(gpu_file, engine="python", skipinitialspace=True, skiprows=range(1, TRIM + 1),
                          skipfooter=TRIM)
        gpu.columns = ["timestamp", "name", "usage", "memory_usage", "memory_total", "memory_used", "power",
                       "max_power", "temperature"]
        for column in ("usage", "memory_usage", "memory_total", "memory_used", "power", "max_power"):
            gpu[column] = gpu[column].map(_number)
        gpu["timestamp"] = pd.to_datetime(gpu["timestamp"].str.replace("/", "-"))
        cpu = pd.read_csv(gpu_file.with_name(f"cpu-mem-usage-{stamp}.csv"), engine="python",
                          converters={"cpu usage (%)": _number, "memory usage (MB)": _number})
        cpu["timestamp"] = pd.to_datetime(cpu["timestamp"])
        joined = pd.merge_asof(gpu.sort_values("timestamp"), cpu.sort_values("timestamp"), on="timestamp",
                               direction="nearest", tolerance=pd.Timedelta(seconds=1))
        joined["environment"], joined["architecture"] = gpu_file.parent.parent.name, gpu_file.parent.name
        joined["run_id"] = f"legacy-{stamp}"
        frames.append(joined)
    samples = pd.concat(frames, ignore_index=True)

    def per_run(group: pd.DataFrame) -> pd.Series:
        seconds = (group["timestamp"] - group["timestamp"].iloc[0]).dt.total_seconds().to_numpy()
        return pd.Series({"duration_s": seconds[-1], "gpu_energy_J": np.trapezoid(group["power"].to_numpy(), seconds),
                          "gpu_power_mean_W": group["power"].mean(), "samples": len(group)})

    runs = samples.groupby(["environment", "architecture", "run_id"]).apply(per_run).reset_index()
    out.mkdir(parents=True, exist_ok=True)
    samples.to_parquet(out / "samples.parquet", index=False)
    runs.to_parquet(out / "runs.parquet", index=False)


# Runs a command and writes "<seconds> <peak KiB> <wait status>" to argv[1]. A child's peak resident set includes the
# memory of the process it was forked from, before its exec: started from this small interpreter (-I -S, posix_spawn),
# not from the bench with pandas loaded, the figure is the command's own. A command with worker processes holds
# several at once: every 0.1 s the resident sets of the command and all its descendants are summed (shared pages, such
# as those of libraries, counted in each: an upper bound), and the peak is the larger of that sum and wait4's.
PEAK_WRAPPER = """import os, sys, threading, time
page_KiB = os.sysconf("SC_PAGE_SIZE") // 1024
def tree(pid):
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return pids
def resident_KiB(pid):
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * page_KiB
    except (OSError, IndexError, ValueError):
        return 0
summed = [0]
def watch(pid):
    while True:
        summed[0] = max(summed[0], sum(map(resident_KiB, tree(pid))))
        time.sleep(0.1)
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
threading.Thread(target=watch, args=(pid,), daemon=True).start()
_, status, usage = os.wait4(pid, 0)
seconds = time.perf_counter() - started
with open(sys.argv[1], "w") as out:
    out.write(f"{seconds!r} {max(usage.ru_maxrss, summed[0])} {status}")
"""


def measured(name: str, command: list[str], env: dict, log: Path) -> Step:
    """Runs `command` (an absolute executable first) to the end: its wall time and its peak resident memory (wait4's
    ru_maxrss of that child, in KiB on Linux, or the largest sum over it and its worker processes)."""
    figures = log.with_suffix(".peak")
    with open(log, "w") as output:
        subprocess.run([sys.executable, "-I", "-S", "-c", PEAK_WRAPPER, str(figures), *command], env=env,
                       stdout=output, stderr=subprocess.STDOUT, check=True)
    seconds, peak_KiB, status = figures.read_text().split()
    exit_status = os.waitstatus_to_exitcode(int(status))
    if exit_status != 0:
        raise SystemExit(f"{name}: {' '.join(command)} failed (exit status {exit_status}); its output ({log}) "
                         f"ends:\n{log.read_text()[-4000:]}")
    return Step(name, float(seconds), int(peak_KiB) / 1024)


def _sum(steps: list[Step], name: str) -> Step:
    return Step(name, sum(step.seconds for step in steps), max(step.peak_MiB for step in steps))


def _verdict(met: bool) -> str:
    return "met" if met else "not met"


def bench_size(root: Path, runs: int, hours: float) -> dict:
    """One size: write, baseline, ect end to end, no-op rerun, 10 new runs; its table printed, its figures returned."""
    src, new_src, metrics = root / "src", root / "new-src", root / "metrics"
    raw, logs = metrics / "raw", root / "logs"
    logs.mkdir(parents=True)
    print(f"\n== {runs} run pairs of {hours:g} h at 1 Hz", flush=True)
    started = time.perf_counter()
    write_runs(src, 0, runs, hours, progress=True)
    write_s = time.perf_counter() - started
    size_MB = sum(p.stat().st_size for p in src.rglob("*.csv")) / 1e6
    print(f"wrote {size_MB:.4g} MB in the original's formats in {write_s:.3g} s ({write_s / runs * 1000:.3g} ms/run "
          "pair)", flush=True)
    write_runs(new_src, runs, NEW_RUNS, hours)

    env = {**os.environ, "ECT_METRICS_DIR": str(metrics), "ECT_HOME": str(Path(__file__).resolve().parents[1])}
    python = [sys.executable]

    def ect(name: str, *command: str) -> Step:
        print(f"  running {name}", flush=True)
        return measured(name, [*python, "-m", "ect", *command], env, logs / f"{name.replace(': ', '-').replace(' ', '-')}.log")

    print("  running baseline", flush=True)
    base = measured("baseline (pandas, no validation)",
                    [*python, __file__, "--baseline", str(src), str(root / "baseline")], env, logs / "baseline.log")
    steps = [ect("import-legacy", "import-legacy", str(src), str(raw)),
             ect("validate", "validate", str(raw)),
             ect("aggregate", "aggregate", str(raw))]
    total = _sum(steps, "ect end to end")
    ect_runs = pd.read_parquet(metrics / "processed" / "runs.parquet")  # before the new runs join it
    no_op = [ect("no-op rerun: import-legacy", "import-legacy", str(src), str(raw)),
             ect("no-op rerun: validate", "validate", str(raw)),
             ect("no-op rerun: aggregate", "aggregate", str(raw))]
    new = [ect("10 new runs: import-legacy", "import-legacy", str(new_src), str(raw)),
           ect("10 new runs: validate", "validate", str(raw)),
           ect("10 new runs: aggregate", "aggregate", str(raw))]
    processed_after = len(pd.read_parquet(metrics / "processed" / "runs.parquet"))

    base_runs = pd.read_parquet(root / "baseline" / "runs.parquet")
    both = ect_runs.merge(base_runs, on=["environment", "architecture", "run_id"], suffixes=("", "_base"))
    difference = float((both["gpu_energy_J"] / both["gpu_energy_J_base"] - 1).abs().max())
    agree = len(both) == runs and difference < 1e-9

    speed = base.seconds / total.seconds
    no_op_s = sum(step.seconds for step in no_op[1:])  # validate + aggregate, nothing changed
    no_op_all_s = no_op_s + no_op[0].seconds
    new_s = sum(step.seconds for step in new)
    rows = [base, *steps, total, *no_op, _sum(no_op, "no-op rerun: total"), *new, _sum(new, "10 new runs: total")]
    width = max(len(row.name) for row in rows)
    print(f"{'step':<{width}}  {'seconds':>9}  {'peak MiB':>9}")
    for row in rows:
        print(f"{row.name:<{width}}  {row.seconds:>9.3f}  {row.peak_MiB:>9.1f}")
    print(f"ect end to end {total.seconds:.3g} s against the baseline's {base.seconds:.3g} s: {speed:.3g}x the "
          "baseline's speed")
    print(f"processed runs after the 10 new runs: {processed_after} (expected {runs + NEW_RUNS})")
    targets = {}
    if runs in SPEED_TARGETS:
        targets[f"ect at least {SPEED_TARGETS[runs]:g}x the baseline's speed"] = speed >= SPEED_TARGETS[runs]
        print(f"target: ect at least {SPEED_TARGETS[runs]:g}x the baseline's speed at {runs} runs: {speed:.3g}x, "
              f"{_verdict(speed >= SPEED_TARGETS[runs])}")
    else:
        print(f"target: no speed target at {runs} runs (issue 27: 3x at 300, 8x at 3,000)")
    targets[f"no-op rerun under {NO_OP_TARGET_S:g} s"] = no_op_s < NO_OP_TARGET_S
    print(f"target: no-op rerun (validate + aggregate) under {NO_OP_TARGET_S:g} s: {no_op_s:.3g} s, "
          f"{_verdict(no_op_s < NO_OP_TARGET_S)} (with import-legacy again: {no_op_all_s:.3g} s)")
    targets[f"10 new runs under {NEW_RUNS_TARGET_S:g} s"] = new_s < NEW_RUNS_TARGET_S
    print(f"target: {NEW_RUNS} new runs (import-legacy + validate + aggregate) over the {runs}-run history under "
          f"{NEW_RUNS_TARGET_S:g} s: {new_s:.3g} s, {_verdict(new_s < NEW_RUNS_TARGET_S)}")
    if agree:
        print(f"ect's and the baseline's per-run GPU energy agree to {difference:.2g} (relative)")
    else:
        print(f"ect and the baseline disagree: {len(both)} runs matched of {runs}, GPU energy differs by up to "
              f"{difference:.3g}")
    return {"runs": runs, "hours": hours, "size_MB": size_MB, "write_s": write_s,
            "steps": [asdict(row) for row in rows], "speed_vs_baseline": speed, "no_op_s": no_op_s,
            "no_op_with_import_s": no_op_all_s, "new_runs_s": new_s, "processed_runs_after_new": processed_after,
            "targets": {name: _verdict(met) for name, met in targets.items()},
            "energy_max_relative_difference": difference, "energy_agrees": agree}


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        baseline(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="ect-legacy-bench-"))
    figures = []
    try:
        for runs in args.runs:
            figures.append(bench_size(root / f"runs-{runs}", runs, args.hours))
            if not args.keep:  # 3,000 one-hour runs take a few GB: free them before the next size
                shutil.rmtree(root / f"runs-{runs}")
            if not figures[-1]["energy_agrees"]:
                break
    finally:
        if args.json:
            Path(args.json).write_text(json.dumps({"sizes": figures}, indent=2) + "\n")
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if all(size["energy_agrees"] for size in figures) else 1


if __name__ == "__main__":
    sys.exit(main())
