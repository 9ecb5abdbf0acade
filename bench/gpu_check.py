"""GPU check: ect's NVML measurement against a real GPU, under a controlled load and during real Keras training.

    python bench/gpu_check.py --out out/gpu-check                  # about 3 minutes on one GPU
    KERAS_BACKEND=torch python bench/gpu_check.py --out DIR        # where PyTorch, not TensorFlow, has the GPU

1. Load pattern (idle, full matmul load, 0.5 s on/off bursts, idle), each phase an EnergyMonitor window:
   GPU energy from the NVML counter (what ect reports) beside the trapezoid rule over the power that ect
   samples every --interval-ms (gpu.csv) and over a 10 ms probe of NVML's instantaneous and averaged power
   fields, where the driver has them. Shows how far integrated power is from the counter, and why.
2. Training: each --architectures model (ect's build_model, random weights) trains two phases with ect's
   train_two_phase inside an EnergyMonitor on a synthetic in-memory dataset; per-epoch and whole-training
   energy, counter against integrated samples.
3. Memory limit: with the TensorFlow backend, GPU: MEM_LIMIT applied through ect's configure_gpus and read back.

Prints a table per part and writes summary.json, the raw samples (gpu.csv, cpu.csv, probe.csv) and each
training's history.csv under --out. Exits 2 when no NVIDIA GPU is visible through NVML.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PROBE_INTERVAL_S = 0.01


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/gpu-check"), help="output folder (default: out/gpu-check)")
    parser.add_argument("--architectures", default="mobilenet_v2,resnet50", help="comma-separated (default: mobilenet_v2,resnet50)")
    parser.add_argument("--image-size", type=int, default=128, help="image side in pixels (default: 128)")
    parser.add_argument("--images", type=int, default=4096, help="training images per epoch (default: 4096)")
    parser.add_argument("--batch-size", type=int, default=64, help="(default: 64)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each phase (default: 2)")
    parser.add_argument("--interval-ms", type=int, default=100, help="ect's sampling interval (default: 100)")
    parser.add_argument("--load-s", type=float, default=10.0, help="seconds of each load phase (default: 10)")
    parser.add_argument("--matrix-size", type=int, default=8192, help="side of the load pattern's matrices (default: 8192)")
    parser.add_argument("--memory-limit-mb", type=int, default=4096, help="GPU: MEM_LIMIT to check (TensorFlow only)")
    return parser.parse_args()


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
        extra = {k: v for k, v in row.items() if k in ("wall_s", "missed_ticks", "epochs", "steady_state_energy_per_epoch_J", "keras_backend")}
        if extra:
            print(f"    {extra}")


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


class SyntheticImages:
    """Bright discs (label 1) against dark backgrounds (label 0) with noise, as an in-memory keras PyDataset."""

    def __new__(cls, count: int, size: int, batch_size: int, seed: int):
        import keras
        import numpy as np

        class Images(keras.utils.PyDataset):
            def __init__(self):
                super().__init__()
                rng = np.random.default_rng(seed)
                self.labels = (np.arange(count) % 2).astype("float32")
                yy, xx = np.mgrid[:size, :size]
                disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 4) ** 2).astype("float32")
                self.disc, self.rng = disc[..., None], rng

            def __len__(self):
                return count // batch_size

            def __getitem__(self, index):
                labels = self.labels[index * batch_size:(index + 1) * batch_size]
                noise = self.rng.random((len(labels), size, size, 3), dtype="float32") * 0.5
                images = noise + 0.5 * labels[:, None, None, None] * self.disc
                return images, labels

        return Images()


def training(args, cfg, architecture: str, folder: Path, probe) -> dict:
    import keras

    from ect.models.build import build_model, make_optimizer
    from ect.architectures import get_architecture
    from ect.models.training import train_two_phase
    from ect.profiling.monitor import EnergyMonitor
    from ect.runs.profiled import steady_state

    folder.mkdir(parents=True, exist_ok=True)
    exp = cfg.experiment
    model, base = build_model(get_architecture(architecture), args.image_size, "none",
                              make_optimizer(exp.optimizer, exp.learning_rate, exp.momentum))
    train = SyntheticImages(args.images, args.image_size, args.batch_size, seed=1)
    val = SyntheticImages(max(args.images // 4, args.batch_size), args.image_size, args.batch_size, seed=2)
    with EnergyMonitor(folder, interval_s=args.interval_ms / 1000) as monitor:
        monitor.begin_window("training")
        started = time.perf_counter()
        result = train_two_phase(model, base, train, val, exp, history_csv=folder / "history.csv", monitor=monitor)
        measurement = monitor.end_window("training")
        seconds = time.perf_counter() - started
    row = compare(measurement, monitor, probe)
    row["window"] = f"{architecture} training"
    row.update(wall_s=seconds, missed_ticks=monitor.sampler.missed_ticks, epochs=len(result.history),
               steady_state_energy_per_epoch_J=steady_state(result.history)["energy_per_epoch_J"],
               keras_backend=keras.backend.backend())
    return row


def memory_limit(args) -> dict:
    import keras

    if keras.backend.backend() != "tensorflow":
        return {"checked": False, "reason": f"GPU: MEM_LIMIT is a TensorFlow setting; the Keras backend here is {keras.backend.backend()}"}
    import tensorflow as tf

    from ect.models.device import configure_gpus

    names = configure_gpus("all", args.memory_limit_mb)
    logical = tf.config.list_logical_devices("GPU")
    if not logical:
        return {"checked": False, "reason": "TensorFlow sees no GPU (is tensorflow[and-cuda] installed?)"}
    x = tf.random.normal((1024, 1024))
    info = tf.config.experimental.get_memory_info("GPU:0")
    return {"checked": True, "gpus": names, "logical_gpus": [d.name for d in logical], "memory_info": info,
            "limit_MB": args.memory_limit_mb, "tensor_device": x.device}


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
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)  # ect's epoch lines
    from ect.config import load_config
    from ect.profiling.monitor import EnergyMonitor
    from ect.sensors import select_sensors

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    choice = select_sensors()
    for name, entry in choice.report.items():
        print(f"sensor {name}: {'used' if entry['used'] else 'not used'} ({entry['reason']})")
    if not choice.gpu:
        print("no NVIDIA GPU visible through NVML: nothing to check", file=sys.stderr)
        return 2
    summary: dict = {"sensors": choice.report, "gpu_energy_source": choice.gpu_energy_source}
    summary["memory_limit"] = memory_limit(args)  # before anything touches the GPU (TensorFlow requires it)
    print(f"memory limit: {summary['memory_limit']}")
    cost = summary["sample_cost"] = sample_cost(choice, args.interval_ms / 1000)
    print(f"one sample of {', '.join(cost['sensors'])}: {cost['edge_sample_cpu_ms']:.3f} ms CPU at a window edge, "
          f"{cost['between_sample_cpu_ms']:.3f} ms between; at {args.interval_ms} ms sampling "
          f"{cost['cpu_ms_per_sample_at_interval']:.3f} ms a sample, {cost['share_of_one_core_pct']:.2f} % of one core")

    overrides = {"INITIAL_EPOCHS": args.epochs, "FT_EPOCHS": args.epochs, "IMAGE_SIZE": args.image_size,
                 "SAMPLING_INTERVAL_MS": args.interval_ms}
    cfg = load_config(Path(__file__).resolve().parents[1], overrides=overrides)
    with PowerProbe(0) as probe:
        print(f"\nload pattern ({args.load_s:g} s per load phase):", flush=True)
        (out / "load").mkdir(exist_ok=True)
        with EnergyMonitor(out / "load", interval_s=args.interval_ms / 1000, choice=choice) as monitor:
            summary["device"] = monitor.choice.gpu[0].info()
            summary["load_pattern"] = load_pattern(monitor, probe, args.load_s, args.matrix_size)
        summary["training"] = []
        for architecture in args.architectures.split(","):
            print(f"\ntraining {architecture}:", flush=True)
            summary["training"].append(training(args, cfg, architecture, out / architecture, probe))
            print_table(f"{architecture}: GPU energy (J)", summary["training"][-1:])
            (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))  # kept if a later part fails
        probe.write(out / "probe.csv")
    print_table("load pattern: GPU energy per window (J); ect reports counter_J", summary["load_pattern"])
    print_table("training: GPU energy (J)", summary["training"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"\nwrote {out}/summary.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
