import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO
from ect.config import load_config, load_secrets
from ect.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_shipped_files_load_with_the_original_values():
    cfg = load_config(root=REPO, env={})
    assert cfg.experiment.initial_epochs == 10 and cfg.experiment.ft_epochs == 140
    assert cfg.experiment.repetitions == 30 and cfg.experiment.warmup_time == 10
    assert cfg.experiment.architectures == ("vgg16", "resnet50", "xception", "mobilenet_v2", "nasnet_mobile")
    assert cfg.experiment.early_stopping_patience == 20 and cfg.experiment.reduce_lr_factor == 0.1
    assert set(cfg.environments) == {"local", "cloud"}
    assert cfg.environments["local"].carbon_intensity_gco2e_per_kwh == 232
    assert cfg.origins["experiment.INITIAL_EPOCHS"] == str(REPO / "config" / "experiment.yaml")
    assert cfg.origins["resources.GPU_MEM_LIMIT"] == "default"  # resources.yaml is optional


def test_layers_cli_over_environment_over_profile_over_file(project):
    write(project / "config" / "profiles" / "p.yaml", "experiment:\n  INITIAL_EPOCHS: 6\n")
    (project / "config" / "experiment.yaml").write_text("INITIAL_EPOCHS: 5\n")

    assert load_config(project, env={}).experiment.initial_epochs == 5
    assert load_config(project, profile="p", env={}).experiment.initial_epochs == 6
    assert load_config(project, env={"ECT_PROFILE": "p"}).experiment.initial_epochs == 6
    env = {"ECT_PROFILE": "p", "ECT_INITIAL_EPOCHS": "7"}
    assert load_config(project, env=env).experiment.initial_epochs == 7
    cfg = load_config(project, env=env, overrides={"INITIAL_EPOCHS": "8"})
    assert cfg.experiment.initial_epochs == 8
    assert cfg.origins["experiment.INITIAL_EPOCHS"] == "command line"
    assert load_config(project, env={}).experiment.ft_epochs == 140  # untouched keys keep their defaults


def test_demo_profile_is_small():
    cfg = load_config(root=REPO, profile="demo", env={})
    e = cfg.experiment
    assert (e.initial_epochs, e.ft_epochs, e.repetitions, e.warmup_time, e.cooldown) == (1, 1, 1, 0, 0)
    assert e.image_size <= 32 and "tiny_cnn" in e.architectures
    assert cfg.path("DATASET_DIR") == REPO / "data" / "demo-dataset"


def test_nested_resources_keys_and_no_limit(project):
    write(project / "config" / "resources.yaml", "GPU:\n  MEM_LIMIT: 2048\nUSE_CACHE: false\n")
    cfg = load_config(project, env={})
    assert cfg.resources.gpu_mem_limit == 2048 and cfg.resources.use_cache is False
    write(project / "config" / "resources.yaml", "GPU:\n  MEM_LIMIT:\n")
    assert load_config(project, env={}).resources.gpu_mem_limit is None


