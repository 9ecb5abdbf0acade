"""MLflow tracking of profiled runs, against a real `mlflow server` (sqlite backend, proxied artifacts)."""

import json
import socket
from pathlib import Path

import pytest

from conftest import REPO, airflow, airflow_env, free_ports, run_ect
from ect.config import load_config
from ect.energy import emissions_gCO2e
from ect.quality import predicts_one_class
from ect.tracking.mlflow_runs import CLASSIC_ML, EXPERIMENT_KIND_TAG, HYPERPARAMETERS, ONE_CLASS_TAG

pytestmark = pytest.mark.mlflow

SECRET = "s3cr3t-Pa55w0rd-never-shown"
RUN = ("profile-run", "local", "tiny_cnn", "--repetition", "0", "--profile", "demo")


def _env(tmp_path: Path, url: str) -> dict:
    return {"MLFLOW_TRACKING_URI": url, "MLFLOW_TRACKING_USERNAME": "ann", "MLFLOW_TRACKING_PASSWORD": SECRET,
            "ECT_SECRETS_FILE": str(tmp_path / "no-secrets.yaml")}


def _assert_secret_nowhere(metrics: Path, *results) -> None:
    for result in results:
        assert SECRET not in result.stdout and SECRET not in result.stderr
    files = [p for p in metrics.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def _read(path: Path) -> dict:
    return json.loads(path.read_text())


# Validation metrics of a model that learned something (both classes predicted), and of one that calls every image
# positive on a balanced set: accuracy 0.5 and an F1 of 0.667, above the first one's.
LEARNED = {"val_accuracy": 0.6, "val_precision": 0.62, "val_recall": 0.55, "val_f1": 2 * 0.62 * 0.55 / (0.62 + 0.55)}
ONE_CLASS = {"val_accuracy": 0.5, "val_precision": 0.5, "val_recall": 1.0, "val_f1": 2 / 3}
ONE_CLASS_OUTCOME = "logged, not registered: the model predicts one class ("


def _expected_model(metrics: dict) -> str:
    """How tracking.json's "model" starts for the first run of tiny_cnn in an experiment with these metrics.json
    values: what a 1 + 1 epoch demo training learns differs between machines (it may well predict one class)."""
    return ONE_CLASS_OUTCOME if predicts_one_class(metrics) else "registered as tiny_cnn version"


def _copy_run(folder: Path, run_id: str, manifest: dict, metrics: dict, experiment_name: str) -> Path:
    """A copy of a completed run folder under another run id with these validation metrics, waiting for
    `ect mlflow-sync` into the experiment; its manifest names the same model file."""
    copy = folder.parent / run_id
    copy.mkdir()
    for name in ("history.csv", "cpu.csv"):
        (copy / name).write_bytes((folder / name).read_bytes())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "run_id": run_id}))
    (copy / "metrics.json").write_text(json.dumps({**_read(folder / "metrics.json"), **metrics}))
    (copy / "tracking.json").write_text(json.dumps({"synced": False, "experiment_name": experiment_name}))
    return copy


def _registered_version(client, name: str, run_id: str):
    versions = [v for v in client.search_model_versions(f"name = '{name}'") if v.run_id == run_id]
    return versions[0] if versions else None


