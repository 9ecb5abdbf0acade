"""GPU check: ect's shipped training path and its NVML measurement on a real GPU, per Keras backend.

    python bench/gpu_check.py --out out/gpu-check                     # every installed backend
    python bench/gpu_check.py --backends torch,jax --out DIR          # the H200: PyTorch and JAX, no TensorFlow
    python bench/gpu_check.py --cpu --architectures tiny_cnn ...      # no GPU: the same path on CPU (the tests)

1. Training, as shipped: a scratch project under --out/project (the repository's config/ with its own
   environment `gpu_check`, GPUS all, and profile `gpu_check` holding this script's sizes), a synthetic dataset
   written by `ect make-dataset` (or --dataset), then `python -m ect profile gpu_check --profile gpu_check
   --backends B --architectures A --repetitions N` (warm-up, then each architecture x backend x repetition in its
   own `ect profile-run` process, GPU_MEM_LIMIT applied by each backend's configure_gpus), `ect validate` and
   `ect aggregate`. From processed/runs.parquet, the run folders and their validation.json: per backend x
   architecture the runs that completed, passed validation and were aggregated, and the medians of GPU energy
   (with its source), CPU energy, total energy, duration, GPU utilisation, peak GPU memory against the limit,
   and the counter's GPU energy against the trapezoid rule over the run's own power samples (gpu.csv).
2. Load pattern (idle, full matmul load, 0.5 s on/off bursts, idle) on the first backend, after the trainings
   (so that no framework of this process holds GPU memory while they run), each phase an EnergyMonitor window:
   GPU energy from the NVML counter (what ect reports) beside the trapezoid rule over the power that ect
   samples every --interval-ms (gpu.csv) and over a 10 ms probe of NVML's instantaneous and averaged power
   fields, where the driver has them. Shows how far integrated power is from the counter, and why.

Backends: --backends, else KERAS_BACKEND when set, else every installed one of torch, jax and tensorflow.
Prints a table per part and writes summary.json under --out (also the load pattern's samples: load/gpu.csv,
load/cpu.csv, probe.csv). Exits 2 when no NVIDIA GPU is visible through NVML (unless --cpu: part 1 alone, on CPU,
GPUS none, energy from the CPU sensors), 1 when a planned run did not complete, pass validation or aggregate.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The scratch project's commands get this process's environment without the caller's ECT_* settings (a RUN_STORE
# or METRICS_DIR of their own must not catch the check's runs), taken before this process changes anything.
COMMAND_ENV = {name: value for name, value in os.environ.items() if not name.startswith("ECT_")}
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(REPO))

PROBE_INTERVAL_S = 0.01
ENVIRONMENT = PROFILE = "gpu_check"  # the scratch project's environment and profile
BACKEND_ORDER = ("torch", "jax", "tensorflow")  # the default: every one of these that is installed
MARKER = ".gpu-check"  # a scratch project this script made (and may replace)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/gpu-check"),
                        help="output folder (default: out/gpu-check); its project/ is replaced on every call")
    parser.add_argument("--cpu", action="store_true",
                        help="no GPU: skip the load pattern and train on CPU (GPUS none; CPU sensors only)")
    parser.add_argument("--backends", help="comma-separated Keras backends (default: KERAS_BACKEND if set, else "
                                           "every installed one of torch, jax, tensorflow)")
    parser.add_argument("--architectures", default="mobilenet_v2,resnet50", help="comma-separated (default: mobilenet_v2,resnet50)")
    parser.add_argument("--repetitions", type=int, default=2, help="runs per architecture and backend (default: 2)")
    parser.add_argument("--dataset", type=Path, help="a dataset folder to train on (default: a synthetic one, "
                                                     "written by `ect make-dataset` with --images and --image-size)")
    parser.add_argument("--images", type=int, default=2048, help="images of the synthetic dataset, 30 %% of them "
                                                                 "for validation (default: 2048)")
    parser.add_argument("--image-size", type=int, default=128, help="IMAGE_SIZE in pixels (default: 128)")
    parser.add_argument("--batch-size", type=int, default=64, help="BATCH_SIZE (default: 64)")
    parser.add_argument("--epochs", type=int, default=2, help="INITIAL_EPOCHS and FT_EPOCHS (default: 2)")
    parser.add_argument("--warmup-minutes", type=float, help="WARMUP_TIME before the first run (default: 1, "
                                                             "with --cpu 0)")
    parser.add_argument("--memory-limit-mb", type=int, default=16384,
                        help="GPU_MEM_LIMIT of the runs in MB (default: 16384; 0: none; not with --cpu)")
    parser.add_argument("--interval-ms", type=int, default=100, help="ect's sampling interval (default: 100)")
    parser.add_argument("--load-s", type=float, default=10.0, help="seconds of each load phase (default: 10)")
    parser.add_argument("--matrix-size", type=int, default=8192, help="side of the load pattern's matrices (default: 8192)")
    args = parser.parse_args()
    if args.warmup_minutes is None:
        args.warmup_minutes = 0.0 if args.cpu else 1.0
    return args


def default_backends() -> list[str]:
    from ect.backends import BACKENDS

    if os.environ.get("KERAS_BACKEND"):
        return [os.environ["KERAS_BACKEND"]]
    return [name for name in BACKEND_ORDER if BACKENDS[name].installed()]


class PowerProbe:
    """Reads NVML's counter and power fields of one GPU every 10 ms on its own thread (independent of ect's sampler)."""

    def __init__(self, index: int):
        import pynvml

        self.nvml = pynvml
        pynvml.nvmlInit()
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.fields = {name: getattr(pynvml, f"NVML_FI_DEV_{name.upper()}", None) for name in ("power_instant", "power_average")}
        self.rows: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> dict:
        nvml, row = self.nvml, {"t_s": time.time()}
        row["energy_counter_mJ"] = nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle)
        row["power_usage_W"] = nvml.nvmlDeviceGetPowerUsage(self.handle) / 1000
        ids = [field for field in self.fields.values() if field is not None]
        values = nvml.nvmlDeviceGetFieldValues(self.handle, ids) if ids else []
        for (name, field), value in zip([(n, f) for n, f in self.fields.items() if f is not None], values):
            row[f"{name}_W"] = value.value.uiVal / 1000 if value.nvmlReturn == 0 else None
        return row

    def _run(self):
        while not self._stop.wait(PROBE_INTERVAL_S):
            self.rows.append(self._read())

    def __enter__(self):
        self.rows.append(self._read())
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.nvml.nvmlShutdown()

    def write(self, path: Path) -> None:
        columns = sorted({key for row in self.rows for key in row})
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, columns)
            writer.writeheader()
            writer.writerows(self.rows)


def compare(measurement, monitor, probe: PowerProbe | None) -> dict:
    """One window's GPU energy: the counter (ect's value) and the trapezoid over each power series."""
    from ect.energy import integrate_power_J

    start, end = measurement.start, measurement.end
    s = monitor.sampler
    times = [t / 1000 for t in s.times_ms]
    power = [rows[0]["power_W"] if rows else float("nan") for rows in s.gpu_rows]
    result = {
        "window": measurement.name, "duration_s": measurement.duration_s,
        "counter_J": next(iter(measurement.gpu_energy_J.values()), None),
        "source": next(iter(measurement.gpu_energy_source.values()), "unavailable"),
        "ect_samples": measurement.samples,
        "ect_power_trapezoid_J": integrate_power_J([t - start for t in times], power, 0.0, end - start),
    }
    if probe is not None:
        rows = list(probe.rows)
        t = [row["t_s"] - start for row in rows]
        for key in ("power_usage_W", "power_instant_W", "power_average_W"):
            if rows and all(row.get(key) is not None for row in rows):
                result[f"probe_{key[:-2]}_trapezoid_J"] = integrate_power_J(t, [row[key] for row in rows], 0.0, end - start)
    if result["counter_J"]:
        for key in [k for k in result if k.endswith("_trapezoid_J")]:
            result[key.replace("_J", "_vs_counter_pct")] = 100 * (result[key] - result["counter_J"]) / result["counter_J"]
    return result


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n== {title}")
    for row in rows:
        print(f"{row['window']}: {row['duration_s']:.3f} s, counter {row['counter_J']} J ({row['source']}), {row['ect_samples']} samples")
        for key in [k for k in row if k.endswith("_trapezoid_J")]:
            pct = row.get(key.replace("_J", "_vs_counter_pct"))
            print(f"    {key:<36} {row[key]:.6g} J" + ("" if pct is None else f"  ({pct:+.3f} % vs counter)"))


def load_pattern(monitor, probe, seconds: float, n: int) -> list[dict]:
    import keras

    a = keras.random.normal((n, n))
    b = keras.random.normal((n, n))

    def busy(until: float):
        while time.time() < until:
            keras.ops.convert_to_numpy(keras.ops.matmul(a, b)[0, 0])  # waits for the product: real load, not queued work

    phases = [("idle_before", None), ("full_load", 1.0), ("idle_after_load", None), ("bursts_0.5s", 0.5), ("idle_end", None)]
    rows = []
    for name, duty in phases:
        monitor.begin_window(name)
        end = time.time() + seconds
        if duty is None:
            time.sleep(seconds)
        elif duty == 1.0:
            busy(end)
        else:
            while time.time() < end:
                busy(min(end, time.time() + 0.5))
                time.sleep(max(0.0, min(0.5, end - time.time())))
        rows.append(compare(monitor.end_window(name), monitor, probe))
        print(f"  {name}: {rows[-1]['counter_J']:.3f} J (counter)", flush=True)
    return rows


def scratch_project(project: Path, args, backends: list[str], dataset: Path) -> None:
    """A project root (ECT_HOME) with the repository's config/, one environment and one profile of this check."""
    import yaml

    if project.exists():
        if not (project / MARKER).exists():
            raise SystemExit(f"{project} exists and was not made by gpu_check.py: choose another --out")
        shutil.rmtree(project)
    shutil.copytree(REPO / "config", project / "config")
    (project / MARKER).write_text("made by bench/gpu_check.py; replaced by its next run\n")
    config = project / "config"
    # Where things live, inside the scratch project (no RUN_STORE or Pushgateway of the caller's base.yaml).
    (config / "base.yaml").write_text(yaml.safe_dump({
        "DATASET_DIR": str(dataset.resolve()), "METRICS_DIR": "data/metrics", "MODELS_DIR": "models",
        "OUTPUT_DIR": "out", "FIGURES_DIR": "out/figures"}, sort_keys=False))
    (config / "environments.yaml").write_text(yaml.safe_dump({ENVIRONMENT: {
        "DESCRIPTION": "bench/gpu_check.py on this host", "RUNNER": "process", "BACKEND": backends[0],
        "GPUS": "none" if args.cpu else "all", "CARBON_INTENSITY_GCO2E_PER_KWH": 232, "SCHEDULE": None}},
        sort_keys=False))
    # Always set: a config/resources.yaml of this machine, copied above, must not bring its own limit.
    resources = {"GPU": {"MEM_LIMIT": None if args.cpu or not args.memory_limit_mb else args.memory_limit_mb}}
    (config / "profiles" / f"{PROFILE}.yaml").write_text(yaml.safe_dump({
        "experiment": {
            "ARCHITECTURES": args.architectures.split(","), "BACKENDS": backends, "REPETITIONS": args.repetitions,
            "INITIAL_EPOCHS": args.epochs, "FT_EPOCHS": args.epochs, "IMAGE_SIZE": args.image_size,
            "BATCH_SIZE": args.batch_size, "WEIGHTS": "none",  # no download: GPU hosts may have no network
            "WARMUP_TIME": args.warmup_minutes, "COOLDOWN": 0, "IDLE_BASELINE": 2, "SAMPLING_INTERVAL_MS": args.interval_ms,
            "SAVE_MODELS": False, "MLFLOW_ENABLED": False, "REGRESSION": {"FAIL_RUN": False}},
        "resources": resources}, sort_keys=False))


