"""The Keras backend as a factor in the commands that read the processed runs: `ect check-regression` and
`ect compare` compare each backend only with itself and say which one; `ect analyze` names it."""

import json

import numpy as np
import pandas as pd

from conftest import REPO, run_ect


def runs_on_two_backends(nights=3, repetitions=5, jax_factor=1.5, jax_latest_increase=0.15) -> pd.DataFrame:
    """Nightly campaigns of two architectures on local, each run on TensorFlow (<night>-rep<KK>) and on JAX
    (<night>-jax-rep<KK>): JAX at jax_factor times the energy, and jax_latest_increase more in the last night."""
    rng = np.random.default_rng(5)
    rows = []
    for night in range(nights):
        for architecture, median_J in (("vgg16", 400e3), ("mobilenet_v2", 100e3)):
            for backend, factor in (("tensorflow", 1.0), ("jax", jax_factor)):
                if backend == "jax" and night == nights - 1:
                    factor *= 1 + jax_latest_increase
                for repetition in range(repetitions):
                    energy_J = median_J * factor * rng.lognormal(0, 0.01)
                    start = pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=night, minutes=repetition)
                    suffix = f"-jax-rep{repetition:02d}" if backend == "jax" else f"-rep{repetition:02d}"
                    rows.append({"environment": "local", "architecture": architecture, "backend": backend,
                                 "run_id": f"night{night}{suffix}", "campaign_id": f"night{night}",
                                 "start": start, "duration_s": energy_J / 250, "total_energy_J": energy_J,
                                 "energy_kWh": energy_J / 3.6e6,
                                 "emissions_gCO2e": energy_J / 3.6e6 * 232, "energy_per_image_J": energy_J / 1e4,
                                 "val_f1": 0.8, "gpu_utilization_mean_pct": 60.0, "gflops": 1.0,
                                 "gpu_energy_source": "counter", "cpu_energy_source": "counter"})
    return pd.DataFrame(rows)


def project(tmp_path, runs: pd.DataFrame) -> dict:
    metrics = tmp_path / "metrics"
    (metrics / "processed").mkdir(parents=True)
    runs.to_parquet(metrics / "processed" / "runs.parquet")
    return {"ECT_HOME": str(REPO), "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}


def test_check_regression_judges_each_backend_against_its_own_history(tmp_path):
    env = project(tmp_path, runs_on_two_backends())
    checked = run_ect("check-regression", "local", cwd=tmp_path, env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert next(line for line in lines if line.startswith("environment")).split()[:4] == [
        "environment", "architecture", "backend", "runs"]
    verdicts = {tuple(line.split()[1:3]): line.split("%")[-1].strip() for line in lines if line.startswith("local ")}
    assert verdicts == {("mobilenet_v2", "jax"): "regression", ("vgg16", "jax"): "regression",
                        ("mobilenet_v2", "tensorflow"): "no regression", ("vgg16", "tensorflow"): "no regression"}
    assert "vgg16·jax: 97.5 % interval of the change" in checked.stdout
    assert "vgg16·jax: +1" in checked.stderr and "tensorflow" not in checked.stderr
    result = json.loads((tmp_path / "out" / "local" / "regression.json").read_text())
    assert result["regressions"] == ["mobilenet_v2·jax", "vgg16·jax"]
    assert result["architectures"]["vgg16·jax"]["baseline_runs"] == 10  # the JAX runs of the two nights before


def test_compare_compares_each_backend_with_itself_and_says_which(tmp_path):
    env = project(tmp_path, runs_on_two_backends(nights=2, repetitions=10))
    compared = run_ect("compare", "night0", "night1", cwd=tmp_path, env=env)
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert lines[0].split()[:2] == ["Environment·backend", "Architecture"]
    assert max(map(len, lines[:-1])) <= 120
    rows = {tuple(line.split()[:2]): line.rstrip() for line in lines if line.startswith("local")}
    assert set(rows) == {(f"local·{b}", a) for a in ("mobilenet_v2", "vgg16") for b in ("jax", "tensorflow")}
    jax = rows[("local·jax", "vgg16")]
    assert jax.endswith(" regression") and "no regression" not in jax
    assert rows[("local·tensorflow", "vgg16")].endswith("no regression")
    assert any(line.startswith("vgg16 on local with jax: ") for line in lines)
    result = json.loads((tmp_path / "out" / "compare" / "night0_vs_night1" / "compare.json").read_text())
    assert {(r["architecture"], r["backend"], r["status"]) for r in result["comparisons"]} == {
        ("vgg16", "jax", "regression"), ("mobilenet_v2", "jax", "regression"),
        ("vgg16", "tensorflow", "no regression"), ("mobilenet_v2", "tensorflow", "no regression")}


def test_analyze_names_the_backend_of_each_row(tmp_path):
    env = project(tmp_path, runs_on_two_backends())
    analyzed = run_ect("analyze", cwd=tmp_path, env=env)
    assert analyzed.returncode == 0, analyzed.stderr
    lines = analyzed.stdout.splitlines()
    assert lines[0].split()[:4] == ["environment", "architecture", "backend", "runs"]
    assert {tuple(line.split()[:3]) for line in lines[1:5]} == {
        ("local", a, b) for a in ("mobilenet_v2", "vgg16") for b in ("jax", "tensorflow")}
    assert "Energy per architecture and backend" in (tmp_path / "out" / "report" / "report.html").read_text()