@pytest.mark.parametrize(
    "file, text, expected",
    [
        ("experiment.yaml", "ARCHITECTURES: [vgg16, resnet51]\n", ["ARCHITECTURES", "resnet51", "mobilenet_v2"]),
        ("experiment.yaml", "INITIAL_EPOCHS: 0\n", ["INITIAL_EPOCHS=0", "integer >= 1"]),
        ("experiment.yaml", "FT_EPOCHS: -3\n", ["FT_EPOCHS=-3", "integer >= 1"]),
        ("experiment.yaml", "INTIAL_EPOCHS: 3\n", ["unknown key INTIAL_EPOCHS", "INITIAL_EPOCHS"]),
        ("experiment.yaml", "VALIDATION_SPLIT: 1.5\n", ["VALIDATION_SPLIT=1.5", "between 0 and 1"]),
        ("resources.yaml", "GPU:\n  MEM_LIMIT: 2048.5\n", ["GPU_MEM_LIMIT=2048.5", "whole number of megabytes"]),
        ("resources.yaml", "GPU:\n  MEM_LIMIT: 2GB\n", ["GPU_MEM_LIMIT='2GB'", "whole number of megabytes"]),
        ("environments.yaml", "local:\n  RUNNER: kubernetes\n", ["environment local", "RUNNER='kubernetes'", "process, docker"]),
        ("environments.yaml", "local:\n  SCHEDULE: every night\n", ["SCHEDULE='every night'", "cron"]),
        ("environments.yaml", "local:\n  PUE: 0.5\n", ["PUE=0.5", ">= 1"]),
        ("base.yaml", "DATASET_DIR: [a, b]\n", ["DATASET_DIR", "non-empty string"]),
        ("experiment.yaml", "INITIAL_EPOCHS: [1\n", ["not valid YAML"]),
        # Hostile values: infinities and NaN, out-of-range seeds, cron fields out of range, reserved names.
        ("experiment.yaml", "SAMPLING_INTERVAL_MS: .inf\n", ["SAMPLING_INTERVAL_MS=inf", "finite number > 0"]),
        ("experiment.yaml", "SAMPLING_INTERVAL_MS: inf\n", ["SAMPLING_INTERVAL_MS='inf'", "finite number > 0"]),
        ("experiment.yaml", "VALIDATION:\n  MAX_GAP_FACTOR: .nan\n", ["VALIDATION_MAX_GAP_FACTOR=nan", "finite"]),
        ("experiment.yaml", "LEARNING_RATE: -.inf\n", ["LEARNING_RATE=-inf", "finite number > 0"]),
        ("environments.yaml", "local:\n  PUE: .inf\n", ["PUE=inf", "finite number >= 1"]),
        ("experiment.yaml", "SEED: 4294967296\n", ["SEED=4294967296", "an integer from 0 to 4294967295"]),
        ("experiment.yaml", "SEED: -1\n", ["SEED=-1", "an integer from 0 to 4294967295"]),
        ("environments.yaml", "local:\n  SCHEDULE: 61 2 * * *\n", ["SCHEDULE='61 2 * * *'", "out of range"]),
        ("environments.yaml", "local:\n  SCHEDULE: '@once'\n", ["SCHEDULE='@once'", "cron"]),
        ("environments.yaml", "report:\n  RUNNER: process\n", ["environment name 'report' is reserved",
                                                                 "ect_report"]),
        ("environments.yaml", "../x:\n  RUNNER: process\n", ["environment name '../x'", "letters, digits"]),
    ],
)
def test_invalid_values_name_file_key_value_and_what_is_allowed(project, file, text, expected):
    path = write(project / "config" / file, text)
    with pytest.raises(ConfigError) as error:
        load_config(project, env={})
    message = str(error.value)
    assert str(path) in message
    for fragment in expected:
        assert fragment in message


def test_invalid_environment_variable_and_command_line_values_name_their_origin(project):
    with pytest.raises(ConfigError, match=r"environment variable ECT_BATCH_SIZE: BATCH_SIZE='abc': expected an integer"):
        load_config(project, env={"ECT_BATCH_SIZE": "abc"})
    with pytest.raises(ConfigError, match=r"command line: IMAGE_SIZE='-1': expected an integer >= 1"):
        load_config(project, env={}, overrides={"IMAGE_SIZE": "-1"})
    with pytest.raises(ConfigError, match=r"unknown setting 'EPOCHS'"):
        load_config(project, env={}, overrides={"EPOCHS": "3"})


def test_unknown_profile_lists_the_available_ones(project):
    with pytest.raises(ConfigError, match=r"unknown profile 'fast'.*available profiles: demo"):
        load_config(project, profile="fast", env={})


def test_unknown_environment_names_the_file_and_the_known_ones(project):
    cfg = load_config(project, env={})
    with pytest.raises(ConfigError) as error:
        cfg.environment("mars")
    assert "'mars'" in str(error.value) and "environments.yaml" in str(error.value)
    assert "cloud, local" in str(error.value)