def ect(project: Path, *args: str) -> int:
    """`python -m ect ARGS` in the scratch project, its output on this terminal; its exit status."""
    command = [sys.executable, "-m", "ect", *args]
    print(f"\n$ ECT_HOME={project} python {' '.join(command[1:])}", flush=True)
    env = {**COMMAND_ENV, "ECT_HOME": str(project),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), COMMAND_ENV.get("PYTHONPATH")]))}
    return subprocess.run(command, cwd=project, env=env).returncode


def run_record(folder: Path, processed: dict) -> dict:
    """One run: its manifest, validation and processed row; the counter's GPU energy against the trapezoid rule
    over the run's own power samples, and its peak GPU memory."""
    import numpy as np

    from ect.aggregate.samples import read_gpu, values
    from ect.energy import integrate_power_J
    from ect.raw.atomic import read_json
    from ect.raw.layout import VALIDATION_FILE
    from ect.raw.manifest import read_manifest

    manifest = read_manifest(folder)
    backend = (manifest.backend or {}).get("name") or "tensorflow"  # a manifest without one: TensorFlow
    row = processed.get((manifest.architecture, manifest.run_id), {})
    record = {
        "backend": backend, "backend_version": (manifest.backend or {}).get("version"),
        "architecture": manifest.architecture, "run_id": manifest.run_id, "repetition": manifest.repetition,
        "status": manifest.status, "error": manifest.error,
        "validation": (read_json(folder / VALIDATION_FILE) or {}).get("status"), "aggregated": bool(row),
        **{name: row.get(name) for name in (
            "duration_s", "gpu_energy_J", "gpu_energy_source", "cpu_energy_J", "cpu_energy_source", "total_energy_J",
            "gpu_utilization_mean_pct", "val_accuracy", "val_f1")},
        "processed_backend": row.get("backend"),  # the aggregation's backend column: the manifest's backend
        "gpu_integrated_J": None, "counter_vs_integrated_pct": None, "peak_gpu_memory_MiB": None,
    }
    gpu = read_gpu(folder)
    if gpu is not None and gpu.num_rows and manifest.window is not None:
        start_ms, end_ms = manifest.window.start_ms, manifest.window.end_ms
        times, indices = values(gpu, "time_ms"), values(gpu, "gpu_index")
        t = (times - start_ms) / 1000
        record["gpu_integrated_J"] = sum(
            integrate_power_J(t[indices == i], values(gpu, "power_W")[indices == i], 0.0, (end_ms - start_ms) / 1000)
            for i in np.unique(indices))
        inside = (times >= start_ms) & (times <= end_ms)
        memory = values(gpu, "memory_used_MiB")[inside]
        record["peak_gpu_memory_MiB"] = float(np.nanmax(memory)) if np.isfinite(memory).any() else None
        if record["gpu_energy_source"] == "counter" and record["gpu_energy_J"]:
            record["counter_vs_integrated_pct"] = \
                100 * (record["gpu_integrated_J"] - record["gpu_energy_J"]) / record["gpu_energy_J"]
    return {key: plain(value) for key, value in record.items()}


