"""Warm-up (the cool-down: test_thermal.py)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import REPO, run_ect


def test_warmup_command_keeps_the_device_busy(tmp_path):
    result = run_ect("warmup", "local", "--minutes", "0.02", cwd=tmp_path, env={"ECT_HOME": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "warm-up: 1 s of matrix products on cpu:0 (tensorflow)" in result.stdout


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_warm_up_runs_on_keras_ops_without_tensorflow(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    code = ("import logging, sys\n"
            "logging.basicConfig(level=logging.INFO, format='%(message)s', stream=sys.stdout)\n"
            "from ect.profiling.warmup import warm_up\n"
            "products = warm_up(1)\n"
            "print('products', products, 'tensorflow imported' if 'tensorflow' in sys.modules else 'no tensorflow')\n")
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert f"warm-up: 1 s of matrix products on cpu:0 ({backend})" in done.stdout
    products, imported = done.stdout.strip().splitlines()[-1].split(" ", 2)[1:]
    assert int(products) >= 1 and imported == "no tensorflow"
