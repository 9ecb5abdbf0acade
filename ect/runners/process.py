"""The process runner: `python -m ect profile-run ...` as a subprocess of the Airflow task."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import deque
from typing import Callable


def check(env=None) -> str:
    """The process runner needs this interpreter to import ect (no TensorFlow import here)."""
    result = subprocess.run([sys.executable, "-m", "ect", "--version"], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"`{sys.executable} -m ect` does not run: {result.stderr.strip()}")
    return f"{result.stdout.strip()} ({sys.executable})"


def run_ect(args: list[str], print_line: Callable[[str], None] = print, env: dict | None = None) -> None:
    """Runs `python -m ect ARGS`, streaming its output into the task log; raises if it fails."""
    command = [sys.executable, "-m", "ect", *args]
    print_line(f"running: {' '.join(command)}")
    last_lines: deque[str] = deque(maxlen=20)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env={**os.environ, **(env or {})}) as process:
        try:
            for line in process.stdout:
                line = line.rstrip("\n")
                last_lines.append(line)
                print_line(line)
            code = process.wait()
        except BaseException:  # the task is being stopped: stop the run too (it records itself as failed)
            process.terminate()
            process.wait(timeout=60)
            raise
    if code != 0:
        raise RuntimeError(f"`ect {' '.join(args[:3])}` failed with exit code {code}:\n" + "\n".join(last_lines))