def plain(value):
    """A JSON value: numpy scalars as Python numbers, NaN (pandas' missing number) as None."""
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and value != value else value


def median(records: list[dict], key: str) -> float | None:
    numbers = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return statistics.median(numbers) if numbers else None


def group_rows(runs: list[dict], backends: list[str], architectures: list[str], repetitions: int) -> list[dict]:
    """Per backend x architecture: the runs, how many passed and were aggregated, and medians of the aggregated."""
    rows = []
    for backend in backends:
        for architecture in architectures:
            mine = [r for r in runs if r["backend"] == backend and r["architecture"] == architecture]
            done = [r for r in mine if r["aggregated"]]
            rows.append({
                "backend": backend, "architecture": architecture, "planned": repetitions, "runs": len(mine),
                "completed": sum(r["status"] == "completed" for r in mine),
                "passed": sum(r["validation"] == "passed" for r in mine), "aggregated": len(done),
                "backend_version": next((r["backend_version"] for r in mine), None),
                **{f"median_{key}": median(done, key) for key in (
                    "gpu_energy_J", "cpu_energy_J", "total_energy_J", "duration_s", "gpu_utilization_mean_pct",
                    "peak_gpu_memory_MiB", "counter_vs_integrated_pct", "val_accuracy")},
                "gpu_energy_source": "/".join(sorted({str(r["gpu_energy_source"]) for r in done})) or None,
                "cpu_energy_source": "/".join(sorted({str(r["cpu_energy_source"]) for r in done})) or None,
            })
    return rows