def test_missing_dataset_folder_names_key_origin_and_path(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load_config(project, env={}, overrides={"DATASET_DIR": "nowhere"})
    with pytest.raises(ConfigError) as error:
        cfg.dataset_dir()
    message = str(error.value)
    assert "command line: DATASET_DIR='" in message and str(tmp_path / "nowhere") in message
    assert "does not exist" in message


def test_paths_from_files_are_relative_to_the_root_and_from_the_command_line_to_the_cwd(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_config(project, env={}).path("METRICS_DIR") == project / "data" / "metrics"
    assert load_config(project, env={}, overrides={"METRICS_DIR": "m"}).path("METRICS_DIR") == tmp_path / "m"


def test_missing_secrets_file_is_not_an_error_until_a_run_needs_it(project):
    secrets = load_secrets(project, env={})
    assert secrets.url is None and secrets.source == "none"
    with pytest.raises(ConfigError, match="MLFLOW_TRACKING_URI"):
        secrets.require_url()


def test_secrets_from_file_and_environment_never_show_the_password(project):
    write(project / "secrets.yaml", "MLFLOW:\n  URL: http://tracking:5000\n  USERNAME: ann\n  PASSWORD: s3cret-pw\n")
    secrets = load_secrets(project, env={})
    assert (secrets.url, secrets.username, secrets.password) == ("http://tracking:5000", "ann", "s3cret-pw")
    assert "s3cret-pw" not in repr(secrets)
    from_env = load_secrets(project, env={"MLFLOW_TRACKING_URI": "http://other", "MLFLOW_TRACKING_PASSWORD": "pw2"})
    assert from_env.url == "http://other" and from_env.password == "pw2" and from_env.username == "ann"


def test_importing_ect_touches_no_gpu_file_or_tensorflow(tmp_path):
    """The original crashed at import time without a GPU or a secrets file; ect must not even import TensorFlow."""
    code = (
        "import sys, ect, ect.cli, ect.config, ect.data, ect.models, ect.models.training\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow imported at start-up'\n"
        "import os; assert os.listdir('.') == [], os.listdir('.')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_config_file_that_is_not_utf8_is_named(project):
    path = project / "config" / "experiment.yaml"
    path.write_bytes(b"INITIAL_EPOCHS: 3\nOPTIMIZER: \xe9t\xe9\n")
    with pytest.raises(ConfigError, match=rf"^{path}: not UTF-8 text \(invalid continuation byte at byte \d+\)"):
        load_config(project, env={})


def test_an_alert_callback_that_does_not_import_is_named_by_ect_config_and_preflight(project, monkeypatch):
    from ect import pipeline

    write(project / "config" / "environments.yaml", "local:\n  RUNNER: process\n  ALERT_CALLBACK: alerts.page_me\n")
    monkeypatch.setenv("ECT_HOME", str(project))
    checked = subprocess.run([sys.executable, "-m", "ect", "config"], capture_output=True, text=True,
                             env={**__import__("os").environ, "ECT_HOME": str(project)})
    assert checked.returncode == 2 and "alert_callback=does not import" in checked.stdout
    assert "environment local: ALERT_CALLBACK 'alerts.page_me': cannot be imported (ModuleNotFoundError" in checked.stderr
    with pytest.raises(ConfigError, match=r"environment local: ALERT_CALLBACK 'alerts.page_me': cannot be imported"):
        pipeline.preflight("local", {"profile": "demo"}, "manual__1")
    write(project / "config" / "environments.yaml", "local:\n  RUNNER: process\n  ALERT_CALLBACK: os.sep\n")
    with pytest.raises(ConfigError, match=r"ALERT_CALLBACK 'os.sep': is a str, not a function"):
        load_config(project, env={}).environment("local").alert_function()
    write(project / "config" / "environments.yaml", "local:\n  RUNNER: process\n  ALERT_CALLBACK: logging.warning\n")
    assert load_config(project, env={}).environment("local").alert_function() is __import__("logging").warning


BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, *"abcdefgh"], "abcdefghi"))  # 9 levels of 9 aliases: 9^9 values once expanded


