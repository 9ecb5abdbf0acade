"""Throughput of `ect aggregate` beside a straightforward pandas implementation in the original's style.

    GX_ANALYTICS_ENABLED=False .venv/bin/python bench/aggregate_speed.py          # full run (a few minutes)
    GX_ANALYTICS_ENABLED=False .venv/bin/python bench/aggregate_speed.py --quick  # smoke run (seconds)

For each sampling rate (--rates, in Hz) the script writes --runs synthetic raw run folders of --hours each,
exactly in ect's raw format (README, "The raw run folder"): manifest.json (status completed, the sampling
interval, a measurement window that starts and ends on samples, as EnergyMonitor's windows do), gpu.csv
(one GPU: noisy epoch-shaped power in mW precision, the NVML energy counter in whole mJ unless
--no-counter, utilisation, memory, temperature, power limit), cpu.csv (process and system CPU %, RSS,
cpu_power_estimated_W, source "estimate", no RAPL) and metrics.json, with the csv module's "\\r\\n" line
ends and iso_utc_ms timestamps.

Every run is validated first (ect.validation.validate_run, which writes validation.json); that is timed
and printed on its own line but is NOT part of the aggregation figures, so they measure aggregation
alone. Then, over the same files, each timed in the same process:
- ect: ect.aggregate.aggregate.aggregate() into a fresh output folder (cold: every run is new), then
  once more into the same folder (nothing changed: the incremental no-op);
- baseline: per run pd.read_csv(engine="python") with a per-value Python converter for every numeric
  column, pd.to_datetime, pd.merge_asof(gpu, cpu, nearest, tolerance = one interval), then one
  groupby over (environment, architecture, run_id) computing each run's energy with np.trapezoid over
  power vs seconds inside the window, mean and std power; writes the samples and runs as parquet.
The two must agree: per-run GPU and CPU energy, mean/std GPU power and sample counts to 1e-6 relative
(the synthetic counter is the running trapezoid of the written power, rounded to whole mJ, so ect's
counter energy equals the baseline's integral to about 1e-9). The script exits 1 if they do not.

Throughput: runs/s = runs / seconds; MB/s = MB of gpu.csv + cpu.csv (10**6 bytes) / seconds.
Speed-up = baseline seconds / ect cold seconds (best of --repeat). Data lives in a temporary folder,
removed at the end, unless --keep.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc_ms  # noqa: E402

ARCHITECTURES = ("vgg16", "resnet50", "xception", "mobilenet_v2", "nasnet_mobile")
ENVIRONMENT = "local"
GPU_NAME = "NVIDIA A100-SXM4-40GB"
GPU_NUMERIC = [c for c in GPU_COLUMNS if c not in ("timestamp", "name")]
CPU_NUMERIC = [c for c in CPU_COLUMNS if c not in ("timestamp", "cpu_power_source")]
KEY = ["environment", "architecture", "run_id"]
CPU_TDP_W = 65.0
T0_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
TOLERANCE = 1e-6


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=24, help="synthetic runs per sampling rate (default: 24)")
    parser.add_argument("--rates", default="1,10",
                        help="comma-separated sampling rates in Hz; one set of runs each (default: 1,10)")
    parser.add_argument("--hours", type=float, default=1.0,
                        help="length of each run's measurement window in hours (default: 1.0)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="time the cold aggregations this many times, ect and baseline alternating, each into "
                             "a fresh output folder, and report the best of each (default: 3)")
    parser.add_argument("--no-counter", action="store_true",
                        help="leave energy_counter_mJ empty (a GPU without the counter): ect then integrates "
                             "power too (default: the counter is present, as on Volta and newer)")
    parser.add_argument("--profile", action="store_true",
                        help="also run one extra cold and one no-op ect aggregation per rate under cProfile "
                             "(not in the figures) and print their hot spots")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data (default: 0)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 runs of 0.05 h per rate, --repeat 1")
    parser.add_argument("--keep", metavar="DIR",
                        help="write the raw runs and outputs under DIR (must be absent or empty) and keep them, "
                             "instead of a temporary folder that is removed at the end")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.hours, args.repeat = 4, 0.05, 1
    try:
        args.rates = [float(r) for r in args.rates.split(",") if r.strip()]
    except ValueError:
        parser.error(f"--rates: expected numbers separated by commas, got {args.rates!r}")
    if not args.rates or any(r <= 0 or r > 1000 for r in args.rates):
        parser.error("--rates: every rate must be > 0 and <= 1000 Hz")
    if args.runs < 1 or args.hours <= 0 or args.repeat < 1:
        parser.error("--runs and --repeat must be >= 1 and --hours > 0")
    return args


# ----------------------------------------------------------------------------------------------- synthetic runs

def _timestamps(t_ms: np.ndarray) -> np.ndarray:
    """iso_utc_ms of every value, vectorised (checked against iso_utc_ms at both ends)."""
    stamps = np.char.add(np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms"), "Z")
    assert stamps[0] == iso_utc_ms(int(t_ms[0])) and stamps[-1] == iso_utc_ms(int(t_ms[-1]))
    return stamps


def _smooth_noise(rng, n: int, sd: float, width: int) -> np.ndarray:
    """Correlated noise: white noise averaged over `width` samples, rescaled to standard deviation sd."""
    white = rng.standard_normal(n + width - 1)
    smooth = np.convolve(white, np.ones(width) / width, mode="valid")
    return smooth * (sd / max(smooth.std(), 1e-12))


def make_run(folder: Path, rng, rate_hz: float, hours: float, counter: bool, start_ms: int,
             architecture: str, run_id: str, repetition: int) -> dict:
    """Writes one completed raw run folder; returns its true GPU and CPU energy over the window (J)."""
    interval_ms = max(1, round(1000 / rate_hz))
    window_samples = max(2, round(hours * 3600 * 1000 / interval_ms))
    pre, post = max(1, round(5000 / interval_ms)), max(1, round(3000 / interval_ms))
    n = pre + window_samples + 1 + post
    jitter = rng.integers(0, min(4, interval_ms), n)  # drift-free ticks, a few ms late
    t_ms = start_ms + np.arange(n, dtype=np.int64) * interval_ms + jitter
    first, last = pre, pre + window_samples  # the window starts and ends on samples (sample_now)
    t_s = (t_ms - t_ms[first]) / 1000

    # Power: epochs of ~90 s, ~88 % training at ~265 W and a validation dip to ~140 W; idle outside.
    epoch_s = rng.uniform(70, 110)
    phase = (t_s % epoch_s) / epoch_s
    training = (phase < 0.88) & (t_s >= 0) & (t_s <= t_s[last])
    inside = (t_s >= 0) & (t_s <= t_s[last])
    level = np.where(training, rng.uniform(240, 290), np.where(inside, 140.0, 62.0))
    width = max(1, round(rate_hz * 2))
    power = level + _smooth_noise(rng, n, 9.0, width) + rng.normal(0, 2.0, n)
    power = np.round(np.clip(power, 25.0, 395.0), 3)  # NVML: mW / 1000
    increments_mJ = np.diff(t_s) * (power[1:] + power[:-1]) / 2 * 1000
    counter_mJ = rng.integers(10**9, 5 * 10**10) + np.round(np.concatenate(([0.0], np.cumsum(increments_mJ))))
    util = np.clip(np.round(np.where(training, 96.0, np.where(inside, 35.0, 0.0)) + rng.normal(0, 2.5, n)), 0, 100)
    util_mem = np.clip(np.round(util * 0.55 + rng.normal(0, 2.0, n)), 0, 100)
    memory_used = np.round((np.where(inside, 31250.0, 512.0) + rng.normal(0, 6, n)) * 16) / 16  # bytes / 2**20
    temperature = np.round(np.clip(38 + 30 * (1 - np.exp(-np.maximum(t_s, 0) / 600)) + rng.normal(0, 0.6, n), 30, 90))

    stamps = _timestamps(t_ms)
    gpu = pd.DataFrame({
        "timestamp": stamps, "gpu_index": np.zeros(n, dtype=np.int64), "name": GPU_NAME, "power_W": power,
        "energy_counter_mJ": counter_mJ.astype(np.int64) if counter else np.full(n, np.nan),
        "utilization_gpu_pct": util.astype(np.int64), "utilization_memory_pct": util_mem.astype(np.int64),
        "memory_used_MiB": memory_used, "memory_total_MiB": 40960.0, "temperature_C": temperature.astype(np.int64),
        "power_limit_W": 400.0,
    }, columns=list(GPU_COLUMNS))
    process_pct = np.round(np.clip(np.where(inside, 92.0, 15.0) + _smooth_noise(rng, n, 6.0, width), 0, 200), 1) / 2
    rss_pages = np.round((np.where(inside, 5400.0, 900.0) + rng.normal(0, 3, n)) * 256)  # 4 KiB pages
    cpu = pd.DataFrame({
        "timestamp": stamps, "process_cpu_pct": process_pct, "process_rss_MiB": rss_pages / 256,
        "system_cpu_pct": np.round(np.clip(process_pct + rng.normal(3, 1.5, n), 0, 100), 1),
        "rapl_package_energy_uJ": np.nan, "rapl_dram_energy_uJ": np.nan,
        "cpu_power_estimated_W": CPU_TDP_W * process_pct / 100, "cpu_power_source": "estimate",
    }, columns=list(CPU_COLUMNS))

    folder.mkdir(parents=True)
    gpu.to_csv(folder / "gpu.csv", index=False, lineterminator="\r\n")
    cpu.to_csv(folder / "cpu.csv", index=False, lineterminator="\r\n")
    window_t = t_s[first:last + 1]
    energy = {"gpu_energy_J": float(np.trapezoid(power[first:last + 1], window_t)),
              "cpu_energy_J": float(np.trapezoid(cpu["cpu_power_estimated_W"].to_numpy()[first:last + 1], window_t))}
    images = int(rng.integers(1500, 4000))
    epochs = int(rng.integers(20, 60))
    (folder / "metrics.json").write_text(json.dumps({
        "val_loss": float(rng.uniform(0.05, 0.4)), "val_accuracy": float(rng.uniform(0.85, 0.99)),
        "val_precision": 0.9, "val_recall": 0.9, "val_auc": 0.95, "val_f1": 0.9, "gflops": 15.5,
        "macs": 7.75, "params_total": 14_714_688, "trained_epochs": epochs, "train_images": images,
        "validation_images": images // 4, "images_seen": epochs * (images + images // 4),
    }, indent=1))
    start_unix_s, end_unix_s = int(t_ms[first]) / 1000, int(t_ms[last]) / 1000
    manifest = {
        "run_id": run_id, "environment": ENVIRONMENT, "architecture": architecture, "repetition": repetition,
        "attempt": 1, "status": "completed", "pid": 12345, "experiment_name": "bench-aggregate-speed",
        "created": iso_utc_ms(int(t_ms[0]) - 60_000), "finished": iso_utc_ms(int(t_ms[-1]) + 1000), "seed": 0,
        "software": {"python": platform.python_version(), "source": "bench/aggregate_speed.py (synthetic)"},
        "host": {"hostname": "bench-host", "platform": "Linux-synthetic", "cpu_model": "synthetic CPU",
                 "cpu_count": 16, "gpus": [GPU_NAME], "gpu_driver": "550.00"},
        "sensors": {"sampling_interval_s": interval_ms / 1000, "used": ["nvml", "process", "estimate"],
                    "gpu_energy_source": "counter" if counter else "integrated", "cpu_energy_source": "estimated",
                    "report": {}, "details": {}},
        "window": {"start": iso_utc_ms(int(t_ms[first])), "end": iso_utc_ms(int(t_ms[last])),
                   "start_unix_s": start_unix_s, "end_unix_s": end_unix_s},
        "training": {"start": iso_utc_ms(int(t_ms[first])), "end": iso_utc_ms(int(t_ms[last]))},
        "energy": {"synthetic_truth": energy}, "error": None,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))  # last, as ect writes it
    return {"rows": n, "bytes": (folder / "gpu.csv").stat().st_size + (folder / "cpu.csv").stat().st_size, **energy}


def make_runs(raw_dir: Path, rng, count: int, rate_hz: float, hours: float, counter: bool) -> list[dict]:
    runs = []
    span_ms = round((hours * 3600 + 60) * 1000)
    for i in range(count):
        architecture = ARCHITECTURES[i % len(ARCHITECTURES)]
        repetition = i // len(ARCHITECTURES)
        start_ms = T0_MS + i * span_ms
        run_id = f"{iso_utc_ms(T0_MS)[:19].replace('-', '').replace(':', '')}Z-rep{repetition:02d}"
        folder = raw_dir / ENVIRONMENT / architecture / run_id
        runs.append({"folder": folder, **make_run(folder, rng, rate_hz, hours, counter, start_ms, architecture,
                                                  run_id, repetition)})
    return runs


# ---------------------------------------------------------------------------------------------------- baseline

def _number(value: str) -> float:
    """The original's per-value parsing: one Python call per field."""
    value = value.strip()
    return float(value) if value else np.nan


