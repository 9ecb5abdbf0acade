"""The original's raw measurements to a per-run dataset: ect end to end beside the original's own pandas approach.

    .venv/bin/python bench/legacy_speed.py                 # 60 one-hour runs (a few minutes)
    .venv/bin/python bench/legacy_speed.py --runs 8 --hours 0.2   # smoke run

Writes --runs run pairs in the original's formats under a temporary folder: gpu-power-<stamp>.csv as nvidia-smi
writes it (half with its native header, units and "2023/03/08 21:29:56.373" timestamps, half with the original's
renamed header and ISO timestamps), cpu-mem-usage-<stamp>.csv as the original's psutil sampler wrote it; 1 Hz,
--hours each, power with epoch-shaped load, noise and centiwatt precision.

Then, each as the command a user runs (a fresh Python process, imports included), in one run:
- baseline: the original's approach in pandas: per run pd.read_csv(engine="python") with a per-value converter for
  every numeric field, skiprows/skipfooter=3, pd.to_datetime, merge_asof(gpu, cpu, nearest), per-run trapezoid energy
  and means, one Parquet table of samples and one of runs; no validation;
- ect: `ect import-legacy SRC RAW` + `ect validate RAW` + `ect aggregate RAW` (Great Expectations validation
  included);
- validation alone, two ways, in this process: every run validated in its own batch (five validations a run, as
  before batches) against the batched validation that `ect validate` does.
The per-run GPU energy of ect and the baseline must agree to 1e-9 (same samples, same trapezoid); exit 1 if not.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
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
TRIM = 3


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=60, help="run pairs to write (default 60)")
    parser.add_argument("--hours", type=float, default=1.0, help="length of each run (default 1)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    return parser.parse_args()


def write_runs(src: Path, runs: int, hours: float) -> None:
    rng = np.random.default_rng(2023)
    n = int(hours * 3600)
    start = datetime(2023, 3, 8, 21, 0, 0)
    for r in range(runs):
        environment, architecture = ("workstation", "cloud")[r % 2], ("vgg16", "resnet50", "xception")[r % 3]
        begin = start + timedelta(hours=2 * r)
        stamp = begin.strftime("%Y%m%dT%H%M%S")
        folder = src / environment / architecture
        folder.mkdir(parents=True, exist_ok=True)
        t = np.arange(n)
        epoch = rng.uniform(70, 110)
        power = np.where((t % epoch) / epoch < 0.88, 265.0, 140.0) + rng.normal(0, 6, n)
        times = [begin + timedelta(seconds=int(s), milliseconds=int(rng.integers(0, 40))) for s in t]
        native = r % 2 == 0
        lines = [NATIVE if native else RENAMED]
        for moment, watts in zip(times, power):
            stamp_text = moment.strftime("%Y/%m/%d %H:%M:%S.%f" if native else "%Y-%m-%d %H:%M:%S.%f")[:-3]
            if native:
                lines.append(f"{stamp_text}, NVIDIA GeForce RTX 3090, {int(rng.integers(80, 100))} %, 30 %, "
                             f"24576 MiB, 23573 MiB, {watts:.2f} W, 350.00 W, {int(rng.integers(60, 75))}")
            else:
                lines.append(f"{stamp_text},NVIDIA GeForce RTX 3090,{int(rng.integers(80, 100))} %,30 %,24576 MiB,"
                             f"23573 MiB,{watts:.2f} W,350.00 W,{int(rng.integers(60, 75))}")
        (folder / f"gpu-power-{stamp}.csv").write_text("\n".join(lines) + "\n")
        cpu = [CPU_HEADER] + [f"{(moment + timedelta(microseconds=123456)).isoformat()},{rng.uniform(90, 110):.1f},"
                              f"{rng.uniform(12000, 12500):.3f},{rng.uniform(40, 60):.1f}" for moment in times]
        (folder / f"cpu-mem-usage-{stamp}.csv").write_text("\n".join(cpu) + "\n")


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


def timed(command: list[str], env: dict) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode not in (0,):
        raise SystemExit(f"{' '.join(command[:4])} failed ({result.returncode}):\n{result.stdout[-2000:]}"
                         f"\n{result.stderr[-2000:]}")
    return seconds


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        baseline(Path(sys.argv[2]), Path(sys.argv[3]))
        return 0
    args = parse_args()
    root = Path(tempfile.mkdtemp(prefix="ect-legacy-bench-"))
    src, raw = root / "src", root / "metrics" / "raw"
    write_runs(src, args.runs, args.hours)
    size_mb = sum(p.stat().st_size for p in src.rglob("*.csv")) / 1e6
    print(f"{args.runs} run pairs of {args.hours:g} h at 1 Hz in the original's formats: {size_mb:.1f} MB", flush=True)
    env = {**os.environ, "ECT_METRICS_DIR": str(root / "metrics"), "ECT_HOME": str(Path(__file__).resolve().parents[1])}
    python = [sys.executable]
    base_s = timed([*python, __file__, "--baseline", str(src), str(root / "baseline")], env)
    steps = {
        "import-legacy": [*python, "-m", "ect", "import-legacy", str(src), str(raw)],
        "validate": [*python, "-m", "ect", "validate", str(raw)],
        "aggregate": [*python, "-m", "ect", "aggregate", str(raw)],
    }
    ect_s = {name: timed(command, env) for name, command in steps.items()}
    total = sum(ect_s.values())

    ect_runs = pd.read_parquet(root / "metrics" / "processed" / "runs.parquet")
    base_runs = pd.read_parquet(root / "baseline" / "runs.parquet")
    both = ect_runs.merge(base_runs, on=["environment", "architecture", "run_id"], suffixes=("", "_base"))
    difference = float((both["gpu_energy_J"] / both["gpu_energy_J_base"] - 1).abs().max())
    if len(both) != args.runs or not difference < 1e-9:
        print(f"ect and the baseline disagree: {len(both)} runs matched of {args.runs}, GPU energy differs by "
              f"up to {difference:.3g}")
        return 1

    from ect.raw.layout import find_runs
    from ect.validation import Limits
    from ect.validation.validate import validate_runs

    folders = find_runs(raw)
    validate_runs(folders[:1], Limits())  # Great Expectations' start-up, outside both figures
    started = time.perf_counter()
    for folder in folders:
        validate_runs([folder], Limits())
    one_by_one = time.perf_counter() - started
    started = time.perf_counter()
    validate_runs(folders, Limits())
    batched = time.perf_counter() - started

    print(f"baseline (the original's pandas approach, no validation): {base_s:.3g} s")
    print(f"ect end to end: {total:.3g} s = " + " + ".join(f"{name} {s:.3g} s" for name, s in ect_s.items())
          + f"  ->  {base_s / total:.3g}x the baseline's speed")
    print(f"validation of {len(folders)} runs in this process: one run per batch {one_by_one:.3g} s "
          f"({one_by_one / len(folders) * 1000:.3g} ms/run), batched {batched:.3g} s ({batched / len(folders) * 1000:.3g} "
          f"ms/run)  ->  {one_by_one / batched:.3g}x")
    print(f"ect's and the baseline's per-run GPU energy agree to {difference:.2g} (relative)")
    if args.keep:
        print(f"kept {root}")
    else:
        import shutil

        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
