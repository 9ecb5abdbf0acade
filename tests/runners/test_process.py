"""The process runner's task log: ect's lines at their level, third-party start-up output kept out of it."""

import logging

import pytest

from conftest import REPO
from ect.errors import RunnerError
from ect.runners.process import ChildOutput, run_ect

# What a training run printed on this machine before its lines had levels (TensorFlow 2.21 on a CPU).
STARTUP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796170490.723042   27471 port.cc:153] oneDNN custom operations are on. You may see slightly",
    "E0000 00:00:1796170498.123945   27471 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error",
    "WARNING:tensorflow:From /venv/lib/python3.11/site-packages/tensorflow/python/ops/nn_ops.py:5261: "
    "tensor_shape_from_node_def_name is deprecated and will be removed in a future version.",
    "Instructions for updating:",
    "This API was designed for TensorFlow v1. See https://www.tensorflow.org/guide/migrate for instructions.",
    "/venv/lib/python3.11/site-packages/keras/src/trainers/data_adapters.py:121: UserWarning: Your input ran out",
    "  warnings.warn(",
]


def test_ects_lines_keep_their_level_and_startup_noise_goes_to_a_file(tmp_path, caplog):
    noise = tmp_path / "logs" / "local" / "run-rep00.log"
    output = ChildOutput(noise)
    with caplog.at_level(logging.DEBUG, logger="ect.runners.process"):
        for line in ["[ect INFO] dataset data/demo-dataset: 140 training images", *STARTUP[:6],
                     "[ect WARNING] the GPU is not measured: NVML unavailable", *STARTUP[6:],
                     "[ect INFO] measured 4.3 s of training", "a line ect printed"]:
            output.line(line)
    output.close()
    logged = [(r.levelname, r.message) for r in caplog.records]
    assert ("WARNING", "the GPU is not measured: NVML unavailable") in logged
    assert ("INFO", "measured 4.3 s of training") in logged and ("INFO", "a line ect printed") in logged
    assert not any(line in message for line in STARTUP for _, message in logged)
    assert noise.read_text().splitlines() == STARTUP
    assert sum("third-party start-up output" in message for _, message in logged) == 1  # says where, once


def test_a_real_child_warning_reaches_the_task_log_as_a_warning(tmp_path, caplog, monkeypatch):
    src = tmp_path / "src" / "local" / "vgg16"
    src.mkdir(parents=True)
    (src / "gpu-power-20230308T212956.csv").write_text("timestamp, power.draw [W]\n2023/03/08 21:29:56.373, 100 W\n")
    (src / "gpu-power-oops.csv").write_text("timestamp, power.draw [W]\n")  # no stamp in the name: a warning
    monkeypatch.setenv("ECT_HOME", str(REPO))
    with caplog.at_level(logging.INFO, logger="ect.runners.process"):
        run_ect(["import-legacy", str(tmp_path / "src"), str(tmp_path / "raw"), "--trim-samples", "0"])
    warnings = [r.message for r in caplog.records if r.levelno == logging.WARNING]
    assert any("gpu-power-oops.csv: no YYYYmmddTHHMMSS stamp in the name" in w for w in warnings), caplog.text
    assert not any(r.message.startswith("[ect ") for r in caplog.records)


def test_a_failed_child_raises_with_its_last_lines(tmp_path, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(REPO))
    with pytest.raises(RunnerError, match=r"exit code 2:\n.*no such folder"):
        run_ect(["import-legacy", str(tmp_path / "missing"), str(tmp_path / "raw")])


def test_a_containers_output_goes_through_the_same_classification(tmp_path, caplog):
    """The Docker provider logs each container line with log.info (fetch_logs): the docker runner's logger routes
    those lines through ChildOutput as the process runner does."""
    from airflow.providers.docker.operators.docker import fetch_logs

    from ect.runners.docker import _ContainerLines

    noise = tmp_path / "noise.log"
    output = ChildOutput(noise)
    chunks = [b"[ect INFO] dataset: 280 training images\nWARNING: All log messages before absl::InitializeLog",
              b"() is called are written to STDERR\n[ect WARNING] the GPU is not measured\n"]
    with caplog.at_level(logging.INFO, logger="ect.runners.process"):
        lines = fetch_logs(iter(chunks), _ContainerLines(logging.getLogger("airflow.task"), output))
    output.close()
    assert len(lines) == 3 and noise.read_text().startswith("WARNING: All log messages before absl::InitializeLog")
    assert [(r.levelname, r.message) for r in caplog.records if not r.message.startswith("third-party")] == [
        ("INFO", "dataset: 280 training images"), ("WARNING", "the GPU is not measured")]