def baseline_aggregate(raw_dir: Path, out_dir: Path, environments: dict) -> pd.DataFrame:
    """A straightforward pandas aggregation in the original's style; returns the per-run frame it wrote."""
    frames = []
    for manifest_path in sorted(raw_dir.glob("*/*/*/manifest.json")):
        folder = manifest_path.parent
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("status") != "completed":
            continue
        gpu = pd.read_csv(folder / "gpu.csv", engine="python", converters={c: _number for c in GPU_NUMERIC})
        cpu = pd.read_csv(folder / "cpu.csv", engine="python", converters={c: _number for c in CPU_NUMERIC})
        gpu["timestamp"] = pd.to_datetime(gpu["timestamp"], utc=True)
        cpu["timestamp"] = pd.to_datetime(cpu["timestamp"], utc=True)
        interval = pd.Timedelta(seconds=manifest["sensors"]["sampling_interval_s"])
        joined = pd.merge_asof(gpu.sort_values("timestamp"), cpu.sort_values("timestamp"), on="timestamp",
                               direction="nearest", tolerance=interval)
        joined["environment"] = manifest["environment"]
        joined["architecture"] = manifest["architecture"]
        joined["run_id"] = manifest["run_id"]
        joined["window_start"] = pd.Timestamp(round(manifest["window"]["start_unix_s"] * 1000), unit="ms", tz="UTC")
        joined["window_end"] = pd.Timestamp(round(manifest["window"]["end_unix_s"] * 1000), unit="ms", tz="UTC")
        frames.append(joined)
    samples = pd.concat(frames, ignore_index=True)

    def per_run(group: pd.DataFrame) -> pd.Series:
        inside = group[(group["timestamp"] >= group["window_start"]) & (group["timestamp"] <= group["window_end"])]
        seconds = (inside["timestamp"] - inside["window_start"]).dt.total_seconds().to_numpy()
        gpu_J = np.trapezoid(inside["power_W"].to_numpy(), seconds)
        cpu_J = np.trapezoid(inside["cpu_power_estimated_W"].to_numpy(), seconds)
        return pd.Series({
            "duration_s": seconds[-1] - seconds[0], "gpu_energy_J": gpu_J, "cpu_energy_J": cpu_J,
            "total_energy_J": gpu_J + cpu_J, "gpu_power_mean_W": inside["power_W"].mean(),
            "gpu_power_std_W": inside["power_W"].std(ddof=0),
            "cpu_power_mean_W": inside["cpu_power_estimated_W"].mean(),
            "gpu_utilization_mean_pct": inside["utilization_gpu_pct"].mean(),
            "gpu_temperature_mean_C": inside["temperature_C"].mean(), "samples": len(inside),
        })

    runs = samples.groupby(KEY, sort=True).apply(per_run).reset_index()
    intensity = runs["environment"].map(lambda e: environments[e].carbon_intensity()[0])
    pue = runs["environment"].map(lambda e: environments[e].pue)
    runs["energy_kWh"] = runs["total_energy_J"] / 3.6e6
    runs["emissions_gCO2e"] = runs["energy_kWh"] * pue * intensity
    (out_dir / "interim").mkdir(parents=True, exist_ok=True)
    (out_dir / "processed").mkdir(parents=True, exist_ok=True)
    samples = samples.drop(columns=["window_start", "window_end"])
    samples.to_parquet(out_dir / "interim" / "samples.parquet", index=False)
    runs.to_parquet(out_dir / "processed" / "runs.parquet", index=False)
    runs.to_csv(out_dir / "processed" / "runs.csv", index=False)
    return runs