@pytest.mark.parametrize("file, text", [
    ("experiment.yaml", BILLION_LAUGHS),
    ("environments.yaml", "local:\n  RUNNER: process\n"  # doubling 39 times
     + "".join(f"  X{i}: &x{i} [*x{i - 1}, *x{i - 1}]\n" for i in range(1, 40)).replace("*x0, *x0", "1, 2")),
    ("experiment.yaml", "LOOP: &loop [*loop]\n"),  # an alias that stands for the list it is in: endless
])
def test_aliases_that_expand_a_small_file_past_the_limit_are_refused_before_they_are_expanded(project, file, text):
    from ect.config.loader import MAX_VALUES

    path = write(project / "config" / file, text)
    with pytest.raises(ConfigError) as refused:
        load_config(project, env={})
    message = str(refused.value)
    assert message.startswith(f"{path}: expands to more than {MAX_VALUES:,} values through its aliases")
    assert len(message) < 500


def test_a_config_file_over_the_size_limit_is_refused_naming_it(project):
    from ect.config.loader import MAX_FILE_BYTES

    path = write(project / "config" / "experiment.yaml", "INITIAL_EPOCHS: 3\n" + "# padding\n" * (MAX_FILE_BYTES // 10))
    with pytest.raises(ConfigError, match=rf"^{path}: 1 MiB, more than a configuration file may be \(1 MiB\)"):
        load_config(project, env={})
    write(project / "config" / "experiment.yaml", "INITIAL_EPOCHS: 3\n" + "# padding\n" * (MAX_FILE_BYTES // 20))
    assert load_config(project, env={}).experiment.initial_epochs == 3  # half the limit is fine


@pytest.mark.parametrize("file, text, expected", [
    # More digits than Python turns into an int (4300): the setting refuses the text, naming file and key.
    ("experiment.yaml", f"INITIAL_EPOCHS: {'1' * 5001}\n", "INITIAL_EPOCHS='1111"),
    ("resources.yaml", f"GPU:\n  MEM_LIMIT: {'9' * 5001}\n", "GPU_MEM_LIMIT='9999"),
    ("environments.yaml", f"local:\n  PUE: {'2' * 5001}\n", "environment local: PUE='2222"),
    # An int no float holds, for a number setting.
    ("experiment.yaml", f"LEARNING_RATE: {'1' * 400}\n", "LEARNING_RATE=1111"),
])
def test_numbers_that_do_not_convert_name_file_key_and_what_was_expected(project, file, text, expected):
    path = write(project / "config" / file, text)
    with pytest.raises(ConfigError) as refused:
        load_config(project, env={})
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and expected in message and ": expected a" in message
    assert len(message) < 1000  # the value is quoted up to 500 characters, then how many more there were
    if len(text) > 5000:
        assert "more characters): expected" in message


def test_deeply_nested_yaml_and_huge_values_give_short_messages(project):
    path = write(project / "config" / "experiment.yaml", "X: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=rf"^{path}: nested too deeply"):
        load_config(project, env={})
    write(project / "config" / "experiment.yaml", f"OPTIMIZER: {'x' * 100_000}\n")
    with pytest.raises(ConfigError, match=r"OPTIMIZER='x{499}\.\.\. \(99,502 more characters\): expected") as refused:
        load_config(project, env={})
    assert len(str(refused.value)) < 1000
    write(project / "config" / "experiment.yaml", "")
    write(project / "config" / "environments.yaml", f"local:\n  DOCKER_IMAGE: [{', '.join(['[1, 2, 3]'] * 5000)}]\n")
    with pytest.raises(ConfigError, match=r"local: DOCKER_IMAGE=\[\[1, 2, 3\], .*\.\.\.\]: expected") as refused:
        load_config(project, env={})
    assert len(str(refused.value)) < 1000
