"""How long publishing a run folder to the run store takes, and a reader's mirror of it, beside a plain copy.

    .venv/bin/python bench/publish_speed.py            # a one-hour run at 10 Hz, to a folder and to s3:// (moto)
    .venv/bin/python bench/publish_speed.py --hours 0.1 --repeat 1   # smoke run

One synthetic run folder in ect's raw format (bench/aggregate_speed.py's generator: gpu.csv with the energy
counter, cpu.csv, metrics.json, manifest.json) is published with ect.store.RunStore.publish (the published check,
data files, then the manifest) to each kind of store:
- folder: a local folder (what a shared NFS mount looks like to ect, minus the network);
- s3: moto's standalone S3 server on this machine (no cloud is reachable here), through s3fs.
Each publish goes to a fresh location, so every one uploads everything. Timed beside it, in the same process:
- baseline: a plain recursive copy of the folder (shutil.copytree; fsspec's put(recursive=True) for s3);
- again: publishing the same run again (the idempotent retry: it only checks);
- pull: a reader's first mirror of the store's runs (RunStore.pull_runs into an empty folder).
Prints seconds (best of --repeat) and MB/s (10**6 bytes of the run folder per second).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from aggregate_speed import make_run  # noqa: E402
from ect.raw.layout import RunKey  # noqa: E402
from ect.store import RunStore  # noqa: E402

CREDENTIALS = {"key": "bench", "secret": "bench-secret"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0, help="length of the run (default 1)")
    parser.add_argument("--rate", type=float, default=10.0, help="sampling rate in Hz (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="timings per figure, the best is shown (default 3)")
    return parser.parse_args()


def best(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def significant(value: float) -> str:
    """3 significant digits, without an exponent."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def figure(seconds: float, size_mb: float) -> str:
    return f"{significant(seconds * 1000)} ms ({significant(size_mb / seconds)} MB/s)"


def moto_server(log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=open(log, "w"), stderr=subprocess.STDOUT)
    endpoint = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for _ in range(200):
        try:
            opener.open(f"{endpoint}/moto-api/", timeout=2).close()
            return server, endpoint
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"moto_server did not start: {log.read_text()[-1000:]}")


def main() -> int:
    args = parse_args()
    os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
    with tempfile.TemporaryDirectory(prefix="ect-publish-bench-") as tmp:
        root = Path(tmp)
        key = RunKey("cloud", "resnet50", "bench-rep00")
        folder = key.folder(root / "scratch")
        make_run(folder, np.random.default_rng(0), args.rate, args.hours, True, 1_795_000_000_000, key.architecture,
                 key.run_id, 0)
        size_mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f"run folder: {args.hours:g} h at {args.rate:g} Hz, {size_mb:.1f} MB "
              f"({', '.join(f'{p.name} {p.stat().st_size / 1e6:.1f} MB' for p in sorted(folder.iterdir()))})")
        server, endpoint = moto_server(root / "moto.log")
        try:
            options = {**CREDENTIALS, "endpoint_url": endpoint}
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            RunStore(f"s3://{bucket}", options).fs.mkdir(bucket)  # no region: us-east-1, no location constraint
            kinds = {"folder": lambda n: RunStore(str(root / "stores" / f"folder-{n}")),
                     "s3": lambda n: RunStore(f"s3://{bucket}/store-{n}", options)}
            print(f"{'store':<7} {'publish':>20} {'baseline copy':>20} {'again':>9} {'pull':>20}  (best of {args.repeat})")
            for kind, store_at in kinds.items():
                count = iter(range(10_000))
                publish = best(lambda: store_at(next(count)).publish(folder, key), args.repeat)
                if kind == "folder":
                    copy = best(lambda: shutil.copytree(folder, root / "stores" / f"copy-{next(count)}"), args.repeat)
                else:
                    copy = best(lambda: store_at(next(count)).fs.put(str(folder), f"{bucket}/copy-{next(count)}",
                                                                     recursive=True), args.repeat)
                store = store_at("again")
                store.publish(folder, key)
                again = best(lambda: store.publish(folder, key), args.repeat)
                pull = best(lambda: store.pull_runs(root / "mirrors" / f"{kind}-{next(count)}"), args.repeat)
                print(f"{kind:<7} {figure(publish, size_mb):>20} {figure(copy, size_mb):>20} "
                      f"{significant(again * 1000):>6} ms {figure(pull, size_mb):>20}")
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