# ------------------------------------------------------------------------------------------------------ checks

def compare(ect_runs: pd.DataFrame, base_runs: pd.DataFrame, truth: pd.DataFrame, counter: bool) -> float:
    """Largest relative difference between ect's and the baseline's per-run figures; raises when > TOLERANCE."""
    both = ect_runs.merge(base_runs, on=KEY, suffixes=("_ect", "_base"), validate="one_to_one")
    if len(both) != len(ect_runs) or len(both) != len(base_runs):
        raise AssertionError(f"ect has {len(ect_runs)} runs, the baseline {len(base_runs)}, {len(both)} in common")
    expected_source = "counter" if counter else "integrated"
    if set(both["gpu_energy_source"]) != {expected_source}:
        raise AssertionError(f"ect's gpu_energy_source is {set(both['gpu_energy_source'])}, expected {expected_source}")
    worst = 0.0
    for column in ("gpu_energy_J", "cpu_energy_J", "total_energy_J", "gpu_power_mean_W", "gpu_power_std_W",
                   "cpu_power_mean_W", "duration_s", "emissions_gCO2e"):
        a, b = both[f"{column}_ect"].to_numpy(float), both[f"{column}_base"].to_numpy(float)
        rel = np.abs(a - b) / np.maximum(np.abs(b), 1e-300)
        if not (rel <= TOLERANCE).all():
            i = int(np.argmax(rel))
            raise AssertionError(f"{column}: ect {a[i]!r} vs baseline {b[i]!r} for {both.loc[i, 'run_id']} "
                                 f"({both.loc[i, 'architecture']}): relative difference {rel[i]:.3g}")
        worst = max(worst, float(rel.max()))
    if not (both["samples_ect"].to_numpy() == both["samples_base"].to_numpy()).all():
        raise AssertionError("per-run sample counts differ between ect and the baseline")
    with_truth = both.merge(truth, on=KEY)
    for column in ("gpu_energy_J", "cpu_energy_J"):
        rel = np.abs(with_truth[f"{column}_base"] - with_truth[column]) / with_truth[column]
        if not (rel <= TOLERANCE).all():
            raise AssertionError(f"baseline {column} differs from the generated truth by up to {rel.max():.3g}")
    return worst


