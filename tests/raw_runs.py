"""Raw run folders written as ect's profiler writes them, for tests that need valid runs without training."""

import csv
import json
from pathlib import Path

from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS, iso_utc, iso_utc_ms

COUNTER_BASE_MJ = 987_654_321  # NVML's counter runs since the driver loaded: it never starts at 0


def write_valid_run(folder, gpus=1, samples=50, interval_s=0.1, start_ms=1_795_000_000_000,
                    power=lambda t: 100 + 20 * t, counter=True):
    """A complete, valid raw run folder `.../<environment>/<architecture>/<run_id>/`.

    `power(t)` is GPU 0's power in W at t seconds after the first sample (GPU k draws k W more).
    The energy counter, when there is one, is the exact (trapezoidal) integral of that power in mJ;
    counter="sparse" writes it on every 10th and the last row only (the NVML sensor between window edges).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    environment, architecture, run_id = folder.parent.parent.name, folder.parent.name, folder.name
    interval_ms = round(interval_s * 1000)
    times_ms = [start_ms + i * interval_ms for i in range(samples)]

    with open(folder / "gpu.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, GPU_COLUMNS)
        writer.writeheader()
        energy_mJ = [0.0] * gpus
        previous = [None] * gpus
        for i, t_ms in enumerate(times_ms):
            t = (t_ms - start_ms) / 1000
            for gpu in range(gpus):
                watts = power(t) + gpu
                if previous[gpu] is not None:
                    energy_mJ[gpu] += (previous[gpu] + watts) / 2 * interval_ms  # W x ms = mJ
                previous[gpu] = watts
                writer.writerow({
                    "timestamp": iso_utc_ms(t_ms), "gpu_index": gpu, "name": "NVIDIA H200", "power_W": watts,
                    "energy_counter_mJ": round(COUNTER_BASE_MJ + energy_mJ[gpu])
                    if counter is True or (counter == "sparse" and (i % 10 == 0 or i == samples - 1)) else "",
                    "utilization_gpu_pct": (37 + 7 * i + gpu) % 101, "utilization_memory_pct": (11 + 3 * i) % 101,
                    "memory_used_MiB": 20_000 + i, "memory_total_MiB": 143_771, "temperature_C": 40 + i % 5,
                    "power_limit_W": 700.0,
                })

    with open(folder / "cpu.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, CPU_COLUMNS)
        writer.writeheader()
        for i, t_ms in enumerate(times_ms):
            writer.writerow({
                "timestamp": iso_utc_ms(t_ms), "process_cpu_pct": 100.0 + i % 7, "process_rss_MiB": 2048.5 + i,
                "system_cpu_pct": 12.5 + i % 3, "rapl_package_energy_uJ": "", "rapl_dram_energy_uJ": "",
                "cpu_power_estimated_W": 30.0 + 0.25 * (i % 4), "cpu_power_source": "estimate",
            })

    (folder / "metrics.json").write_text(json.dumps({
        "val_loss": 0.4, "val_accuracy": 0.82, "val_precision": 0.81, "val_recall": 0.79, "val_auc": 0.9,
        "val_f1": 0.8, "gflops": 1.0, "macs": 0.5, "params_total": 1234, "params_trainable": 1234,
        "trained_epochs": 2, "train_images": 350, "validation_images": 150, "images_seen": 1000,
    }, indent=2) + "\n")

    # The window lies strictly inside the samples, as the profiler's begin/end samples guarantee.
    start_s, end_s = (times_ms[1] + 37) / 1000, (times_ms[-2] + 41) / 1000
    manifest = {
        "run_id": run_id, "environment": environment, "architecture": architecture, "repetition": 0,
        "attempt": 1, "status": "completed", "pid": 4242, "experiment_name": "tests",
        "created": iso_utc(start_ms / 1000 - 5), "seed": 2022,
        "host": {"hostname": "testhost", "platform": "Linux-test", "cpu_count": 16, "cpu_model": "Test CPU",
                 "gpus": ["NVIDIA H200"] * gpus, "gpu_driver": "550.00"},
        "software": {"python": "3.11.0", "ect": "0.1.0", "tensorflow": None, "keras": None, "numpy": None,
                     "nvidia-ml-py": None, "psutil": None},
        "sensors": {"sampling_interval_s": interval_s, "used": ["nvml", "process", "estimate"],
                    "gpu_energy_source": "counter" if counter else "integrated",
                    "cpu_energy_source": "estimated", "report": {}},
        "window": {"start": iso_utc(start_s), "end": iso_utc(end_s), "start_unix_s": start_s, "end_unix_s": end_s},
        "error": None,
        "finished": iso_utc(times_ms[-1] / 1000 + 1),
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return folder


def write_run_with_idle_baseline(folder, hot_start=False, start_ms=1_795_000_000_000):
    """A valid run of 50 samples at 0.1 s whose GPU idles at 100 W for its first second (the idle window, 0-0.9 s,
    which starts at 40 C) and draws 300 W from 1.0 s on (the measurement window, 1.0-4.8 s: 1140 J); its manifest's
    idle_baseline says whether it started hot against a campaign's first baseline of 38 C and 95 W."""
    write_valid_run(folder, start_ms=start_ms, power=lambda t: 100.0 if t < 0.95 else 300.0)
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    start_s, end_s = start_ms / 1000 + 1.0, start_ms / 1000 + 4.8
    manifest["window"] = {"start": iso_utc(start_s), "end": iso_utc(end_s), "start_unix_s": start_s,
                          "end_unix_s": end_s}
    manifest["idle_baseline"] = {
        "start_unix_s": start_ms / 1000, "end_unix_s": start_ms / 1000 + 0.9, "duration_s": 0.9, "samples": 10,
        "gpu_power_W": {"0": 100.0}, "gpu_power_W_total": 100.0, "start_temperature_C": 40.0,
        "reference": {"run": "vgg16/night-rep00", "start_unix_s": start_ms / 1000 - 600, "temperature_C": 38.0,
                      "gpu_power_W": 95.0},
        "tolerance": {"temperature_C": 1.0, "power_pct": 2.0},
        "hot_start": hot_start,
        "hot_start_reasons": ["temperature 40 C above 38 C + 1 C", "idle power 100 W above 95 W + 2 %"] if hot_start
        else [],
    }
    (Path(folder) / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return Path(folder)