def number(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def print_runs_table(rows: list[dict], memory_limit_mb: int | None) -> None:
    print(f"\n== training as shipped: medians per backend x architecture (GPU_MEM_LIMIT "
          f"{f'{memory_limit_mb} MB' if memory_limit_mb else 'none'})")
    header = ("backend", "architecture", "runs", "passed", "aggr.", "GPU J", "GPU source", "CPU J", "CPU source",
              "total J", "s", "GPU util %", "peak MiB", "counter-trapezoid %", "val_acc")
    lines = [header] + [(
        f"{r['backend']} {r['backend_version'] or ''}".strip(), r["architecture"], f"{r['runs']}/{r['planned']}",
        str(r["passed"]), str(r["aggregated"]), number(r["median_gpu_energy_J"]), r["gpu_energy_source"] or "-",
        number(r["median_cpu_energy_J"]), r["cpu_energy_source"] or "-", number(r["median_total_energy_J"]),
        number(r["median_duration_s"]), number(r["median_gpu_utilization_mean_pct"], 3),
        number(r["median_peak_gpu_memory_MiB"]), number(r["median_counter_vs_integrated_pct"], 3),
        number(r["median_val_accuracy"], 3)) for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)))


def training(args, out: Path, backends: list[str]) -> dict:
    """The shipped path in a scratch project: make-dataset, profile, validate, aggregate; the runs read back."""
    import pandas as pd

    from ect.raw.layout import MetricsDir, find_runs

    architectures = args.architectures.split(",")
    project = out / "project"
    dataset = args.dataset.resolve() if args.dataset else project / "data" / "dataset"
    scratch_project(project, args, backends, dataset)
    status = {}
    if args.dataset is None:
        status["make-dataset"] = ect(project, "make-dataset", str(dataset), "--images", str(args.images),
                                     "--size", str(args.image_size), "--force")
        if status["make-dataset"]:
            raise SystemExit(f"`ect make-dataset` failed with exit status {status['make-dataset']}")
    status["profile"] = ect(project, "profile", ENVIRONMENT, "--profile", PROFILE, "--backends", ",".join(backends),
                            "--architectures", args.architectures, "--repetitions", str(args.repetitions))
    status["validate"] = ect(project, "validate", "--profile", PROFILE)
    status["aggregate"] = ect(project, "aggregate", "--profile", PROFILE)

    metrics = MetricsDir(project / "data" / "metrics")
    processed = {}
    if metrics.processed.is_file():
        frame = pd.read_parquet(metrics.processed)
        processed = {(row["architecture"], row["run_id"]): row for row in frame.to_dict("records")}
    runs = [run_record(folder, processed) for folder in find_runs(metrics.raw)]
    memory_limit = None if args.cpu or not args.memory_limit_mb else args.memory_limit_mb
    rows = group_rows(runs, backends, architectures, args.repetitions)
    print_runs_table(rows, memory_limit)
    return {"project": str(project), "dataset": str(dataset), "backends": backends,
            "architectures": architectures, "repetitions": args.repetitions, "memory_limit_MB": memory_limit,
            "exit_status": status, "table": rows, "runs": runs}


