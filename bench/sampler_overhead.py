"""Step-time overhead of the EnergyMonitor: trains one model with and without it, alternating in rounds.

    .venv/bin/python bench/sampler_overhead.py            # full run (about 3 minutes on 2 CPU cores)
    .venv/bin/python bench/sampler_overhead.py --quick    # smoke run (seconds after TensorFlow starts)

One process, one model, one fixed in-memory batch of random images. Each round runs --steps timed
train_on_batch calls per condition (no monitor, 100 ms, 10 ms sampling) in a shuffled order. The monitor
uses this machine's real sensors and writes its CSVs to a temporary folder, as in real runs. Prints only.
Other load on the machine adds noise: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CONDITIONS = {"off": None, "100 ms": 0.1, "10 ms": 0.01}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architecture", default="mobilenet_v2", help="registered architecture (default: mobilenet_v2)")
    parser.add_argument("--image-size", type=int, default=96, help="image side in pixels (default: 96)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per training step (default: 32)")
    parser.add_argument("--rounds", type=int, default=30, help="rounds; each runs every condition once (default: 30)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per condition and round (default: 20)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before the first round (default: 10)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-round condition order (default: 0)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds x 10 steps, 3 warm-up steps")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps, args.warmup = 2, 10, 3
    return args


def mean_ci(values):
    """(mean, half-width of the 95 % interval mean +- 1.96 sd / sqrt(n))."""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), 1.96 * sd / math.sqrt(len(values))


def main() -> None:
    args = parse_args()
    import numpy as np
    import tensorflow as tf

    from ect.models.build import build_model, make_optimizer
    from ect.architectures import get_architecture
    from ect.profiling.monitor import EnergyMonitor
    from ect.sensors.process import cpu_model

    arch = get_architecture(args.architecture)
    model, _ = build_model(arch, args.image_size, "none", make_optimizer("adam", 1e-3, 0.9))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.random((args.batch_size, args.image_size, args.image_size, 3), dtype=np.float32))
    y = tf.constant(rng.integers(0, 2, (args.batch_size, 1)).astype(np.float32))

    def run_steps(n):
        """Wall time of each step, and the process's CPU time per step (all threads, the sampler's included)."""
        times, cpu0 = [], time.process_time()
        for _ in range(n):
            t0 = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - t0)
        return times, (time.process_time() - cpu0) / max(n, 1)

    started = time.perf_counter()
    run_steps(args.warmup)
    print(f"warm-up: {args.warmup} steps in {time.perf_counter() - started:.1f} s", flush=True)
    with EnergyMonitor(folder=None, interval_s=3600) as probe:  # the cost of one sample, without training
        cost = []
        for _ in range(200):
            t0 = time.perf_counter()
            probe.sampler.sample_now()
            cost.append(time.perf_counter() - t0)
    cost_ms = statistics.median(cost) * 1e3
    print(f"one sample ({', '.join(s.name for s in probe.choice.cpu + probe.choice.gpu)}): {cost_ms:.2f} ms median, "
          f"i.e. {cost_ms:.1f} % of one core at 100 ms, {cost_ms * 10:.1f} % at 10 ms", flush=True)

    names = list(CONDITIONS)
    steps = {name: [] for name in names}  # all step times (s) per condition
    per_round, cpu_round = [], []  # {condition: median step time}, {condition: CPU time per step} per round
    rates = {name: [] for name in names if CONDITIONS[name]}  # achieved samples/s per round
    missed = {name: 0 for name in names if CONDITIONS[name]}
    with tempfile.TemporaryDirectory(prefix="ect-bench-") as tmp:
        for r in range(args.rounds):
            order = random.Random(args.seed + r).sample(names, len(names))  # shuffled: no fixed carry-over
            medians, cpu = {}, {}
            for name in order:
                interval = CONDITIONS[name]
                if interval is None:
                    times, cpu[name] = run_steps(args.steps)
                else:
                    (folder := Path(tmp) / f"round{r}-{name.replace(' ', '')}").mkdir()
                    with EnergyMonitor(folder=folder, interval_s=interval) as monitor:
                        t0 = time.time()
                        times, cpu[name] = run_steps(args.steps)
                        t1 = time.time()
                    taken = sum(t0 * 1e3 <= t <= t1 * 1e3 for t in monitor.sampler.times_ms)  # during the steps
                    rates[name].append(taken / (t1 - t0))
                    missed[name] += monitor.sampler.missed_ticks
                steps[name] += times
                medians[name] = statistics.median(times)
            per_round.append(medians)
            cpu_round.append(cpu)
            print(f"round {r + 1}/{args.rounds} ({', '.join(order)}): "
                  + ", ".join(f"{n} {medians[n] * 1e3:.1f} ms" for n in names), flush=True)

    print("\nper condition (all steps):")
    for name in names:
        mean, half = mean_ci(steps[name])
        line = (f"  {name:>6}: median {statistics.median(steps[name]) * 1e3:7.2f} ms, "
                f"mean {mean * 1e3:7.2f} +- {half * 1e3:.2f} ms (95 %), n={len(steps[name])}")
        if CONDITIONS[name]:
            pooled = (statistics.median(steps[name]) / statistics.median(steps["off"]) - 1) * 100
            line += (f", pooled overhead {pooled:+.2f} %, {statistics.fmean(rates[name]):.1f} samples/s "
                     f"(nominal {1 / CONDITIONS[name]:.0f}), {missed[name]} missed ticks")
        print(line)

    print("\nper-round paired overheads (median with / median off - 1):")
    overheads = {}
    for name in names[1:]:
        overheads[name] = [(m[name] / m["off"] - 1) * 100 for m in per_round]
        overheads["CPU " + name] = [(c[name] / c["off"] - 1) * 100 for c in cpu_round]
        print(f"  {name:>6}: " + " ".join(f"{o:+.1f}" for o in overheads[name]) + " %")
    print(f"  process CPU time per step, off: {statistics.median(c['off'] for c in cpu_round) * 1e3:.1f} ms (median); "
          "paired overheads (less sensitive to other load on the machine, includes the sampler's own CPU time):")
    for name in names[1:]:
        print(f"  {name:>6}: " + " ".join(f"{o:+.1f}" for o in overheads["CPU " + name]) + " %")

    print(f"\nsampler overhead (median of per-round paired overheads, {args.rounds} rounds x {args.steps} steps, "
          f"{arch.name} {args.image_size}px batch {args.batch_size}, CPU {cpu_model()} x {os.cpu_count()} cores):")
    print(f"  100 ms sampling: {statistics.median(overheads['100 ms']):+.2f} %  (target <= 1 %)"
          f"   [CPU time per step {statistics.median(overheads['CPU 100 ms']):+.2f} %]")
    print(f"  10 ms sampling:  {statistics.median(overheads['10 ms']):+.2f} %"
          f"   [CPU time per step {statistics.median(overheads['CPU 10 ms']):+.2f} %]")
    print(f"  total runtime: {time.perf_counter() - started:.0f} s after model build")


if __name__ == "__main__":
    main()