# ------------------------------------------------------------------------------------------------------- main

def _rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.inf


def _fmt(value: float) -> str:
    """Three significant figures or so: 0.93, 12.3, 145."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def bench_rate(root: Path, rate_hz: float, args, cfg, limits, rng) -> dict:
    from ect.aggregate.aggregate import aggregate
    from ect.validation import PASSED, validate_run

    label = f"{rate_hz:g} Hz"
    raw_dir = root / f"raw-{rate_hz:g}Hz"
    started = time.perf_counter()
    runs = make_runs(raw_dir, rng, args.runs, rate_hz, args.hours, counter=not args.no_counter)
    generated_s = time.perf_counter() - started
    rows = sum(r["rows"] for r in runs)
    megabytes = sum(r["bytes"] for r in runs) / 1e6
    print(f"{label}: {args.runs} runs x {args.hours:g} h, {rows:,} GPU + {rows:,} CPU rows, {megabytes:.1f} MB of "
          f"CSV (generated in {generated_s:.1f} s)", flush=True)

    started = time.perf_counter()
    results = [validate_run(r["folder"], limits) for r in runs]
    validation_s = time.perf_counter() - started
    bad = [r for r in results if r.status != PASSED]
    if bad:
        for r in bad:
            print(f"  quarantined {r.run}: " + "; ".join(f"{f.file} {f.check} {f.details}" for f in r.failures))
        raise SystemExit(f"{len(bad)} synthetic run(s) failed validation: the generator is wrong")
    print(f"  validation (validate_run, writes validation.json; done before, not in the figures): "
          f"{validation_s:.1f} s ({validation_s / len(runs):.2f} s/run)", flush=True)

    # ect and the baseline alternate, so that a slow spell of a shared machine hits both alike; best of --repeat.
    ect_times, base_times = [], []
    for attempt in range(args.repeat):
        out_dir = root / f"out-ect-{rate_hz:g}Hz-{attempt}"
        started = time.perf_counter()
        result = aggregate(raw_dir, out_dir, cfg.environments, limits)
        ect_times.append(time.perf_counter() - started)
        if result.updated != len(runs) or result.runs != len(runs) or result.skipped:
            raise SystemExit(f"ect aggregate read {result.updated} of {len(runs)} runs; skipped {result.skipped}")
        base_out = root / f"out-base-{rate_hz:g}Hz-{attempt}"
        started = time.perf_counter()
        base_runs = baseline_aggregate(raw_dir, base_out, cfg.environments)
        base_times.append(time.perf_counter() - started)
    ect_s, base_s = min(ect_times), min(base_times)
    started = time.perf_counter()
    again = aggregate(raw_dir, out_dir, cfg.environments, limits)
    noop_s = time.perf_counter() - started
    if again.changed or again.updated:
        raise SystemExit(f"the second ect aggregate was not a no-op: {again}")
    each = (lambda times: "" if len(times) < 2 else "  (each: " + ", ".join(f"{t:.2f}" for t in times) + " s)")
    print(f"  ect aggregate, cold (all runs new):     {ect_s:8.3f} s  {_rate(len(runs), ect_s):8.2f} runs/s  "
          f"{_rate(megabytes, ect_s):8.1f} MB/s{each(ect_times)}", flush=True)
    print(f"  ect aggregate, again (nothing changed): {noop_s:8.3f} s", flush=True)
    print(f"  baseline (python engine + converters):  {base_s:8.3f} s  {_rate(len(runs), base_s):8.2f} runs/s  "
          f"{_rate(megabytes, base_s):8.1f} MB/s{each(base_times)}", flush=True)

    ect_runs = pd.read_parquet(out_dir / "processed" / "runs.parquet")
    ect_samples = pd.read_parquet(out_dir / "interim" / "samples.parquet", columns=["run_id"])
    base_samples = pd.read_parquet(base_out / "interim" / "samples.parquet", columns=["run_id"])
    if len(ect_samples) != len(base_samples) or len(ect_samples) != rows:
        raise SystemExit(f"sample rows: ect {len(ect_samples)}, baseline {len(base_samples)}, generated {rows}")
    truth = pd.DataFrame([{"environment": ENVIRONMENT, "architecture": r["folder"].parent.name,
                           "run_id": r["folder"].name, "gpu_energy_J": r["gpu_energy_J"],
                           "cpu_energy_J": r["cpu_energy_J"]} for r in runs])
    try:
        worst = compare(ect_runs, base_runs, truth, counter=not args.no_counter)
    except AssertionError as error:
        raise SystemExit(f"ect and the baseline disagree at {label}: {error}")
    speedup = base_s / ect_s
    print(f"  speed-up (baseline / ect cold): {speedup:.1f}x", flush=True)
    print(f"  check: per-run GPU/CPU energy, mean/std power, duration, emissions agree (max relative difference "
          f"{worst:.1e}); {rows:,} sample rows in both", flush=True)

    if args.profile:
        import cProfile
        import io
        import pstats

        profile_out = root / f"out-ect-{rate_hz:g}Hz-profile"
        for what in ("cold", "no-op"):
            profiler = cProfile.Profile()
            profiler.enable()
            aggregate(raw_dir, profile_out, cfg.environments, limits)
            profiler.disable()
            for order in ("tottime", "cumulative"):
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(22)
                print(f"  cProfile of one {what} ect aggregate at {label}, by {order}:")
                print("\n".join("    " + line for line in text.getvalue().splitlines() if line.strip()))
    return {"label": label, "runs": len(runs), "megabytes": megabytes, "ect_s": ect_s, "base_s": base_s,
            "noop_s": noop_s, "speedup": speedup}


def _warm_up(root: Path) -> None:
    """Imports and first-call costs (pyarrow, parquet writer) paid before any timing, for both sides alike."""
    frame = pd.DataFrame({"a": [1.0, 2.0], "t": pd.to_datetime(["2025-01-01T00:00:00.000Z"] * 2, utc=True)})
    frame.to_parquet(root / "warm-up.parquet", index=False)
    pd.read_parquet(root / "warm-up.parquet")
    (root / "warm-up.parquet").unlink()


def main() -> int:
    args = parse_args()
    from ect.config import load_config
    from ect.validation import limits_from

    cfg = load_config()
    limits = limits_from(cfg.experiment)
    rng = np.random.default_rng(args.seed)
    if args.keep:
        keep = Path(args.keep)
        if keep.exists() and any(keep.iterdir()):
            raise SystemExit(f"--keep {keep}: exists and is not empty")
        keep.mkdir(parents=True, exist_ok=True)
        context = None
        root = keep
    else:
        context = tempfile.TemporaryDirectory(prefix="ect-aggregate-speed-")
        root = Path(context.name)
    started = time.perf_counter()
    rates = ", ".join(f"{r:g} Hz" for r in args.rates)
    gpu = "no energy counter" if args.no_counter else "energy counter present"
    print(f"aggregate speed: {args.runs} synthetic runs x {args.hours:g} h per rate, rates {rates}, 1 GPU ({gpu}), "
          f"CPU estimate; data under {root}")
    print("timed: ect aggregate() in-process on runs already validated (validation timed apart), and the "
          "baseline; both read the same files from the page cache and write parquet", flush=True)
    try:
        _warm_up(root)
        figures = [bench_rate(root, rate, args, cfg, limits, rng) for rate in args.rates]
    finally:
        if context is not None:
            context.cleanup()
    print()
    print(f"aggregate throughput ({args.runs} runs x {args.hours:g} h, 1 GPU):")
    width = max(len(f["label"]) for f in figures) + 1
    for f in figures:
        ect = f"{_fmt(_rate(f['runs'], f['ect_s']))} runs/s ({_fmt(_rate(f['megabytes'], f['ect_s']))} MB/s)"
        base = f"{_fmt(_rate(f['runs'], f['base_s']))} runs/s ({_fmt(_rate(f['megabytes'], f['base_s']))} MB/s)"
        label = f"{f['label']}:"
        print(f"  {label:<{width}}  ect {ect}  baseline {base}  speed-up {f['speedup']:.1f}x  (target >= 10x)")
    noops = ", ".join(f"{f['label']} {f['noop_s'] * 1000:.0f} ms" for f in figures)
    print(f"  (no-op re-aggregation: {noops}; total time {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
