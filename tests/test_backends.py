"""The Keras backend as a setting and a factor of the plan: parsing, run ids, preflight's refusals, and selecting a
backend before Keras is imported."""

import dataclasses
import os
import subprocess
import sys

import pytest

from ect import backends, pipeline
from ect.backends import BACKENDS, backend_record, check_backend, select_backend
from ect.config import load_config
from ect.errors import ConfigError
from ect.raw.layout import campaign_of, check_run_id
from ect.runs.commands import profile_run_args
from ect.runs.plan import plan_runs


def test_backend_defaults_to_tensorflow_and_backends_to_the_environments(project):
    cfg = load_config(project)
    assert cfg.environment("local").backend == "tensorflow" and cfg.experiment.backends is None
    assert cfg.backends("local") == ("tensorflow",)
    cfg = load_config(project, overrides={"BACKENDS": "jax, tensorflow"})
    assert cfg.backends("local") == ("jax", "tensorflow")


@pytest.mark.parametrize("value, expected", [("caffe", "unknown: 'caffe'"), ("jax,jax", "'jax' is listed twice")])
def test_a_bad_backends_value_is_refused_naming_it(project, value, expected):
    with pytest.raises(ConfigError, match=expected) as raised:
        load_config(project, overrides={"BACKENDS": value})
    assert "BACKENDS" in str(raised.value)


def test_an_unknown_environment_backend_is_refused_naming_the_file_and_key(project):
    path = project / "config" / "environments.yaml"
    path.write_text(path.read_text().replace("local:\n", "local:\n  BACKEND: mxnet\n", 1))
    with pytest.raises(ConfigError, match=r"environments.yaml.*BACKEND.*one of tensorflow, jax, torch"):
        load_config(project)


def test_the_plan_fans_out_architecture_x_backend_with_distinct_run_ids_and_labels():
    plan = plan_runs(["vgg16", "tiny_cnn"], 2, "manual__2026-12-04T10:00:00+00:00", backends=("tensorflow", "jax"))
    assert [(r.architecture, r.backend, r.repetition) for r in plan[:4]] == [
        ("vgg16", "tensorflow", 0), ("vgg16", "jax", 0), ("tiny_cnn", "tensorflow", 0), ("tiny_cnn", "jax", 0)]
    assert len({(r.architecture, r.run_id) for r in plan}) == len(plan) == 8
    assert plan[1].run_id == "manual__2026-12-04T10_00_00_00_00-jax-rep00" and plan[0].run_id.endswith("-rep00")
    assert plan[1].label == "vgg16 · jax · rep 0"
    for run in plan:
        check_run_id(run.run_id)
        assert campaign_of(run.run_id) == "manual__2026-12-04T10_00_00_00_00"
    assert profile_run_args("local", plan[1], [])[7:9] == ["--backend", "jax"]


def test_every_backend_s_run_id_gives_back_its_campaign():
    for name in BACKENDS:
        assert campaign_of(plan_runs(["vgg16"], 1, "c1", backends=(name,))[0].run_id) == "c1"


def _not_installed(monkeypatch, name):
    monkeypatch.setitem(BACKENDS, name, dataclasses.replace(BACKENDS[name], module="ect_no_such_framework"))


def test_a_backend_that_is_not_installed_is_refused_naming_it_and_how_to_install(monkeypatch):
    _not_installed(monkeypatch, "torch")
    with pytest.raises(ConfigError, match=r"backend torch is not installed on this host .*requirements-torch.txt"):
        check_backend("torch")


def test_preflight_refuses_a_missing_backend_and_an_architecture_a_backend_does_not_offer(project, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    _not_installed(monkeypatch, "torch")
    with pytest.raises(ConfigError, match="backend torch is not installed"):
        pipeline.preflight("local", {"profile": "demo", "backends": ["tensorflow", "torch"]}, "manual__1")
    monkeypatch.setitem(BACKENDS, "jax", dataclasses.replace(BACKENDS["jax"],
                                                             unsupported_architectures=frozenset({"vgg16"})))
    with pytest.raises(ConfigError, match="backend jax does not offer architecture.s. vgg16"):
        pipeline.preflight("local", {"profile": "demo", "backends": "jax"}, "manual__1")
    plan = pipeline.preflight("local", {"profile": "demo", "backends": "tensorflow,jax", "architectures": "tiny_cnn"},
                              "manual__1")
    assert plan["backends"] == ["tensorflow", "jax"]
    assert [(r["backend"], r["run_id"]) for r in plan["runs"]] == [("tensorflow", "manual__1-rep00"),
                                                                   ("jax", "manual__1-jax-rep00")]


def test_nasnet_mobile_on_torch_is_refused_before_training_naming_both(project, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    with pytest.raises(ConfigError, match="backend torch does not offer architecture.s. nasnet_mobile"):
        pipeline.preflight("local", {"profile": "demo", "backends": "torch", "architectures": "nasnet_mobile,vgg16"},
                           "manual__1")


def test_a_backend_is_selected_before_keras_is_imported_seeded_without_tensorflow_and_recorded():
    code = ("import sys; from ect.backends import select_backend, keras_backend, backend_record; "
            "select_backend('jax'); from ect.models.build import set_seed; set_seed(3); "
            "import keras; first = keras.random.uniform((3,)); set_seed(3); "
            "assert (keras.ops.convert_to_numpy(first) == keras.ops.convert_to_numpy(keras.random.uniform((3,)))).all(); "
            "print(keras_backend(), sys.modules.get('tensorflow') is not None, backend_record('jax'))")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    name, tensorflow_loaded, record = out.stdout.strip().split(" ", 2)
    assert (name, tensorflow_loaded) == ("jax", "False")
    assert "'name': 'jax'" in record and "'version': '0.10.2'" in record


def test_a_backend_cannot_change_once_keras_runs_on_another(monkeypatch):
    import keras

    other = "jax" if keras.backend.backend() != "jax" else "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())
    with pytest.raises(ConfigError, match=f"Keras was already imported with backend {keras.backend.backend()}"):
        select_backend(other)
    assert backend_record("tensorflow")["keras_version"] == backends.metadata.version("keras")