def sample_cost(choice, interval_s: float, count: int = 1000) -> dict:
    """CPU time of one sample of every sensor: at a window edge (everything read, the NVML energy counter too)
    and between edges (the counter at most once a second), and what that costs at the sampling interval."""
    from ect.profiling.sampler import Sampler
    from ect.sensors.nvml import COUNTER_EVERY_S

    sampler = Sampler(choice, None, interval_s=3600)  # no thread ticks during the timing: only sample_now()
    for sensor in (*choice.gpu, *choice.cpu):
        sensor.start()
    costs = {}
    try:
        for boundary in (True, False):
            cpu = time.process_time()
            for _ in range(count):
                sampler.sample_now(boundary=boundary)
            costs[boundary] = 1000 * (time.process_time() - cpu) / count
    finally:
        for sensor in (*choice.gpu, *choice.cpu):
            sensor.stop()
    # Between edges the counter is read once per COUNTER_EVERY_S: a share interval_s / COUNTER_EVERY_S of samples.
    share = min(1.0, interval_s / COUNTER_EVERY_S)
    per_sample_ms = costs[False] + share * (costs[True] - costs[False])
    return {"sensors": [s.name for s in (*choice.gpu, *choice.cpu)], "samples": count,
            "edge_sample_cpu_ms": costs[True], "between_sample_cpu_ms": costs[False],
            "interval_s": interval_s, "cpu_ms_per_sample_at_interval": per_sample_ms,
            "share_of_one_core_pct": 100 * per_sample_ms / 1000 / interval_s}


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    from ect.backends import check_backend
    from ect.errors import ConfigError

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    backends = args.backends.split(",") if args.backends else default_backends()
    try:
        if not backends:
            raise ConfigError(f"none of the backends {', '.join(BACKEND_ORDER)} is installed")
        for name in backends:
            check_backend(name, args.architectures.split(","))
    except ConfigError as error:
        print(f"gpu_check: {error}", file=sys.stderr)
        return 2
    print(f"backends: {', '.join(backends)}")
    summary: dict = {"backends": backends, "cpu": args.cpu}
    if not args.cpu:
        from ect.sensors import select_sensors

        choice = select_sensors()
        for name, entry in choice.report.items():
            print(f"sensor {name}: {'used' if entry['used'] else 'not used'} ({entry['reason']})")
        if not choice.gpu:
            print("no NVIDIA GPU visible through NVML: nothing to check (--cpu trains on CPU)", file=sys.stderr)
            return 2
        summary.update(sensors=choice.report, gpu_energy_source=choice.gpu_energy_source)
        cost = summary["sample_cost"] = sample_cost(choice, args.interval_ms / 1000)
        print(f"one sample of {', '.join(cost['sensors'])}: {cost['edge_sample_cpu_ms']:.3f} ms CPU at a window edge, "
              f"{cost['between_sample_cpu_ms']:.3f} ms between; at {args.interval_ms} ms sampling "
              f"{cost['cpu_ms_per_sample_at_interval']:.3f} ms a sample, {cost['share_of_one_core_pct']:.2f} % of one core")

    summary["training"] = training(args, out, backends)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))  # kept if the load pattern fails

    if not args.cpu:
        # This process's framework starts only now, as a run's does (GPU configuration before the import), so that
        # it held no GPU memory while the runs trained.
        from ect.backends import select_backend
        from ect.models.device import configure_gpus
        from ect.profiling.monitor import EnergyMonitor

        select_backend(backends[0])
        configure_gpus(backends[0], "all", None)
        with PowerProbe(0) as probe:
            print(f"\nload pattern on {backends[0]} ({args.load_s:g} s per load phase):", flush=True)
            (out / "load").mkdir(exist_ok=True)
            with EnergyMonitor(out / "load", interval_s=args.interval_ms / 1000, choice=choice) as monitor:
                summary["device"] = monitor.choice.gpu[0].info()
                summary["load_pattern"] = load_pattern(monitor, probe, args.load_s, args.matrix_size)
        probe.write(out / "probe.csv")
        print_table("load pattern: GPU energy per window (J); ect reports counter_J", summary["load_pattern"])
        print_runs_table(summary["training"]["table"], summary["training"]["memory_limit_MB"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {out}/summary.json")
    missing = [f"{r['backend']} {r['architecture']}: {r['planned']} planned, {r['completed']} completed, "
               f"{r['passed']} passed validation, {r['aggregated']} aggregated"
               for r in summary["training"]["table"] if not r["planned"] == r["completed"] == r["passed"] == r["aggregated"]]
    for line in missing:
        print(f"gpu_check: {line}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