def _assert_power_series(client, run_id: str, folder: Path, manifest: dict) -> None:
    """The CPU power and utilisation series have one point per second of the window in which cpu.csv has a
    sample: step = seconds since the window's start, timestamp = that second's first sample."""
    import pandas as pd

    from ect.aggregate.samples import read_cpu

    start_ms = round(manifest["window"]["start_unix_s"] * 1000)
    end_ms = round(manifest["window"]["end_unix_s"] * 1000)
    times = pd.Series(read_cpu(folder)["time_ms"].to_numpy())
    times = times[(times >= start_ms) & (times <= end_ms)]
    seconds = times.groupby((times - start_ms) // 1000).min()
    assert len(seconds) >= 1
    source = manifest["energy"]["training"]["cpu_energy_source"]
    power = {"counter": "power_cpu_W", "estimated": "power_cpu_estimated_W"}[source]
    for name in (power, "utilization_cpu_process_pct"):
        history = client.get_metric_history(run_id, name)
        assert [(m.step, m.timestamp) for m in history] == list(seconds.items()), name
        assert all(m.value >= 0 for m in history)


def _assert_loads_as_the_saved_model(version, model_file: Path) -> None:
    """The registered model, loaded through MLflow, predicts what the model ect saved predicts."""
    import keras
    import mlflow.keras
    import numpy as np

    import ect.models.layers  # noqa: F401  (registers ect's preprocessing layer for loading)

    saved = keras.saving.load_model(model_file, compile=False)
    images = np.random.default_rng(0).random((4, *saved.input_shape[1:]), dtype="float32")
    registered = mlflow.keras.load_model(f"models:/{version.name}/{version.version}")
    np.testing.assert_allclose(registered.predict(images, verbose=0), saved.predict(images, verbose=0), rtol=1e-6)


def test_a_completed_profiled_run_is_an_mlflow_run(mlflow_url, synthetic_dataset, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    metrics, models = tmp_path / "metrics", tmp_path / "models"
    result = run_ect(*RUN, "--run-id", "t1", "-d", str(synthetic_dataset), "--experiment-name", "ect-test",
                     "--set", f"METRICS_DIR={metrics}", "--set", f"MODELS_DIR={models}", "--set", "MLFLOW_ENABLED=true",
                     cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = metrics / "raw" / "local" / "tiny_cnn" / "t1"
    manifest = _read(folder / "manifest.json")
    assert manifest["status"] == "completed" and manifest["kind"] == "profiled"
    assert manifest["model"]["file"] == "local/tiny_cnn/t1/model.keras"
    assert manifest["model"]["bytes"] == (models / "local/tiny_cnn/t1/model.keras").stat().st_size
    tracking = _read(folder / "tracking.json")
    trained = _read(folder / "metrics.json")
    assert tracking["synced"] is True and tracking["experiment_name"] == "ect-test", tracking
    assert tracking["model"].startswith(_expected_model(trained)), tracking

    client = MlflowClient(mlflow_url)
    experiment = client.get_experiment_by_name("ect-test")
    assert experiment is not None and experiment.experiment_id == tracking["experiment_id"]
    assert experiment.tags[EXPERIMENT_KIND_TAG] == CLASSIC_ML == "custom_model_development"  # classic ML view
    run = client.get_run(tracking["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    params, values, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["architecture"] == "tiny_cnn" and params["environment"] == "local"
    assert params["INITIAL_EPOCHS"] == "1" and params["FT_EPOCHS"] == "1" and params["run_id"] == "t1"
    assert len(params["dataset_sha256"]) == 64 and params["dataset_total_files"] == "400"
    assert params["sensors_used"] and float(params["sampling_interval_s"]) > 0
    # Settings are params only: no metric is named after a hyperparameter.
    assert int(params["BATCH_SIZE"]) > 0 and int(params["IMAGE_SIZE"]) > 0 and "LEARNING_RATE" in params
    assert not {name.upper() for name in values} & set(HYPERPARAMETERS), sorted(values)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert len(client.get_metric_history(run.info.run_id, "val_f1")) == 2
    assert len(client.get_metric_history(run.info.run_id, "epoch_learning_rate")) == 2
    # The overview: energy (J, kWh), emissions and F1, as the manifest and metrics.json say, and a description.
    training = manifest["energy"]["training"]
    assert values["total_energy_J"] == pytest.approx(training["total_energy_J"]) and values["total_energy_J"] > 0
    assert values["cpu_energy_J"] > 0 and values["duration_s"] == pytest.approx(training["duration_s"])
    assert values["energy_kWh"] == pytest.approx(values["total_energy_J"] / 3.6e6)
    local = load_config(REPO, env={}).environment("local")
    assert values["emissions_gCO2e"] == pytest.approx(emissions_gCO2e(values["energy_kWh"], local))
    assert values["final_val_f1"] == pytest.approx(_read(folder / "metrics.json")["val_f1"])
    assert values["gflops"] > 0 and values["trained_epochs"] == 2
    note = tags["mlflow.note.content"]
    assert f"{values['total_energy_J']:.4g} J" in note and f"{values['emissions_gCO2e']:.4g} gCO2e" in note
    assert f"F1 {values['final_val_f1']:.4g}" in note
    _assert_power_series(client, run.info.run_id, folder, manifest)
    assert tags["ect_run_key"] == "local/tiny_cnn/t1" and tags["environment"] == "local"
    assert tags["architecture"] == "tiny_cnn" and tags["host"] == socket.gethostname()
    assert tags["gpus"] and tags["ect_version"] and tags["cpu_energy_source"] != "unavailable"
    assert tags["ect_kind"] == "profiled" and "ect_plots_error" not in tags and "ect_power_series_error" not in tags
    assert (tags.get(ONE_CLASS_TAG) == "true") == predicts_one_class(trained)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "raw")}
    assert {"raw/manifest.json", "raw/history.csv", "raw/metrics.json", "raw/cpu.csv"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {
        "plots/training_curves.png", "plots/power_timeline.png"}
    assert "model-summary.txt" in {a.path for a in client.list_artifacts(run.info.run_id)}
    # The model is a LoggedModel of the run (its "Logged models"), with the run's params and overview metrics...
    (output,) = run.outputs.model_outputs
    (logged,) = client.search_logged_models([experiment.experiment_id],
                                            filter_string=f"source_run_id = '{run.info.run_id}'")
    assert logged.model_id == output.model_id and logged.source_run_id == run.info.run_id
    assert str(logged.status) == "READY" and logged.name == "model"
    assert logged.params["BATCH_SIZE"] == params["BATCH_SIZE"]
    assert {m.key: m.value for m in logged.metrics}["final_val_f1"] == values["final_val_f1"]
    assert "MLmodel" in {a.path for a in client.list_logged_model_artifacts(logged.model_id)}

    # Registration, on copies of the run with known validation metrics, in an experiment of their own: the first
    # that learned something is registered, and the registered version points at its LoggedModel.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    sync_command = ("mlflow-sync", "--set", f"METRICS_DIR={metrics}", "--set", f"MODELS_DIR={models}")
    learned = _copy_run(folder, "t1-learned", manifest, LEARNED, "ect-registry")
    sync = run_ect(*sync_command, cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert sync.returncode == 0, sync.stdout + sync.stderr
    learned_tracking = _read(learned / "tracking.json")
    learned_run = client.get_run(learned_tracking["mlflow_run_id"])
    assert ONE_CLASS_TAG not in learned_run.data.tags
    (learned_logged,) = client.search_logged_models([learned_tracking["experiment_id"]],
                                                    filter_string=f"source_run_id = '{learned_run.info.run_id}'")
    version = _registered_version(client, "tiny_cnn", learned_run.info.run_id)
    assert version is not None and learned_tracking["model"] == (f"registered as tiny_cnn version {version.version} "
                                                                 f"(val_f1 {LEARNED['val_f1']:.4f})"), learned_tracking
    # (the OSS registry keeps the link in the source and in the LoggedModel's mlflow.modelVersions tag)
    model_id = learned_logged.model_id
    assert version.source == f"models:/{model_id}" and version.model_id in (None, model_id)
    assert {"name": "tiny_cnn", "version": str(version.version)} in [
        {"name": v["name"], "version": str(v["version"])}
        for v in json.loads(client.get_logged_model(model_id).tags["mlflow.modelVersions"])]
    _assert_loads_as_the_saved_model(version, models / "local/tiny_cnn/t1/model.keras")

    # A model that predicts one class is tagged and never registered, though its F1 (0.667) is above the best; a
    # later run whose F1 is not above the best is logged but not registered.
    one_class = _copy_run(folder, "t1-one-class", manifest, ONE_CLASS, "ect-registry")
    later = _copy_run(folder, "t1-later", manifest, {**LEARNED, "val_f1": -1.0}, "ect-registry")
    second_sync = run_ect(*sync_command, cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert second_sync.returncode == 0, second_sync.stdout + second_sync.stderr
    one_class_tracking = _read(one_class / "tracking.json")
    assert one_class_tracking["model"] == (
        "logged, not registered: the model predicts one class (validation recall 1 and precision 0.5 = accuracy: "
        "every validation image called positive)"), one_class_tracking
    one_class_run = client.get_run(one_class_tracking["mlflow_run_id"])
    assert one_class_run.data.tags[ONE_CLASS_TAG] == "true" and one_class_run.data.tags["ect_model_logged"] == "true"
    assert one_class_run.data.metrics["final_val_f1"] == pytest.approx(2 / 3)
    assert _registered_version(client, "tiny_cnn", one_class_run.info.run_id) is None
    (one_class_logged,) = client.search_logged_models([one_class_tracking["experiment_id"]],
                                                      filter_string=f"source_run_id = '{one_class_run.info.run_id}'")
    assert one_class_logged.tags[ONE_CLASS_TAG] == "true"
    later_tracking = _read(later / "tracking.json")
    assert later_tracking["model"] == (f"logged, not registered: val_f1 -1.0 is not above the best tiny_cnn run's "
                                       f"{LEARNED['val_f1']}"), later_tracking
    assert _registered_version(client, "tiny_cnn", later_tracking["mlflow_run_id"]) is None
    _assert_secret_nowhere(metrics, result, sync, second_sync)


def test_plain_training_is_an_mlflow_run_too(mlflow_url, synthetic_dataset, tmp_path, monkeypatch):
    import mlflow.artifacts
    from mlflow.tracking import MlflowClient

    models = tmp_path / "models"
    result = run_ect("train", "local", "tiny_cnn", "--profile", "demo", "-d", str(synthetic_dataset),
                     "--experiment-name", "ect-train", "--set", f"MODELS_DIR={models}", "--set", "MLFLOW_ENABLED=true",
                     cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert result.returncode == 0, result.stdout + result.stderr
    (folder,) = (models / "local" / "tiny_cnn").iterdir()
    assert _read(folder / "manifest.json")["status"] == "completed"
    tracking = _read(folder / "tracking.json")
    trained = _read(folder / "metrics.json")
    assert tracking["synced"] is True and tracking["model"].startswith(_expected_model(trained)), tracking

    client = MlflowClient(mlflow_url)
    run = client.get_run(tracking["mlflow_run_id"])
    params, values, tags = run.data.params, run.data.metrics, run.data.tags
    assert run.info.experiment_id == client.get_experiment_by_name("ect-train").experiment_id
    assert tags["ect_kind"] == "train" and tags["ect_run_key"] == f"train/local/tiny_cnn/{folder.name}"
    assert params["architecture"] == "tiny_cnn" and params["run_id"] == folder.name and params["INITIAL_EPOCHS"] == "1"
    assert len(params["dataset_sha256"]) == 64
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2]
    assert "final_val_f1" in values and values["trained_epochs"] == 2
    assert "total_energy_J" not in values and tags["gpu_energy_source"] == "unavailable"  # nothing was measured
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} == {"plots/training_curves.png"}
    assert not any(name.startswith(("power_", "utilization_")) for name in values)  # nothing was sampled
    assert "batch_size" not in values and "seed" not in values and "training_duration_s" in values
    assert "energy not measured" in tags["mlflow.note.content"]
    assert tags["backend"] == "tensorflow"
    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id
    # The model's pip requirements: Keras and the run's backend, at the versions its manifest records.
    backend = _read(folder / "manifest.json")["backend"]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    requirements = Path(mlflow.artifacts.download_artifacts(f"{logged.artifact_location}/requirements.txt",
                                                            dst_path=str(tmp_path / "requirements"))).read_text()
    assert {f"keras=={backend['keras_version']}", f"tensorflow=={backend['version']}"} <= set(requirements.split())
    version = _registered_version(client, "tiny_cnn", run.info.run_id)
    if predicts_one_class(trained):  # what the demo training learned: see _expected_model
        assert version is None and tags[ONE_CLASS_TAG] == "true"
    else:
        assert version.source == f"models:/{output.model_id}" and ONE_CLASS_TAG not in tags
    _assert_secret_nowhere(models, result)


def test_a_jax_run_is_tracked_like_any_other_and_its_model_loads_under_tensorflow(mlflow_url, synthetic_dataset,
                                                                                  tmp_path, monkeypatch):
    """Seeds, model saving and MLflow logging the same way under JAX: the run's backend in its params, tags and model
    requirements, and its model.keras (saved by JAX) loaded and run by this TensorFlow process."""
    import keras
    import mlflow.artifacts
    import numpy as np
    from mlflow.tracking import MlflowClient

    import ect.models.layers  # noqa: F401  (registers ect's preprocessing layer for loading)

    metrics, models = tmp_path / "metrics", tmp_path / "models"
    result = run_ect(*RUN, "--run-id", "j1", "--backend", "jax", "-d", str(synthetic_dataset),
                     "--experiment-name", "ect-jax", "--set", f"METRICS_DIR={metrics}", "--set", f"MODELS_DIR={models}",
                     "--set", "MLFLOW_ENABLED=true", cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = _read(metrics / "raw" / "local" / "tiny_cnn" / "j1" / "manifest.json")
    assert manifest["status"] == "completed" and manifest["backend"]["name"] == "jax"
    tracking = _read(metrics / "raw" / "local" / "tiny_cnn" / "j1" / "tracking.json")
    assert tracking["synced"] is True, tracking
    client = MlflowClient(mlflow_url)
    run = client.get_run(tracking["mlflow_run_id"])
    assert run.data.tags["backend"] == "jax" and run.data.params["backend"] == "jax"
    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_url)
    requirements = Path(mlflow.artifacts.download_artifacts(f"{logged.artifact_location}/requirements.txt",
                                                            dst_path=str(tmp_path / "requirements"))).read_text()
    assert {f"keras=={manifest['backend']['keras_version']}", "jax==0.10.2"} <= set(requirements.split())
    saved = keras.saving.load_model(models / manifest["model"]["file"], compile=False)
    images = np.random.default_rng(0).random((4, *saved.input_shape[1:]), dtype="float32")
    predictions = saved.predict(images, verbose=0)
    assert predictions.shape == (4, 1) and np.all((predictions >= 0) & (predictions <= 1))


def test_server_down_leaves_the_run_completed_and_mlflow_sync_uploads_it_once(mlflow_url, synthetic_dataset, tmp_path):
    from mlflow.tracking import MlflowClient

    metrics = tmp_path / "metrics"
    # An experiment made before ect set its kind, opened in the UI (which guessed GenAI): it becomes classic ML.
    MlflowClient(mlflow_url).create_experiment("ect-sync", tags={EXPERIMENT_KIND_TAG: "genai_development_inferred"})
    down = f"http://127.0.0.1:{free_ports(1)[0]}"
    result = run_ect(*RUN, "--run-id", "t2", "-d", str(synthetic_dataset), "--experiment-name", "ect-sync",
                     "--set", f"METRICS_DIR={metrics}", "--set", f"MODELS_DIR={tmp_path / 'models'}",
                     "--set", "MLFLOW_ENABLED=true", cwd=tmp_path,
                     env=_env(tmp_path, down))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = metrics / "raw" / "local" / "tiny_cnn" / "t2"
    assert _read(folder / "manifest.json")["status"] == "completed"
    tracking = _read(folder / "tracking.json")
    assert tracking["synced"] is False and tracking["experiment_name"] == "ect-sync" and tracking["error"]
    assert "not synced" in result.stdout
    # Validation metrics of a model that learned something (the demo training's may not have): it is registered.
    (folder / "metrics.json").write_text(json.dumps({**_read(folder / "metrics.json"), **LEARNED}))

    sync = ("mlflow-sync", "--set", f"METRICS_DIR={metrics}", "--set", f"MODELS_DIR={tmp_path / 'models'}")
    first = run_ect(*sync, cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{folder}: synced" in first.stdout
    tracking = _read(folder / "tracking.json")
    assert tracking["synced"] is True and tracking["model"].startswith("registered as tiny_cnn version"), tracking

    second = run_ect(*sync, cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert second.returncode == 0 and "nothing to sync" in second.stdout, second.stdout + second.stderr

    client = MlflowClient(mlflow_url)
    experiment = client.get_experiment_by_name("ect-sync")
    assert experiment.tags[EXPERIMENT_KIND_TAG] == CLASSIC_ML
    runs = client.search_runs([experiment.experiment_id], "tags.ect_run_key = 'local/tiny_cnn/t2'")
    assert len(runs) == 1 and runs[0].info.run_id == tracking["mlflow_run_id"]
    assert {v.run_id for v in client.search_model_versions("name = 'tiny_cnn'")} >= {tracking["mlflow_run_id"]}

    # A crash after the upload, before the marking: the next sync finds the run and only marks it.
    tracking.update(synced=False)
    (folder / "tracking.json").write_text(json.dumps(tracking))
    third = run_ect(*sync, cwd=tmp_path, env=_env(tmp_path, mlflow_url))
    assert third.returncode == 0, third.stdout + third.stderr
    assert _read(folder / "tracking.json")["mlflow_run_id"] == runs[0].info.run_id
    assert len(client.search_runs([experiment.experiment_id], "tags.ect_run_key = 'local/tiny_cnn/t2'")) == 1
    _assert_secret_nowhere(metrics, result, first, second, third)


def test_mlflow_enabled_without_an_experiment_name_tracks_to_the_environment_s_experiment(mlflow_url, synthetic_dataset,
                                                                                           tmp_path):
    metrics = tmp_path / "metrics"
    result = run_ect(*RUN, "--run-id", "t3", "-d", str(synthetic_dataset), "--set", f"METRICS_DIR={metrics}",
                     "--set", f"MODELS_DIR={tmp_path / 'models'}", "--set", "MLFLOW_ENABLED=true", cwd=tmp_path,
                     env=_env(tmp_path, mlflow_url))
    assert result.returncode == 0, result.stdout + result.stderr
    tracking = _read(metrics / "raw" / "local" / "tiny_cnn" / "t3" / "tracking.json")
    assert tracking["synced"] is True and tracking["experiment_name"] == "ect-local", tracking
    assert SECRET not in result.stdout + result.stderr


def test_mlflow_enabled_needs_a_tracking_server(synthetic_dataset, tmp_path):
    metrics = tmp_path / "metrics"
    env = {**_env(tmp_path, ""), "MLFLOW_TRACKING_URI": ""}
    result = run_ect(*RUN, "--run-id", "t4", "-d", str(synthetic_dataset), "--experiment-name", "x",
                     "--set", f"METRICS_DIR={metrics}", "--set", "MLFLOW_ENABLED=true", cwd=tmp_path, env=env)
    assert result.returncode == 2 and "MLFLOW_TRACKING_URI" in result.stderr, result.stdout + result.stderr
    assert not (metrics / "raw" / "local" / "tiny_cnn" / "t4").exists()


@pytest.mark.airflow
def test_a_tracked_dag_run_keeps_the_password_out_of_logs_xcom_and_rendered_fields(mlflow_url, synthetic_dataset,
                                                                                    tmp_path):
    import json
    import sqlite3

    from mlflow.tracking import MlflowClient

    metrics = tmp_path / "metrics"
    host_port = mlflow_url.split("://", 1)[1]
    env = {**airflow_env(tmp_path / "home", metrics, synthetic_dataset), "ECT_MLFLOW_ENABLED": "true",
           # The credentials come from the Airflow connection mlflow_default (here defined by environment).
           "AIRFLOW_CONN_MLFLOW_DEFAULT": f"http://ann:{SECRET}@{host_port}",
           "ECT_SECRETS_FILE": str(tmp_path / "no-secrets.yaml")}
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        env.pop(name, None)
    airflow("db", "migrate", env=env)
    airflow("dags", "reserialize", env=env)
    conf = {"profile": "demo", "architectures": ["tiny_cnn"], "experiment_name": "dag-tracked"}
    result = airflow("dags", "test", "ect_local", "--conf", json.dumps(conf), env=env, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]

    experiment = MlflowClient(mlflow_url).get_experiment_by_name("dag-tracked")
    (run,) = MlflowClient(mlflow_url).search_runs([experiment.experiment_id])
    assert run.data.tags["architecture"] == "tiny_cnn"
    (manifest_path,) = (metrics / "raw" / "local" / "tiny_cnn").glob("*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    from ect.raw.layout import run_id_for

    assert manifest["dag_run_id"] and run.data.tags["dag_run_id"] == manifest["dag_run_id"]
    assert manifest["run_id"] == run_id_for(manifest["dag_run_id"], 0)

    assert SECRET not in result.stdout + result.stderr
    for path in [*Path(env["AIRFLOW_HOME"]).rglob("*"), *metrics.rglob("*")]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db") as db:
        stored = [str(row) for table in ("xcom", "rendered_task_instance_fields")
                  for row in db.execute(f"SELECT * FROM {table}")]
    assert stored and not any(SECRET in text for text in stored)
