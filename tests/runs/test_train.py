import csv
import json

import pytest

from conftest import REPO, log_lines, run_ect
from ect.config import load_config
from ect.errors import ConfigError
from ect.models.training import f1_score
from ect.raw.columns import HISTORY_COLUMNS
from ect.runs.train import run_training


def test_f1_is_the_harmonic_mean_and_zero_without_positives():
    assert f1_score(0.5, 1.0) == pytest.approx(2 / 3, rel=1e-12)
    assert f1_score(0.0, 0.0) == 0.0


def test_tiny_cnn_beats_chance_on_the_synthetic_dataset(synthetic_dataset, tmp_path):
    """`ect train` end to end: two phases, history, metrics and a model that learned something."""
    overrides = {
        "DATASET_DIR": str(synthetic_dataset), "MODELS_DIR": str(tmp_path / "models"),
        "INITIAL_EPOCHS": 2, "FT_EPOCHS": 14, "FT_OPTIMIZER": "adam", "FT_LEARNING_RATE": 3e-3,
    }
    cfg = load_config(REPO, profile="demo", overrides=overrides, env={})
    with log_lines() as lines:
        out = run_training(cfg, "local", "tiny_cnn", experiment_name="shapes")

    assert out.parent == tmp_path / "models" / "local" / "tiny_cnn"
    metrics = json.loads((out / "metrics.json").read_text())
    print("validation accuracy", metrics["val_accuracy"])
    assert metrics["val_accuracy"] >= 0.75, metrics  # chance is 0.5 on balanced classes
    assert metrics["val_f1"] == pytest.approx(f1_score(metrics["val_precision"], metrics["val_recall"]), rel=1e-12)
    assert metrics["experiment_name"] == "shapes" and metrics["architecture"] == "tiny_cnn"
    assert metrics["initial_epochs_trained"] == 2 and 1 <= metrics["ft_epochs_trained"] <= 14
    assert metrics["train_images"] == 280 and metrics["validation_images"] == 120
    assert metrics["images_seen"] == 400 * metrics["trained_epochs"]
    assert metrics["gflops"] > 0 and metrics["macs"] == metrics["gflops"] * 1e9 / 2
    assert metrics["dataset_fingerprint"]["total_files"] == 400

    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == HISTORY_COLUMNS
    assert len(rows) == metrics["trained_epochs"]
    assert [r["phase"] for r in rows[:3]] == ["initial", "initial", "fine_tuning"]
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1))
    assert any("epoch 1/2 (initial)" in line for line in lines)

    import keras

    import ect.models.layers  # noqa: F401  (registers the custom layer for loading)

    model = keras.models.load_model(out / "model.keras")
    assert model.output_shape == (None, 1)


def test_plain_training_with_mlflow_needs_a_tracking_server_before_it_trains(synthetic_dataset, tmp_path):
    """The experiment falls back to EXPERIMENT_NAME; the tracking server has no default and is asked for first."""
    cfg = load_config(REPO, profile="demo", overrides={"MLFLOW_ENABLED": True, "DATASET_DIR": str(synthetic_dataset),
                                                       "MODELS_DIR": str(tmp_path / "m")}, env={})
    with pytest.raises(ConfigError, match="no tracking server is configured: set MLFLOW: URL in secrets.yaml"):
        run_training(cfg, "local", "tiny_cnn")
    assert not (tmp_path / "m").exists()


def test_cli_train_runs_the_demo_profile_and_reports_progress(synthetic_dataset, tmp_path):
    result = run_ect("train", "local", "tiny_cnn", "--profile", "demo", "-d", str(synthetic_dataset),
                     "--experiment_name", "demo", "--set", f"MODELS_DIR={tmp_path / 'm'}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "epoch 1/1 (initial)" in result.stdout and "epoch 2/2 (fine_tuning)" in result.stdout
    (run_dir,) = (tmp_path / "m" / "local" / "tiny_cnn").iterdir()
    assert {p.name for p in run_dir.iterdir()} == {"history.csv", "metrics.json", "model.keras", "model-summary.txt",
                                                   "manifest.json"}
    assert json.loads((run_dir / "metrics.json").read_text())["experiment_name"] == "demo"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "completed" and manifest["kind"] == "train" and manifest["run_id"] == run_dir.name
    assert manifest["model"] == {"file": f"local/tiny_cnn/{run_dir.name}/model.keras"}
    assert "tiny_cnn" in (run_dir / "model-summary.txt").read_text()
