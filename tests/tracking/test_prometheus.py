"""Results pushed to a real Prometheus Pushgateway (Debian's prometheus-pushgateway; .ci/run installs it), started on
a free port for the tests of this module; the tests that need it are marked pushgateway (left out by default)."""

import logging
import shutil
import subprocess
import urllib.request

import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import free_ports, stop, wait_for_http
from ect import pipeline
from ect.config import load_config
from ect.errors import ConfigError
from ect.raw.layout import RunKey
from ect.tracking.prometheus import push_latest_campaigns, push_verdicts
from raw_runs import write_valid_run

BINARY = "prometheus-pushgateway"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    binary = shutil.which(BINARY)
    assert binary, f"{BINARY} is not installed (Debian's prometheus-pushgateway; .ci/run installs it)"
    port = free_ports(1)[0]
    log_path = tmp_path_factory.mktemp("pushgateway") / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([binary, f"--web.listen-address=127.0.0.1:{port}", "--web.enable-admin-api"],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/-/ready", server, log_path, timeout=60)
        yield url
    finally:
        stop(server)


@pytest.fixture
def clean(gateway):
    """The gateway without any group pushed by an earlier test."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"{gateway}/api/v1/admin/wipe", method="PUT")
    with opener.open(request, timeout=10):
        pass
    return gateway


def samples(gateway: str, name: str) -> dict[tuple, float]:
    """{labels without job and instance, sorted: value} of the metric on the gateway's /metrics."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{gateway}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("job", "instance"))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples if s.name == name}


def row(environment, architecture, campaign, repetition, energy_J, start="2026-11-30T02:00:00Z", power=210.5):
    return {"environment": environment, "architecture": architecture, "campaign_id": campaign,
            "run_id": f"{campaign}-rep{repetition:02d}", "repetition": repetition, "start": pd.Timestamp(start),
            "total_energy_J": energy_J, "energy_kWh": energy_J / 3.6e6, "emissions_gCO2e": energy_J / 3.6e6 * 232,
            "duration_s": 61.25, "gpu_power_mean_W": power}


def labels(environment, architecture, campaign, run=None, backend="tensorflow", **more):
    found = {"environment": environment, "architecture": architecture, "backend": backend, "campaign": campaign,
             **more}
    if run:
        found["run"] = run
    return tuple(sorted(found.items()))


@pytest.mark.pushgateway
def test_each_run_of_the_latest_campaign_is_pushed_with_its_labels_and_environments_keep_theirs(clean):
    local = pd.DataFrame([row("local", "vgg16", "n1", 0, 12345.678), row("local", "vgg16", "n1", 1, 23456.5),
                          row("local", "resnet50", "n1", 0, 34567.25, power=float("nan"))])
    assert push_latest_campaigns(clean, local) == ["local"]
    energy = samples(clean, "ect_run_energy_joules")
    assert energy == {labels("local", "vgg16", "n1", "n1-rep00"): 12345.678,
                      labels("local", "vgg16", "n1", "n1-rep01"): 23456.5,
                      labels("local", "resnet50", "n1", "n1-rep00"): 34567.25}
    assert samples(clean, "ect_run_duration_seconds")[labels("local", "vgg16", "n1", "n1-rep00")] == 61.25
    assert samples(clean, "ect_run_emissions_grams_co2e")[labels("local", "vgg16", "n1", "n1-rep00")] == \
        pytest.approx(12345.678 / 3.6e6 * 232, rel=1e-12)
    power = samples(clean, "ect_run_gpu_power_watts")
    assert power[labels("local", "vgg16", "n1", "n1-rep01")] == 210.5
    assert labels("local", "resnet50", "n1", "n1-rep00") not in power  # no value: no series, never NaN

    # Another environment's push leaves local's group alone; a later campaign of local replaces local's.
    cloud = pd.DataFrame([row("cloud", "vgg16", "n1", 0, 999.5)])
    assert push_latest_campaigns(clean, cloud) == ["cloud"]
    later = pd.concat([local, pd.DataFrame([row("local", "vgg16", "n2", 0, 11111.0, start="2026-12-01T02:00:00Z")])])
    push_latest_campaigns(clean, later)
    assert samples(clean, "ect_run_energy_joules") == {labels("cloud", "vgg16", "n1", "n1-rep00"): 999.5,
                                                       labels("local", "vgg16", "n2", "n2-rep00"): 11111.0}


@pytest.mark.pushgateway
def test_regression_verdicts_are_pushed_one_per_architecture(clean):
    def check(status, change):
        return {"status": status, "regression": status == "regression", "relative_change": change}

    result = {"environment": "local", "latest_campaign": "n7", "architectures": {
        "vgg16": check("regression", 0.125), "resnet50": check("no regression", -0.03),
        "tiny_cnn": check("no baseline", None)}, "regressions": ["vgg16"], "inconclusive": []}
    assert push_verdicts(clean, result) is True
    verdicts = samples(clean, "ect_regression_verdict")
    assert len(verdicts) == 3 * 4
    assert {key: value for key, value in verdicts.items() if value == 1} == {
        labels("local", "vgg16", "n7", verdict="regression"): 1,
        labels("local", "resnet50", "n7", verdict="no regression"): 1,
        labels("local", "tiny_cnn", "n7", verdict="no baseline"): 1}
    assert verdicts[labels("local", "vgg16", "n7", verdict="inconclusive")] == 0
    assert samples(clean, "ect_regression_change_ratio") == {labels("local", "vgg16", "n7"): 1.125,
                                                             labels("local", "resnet50", "n7"): 0.97}
    assert push_verdicts(clean, {"environment": "cloud", "latest_campaign": None, "architectures": {}}) is False


@pytest.mark.pushgateway
def test_runs_and_verdicts_of_two_backends_are_series_of_their_own(clean):
    """One campaign trained on TensorFlow and JAX: a series per run with its backend (a processed dataset without the
    column: TensorFlow), and a verdict per architecture and backend, whatever the result's keys."""
    both = pd.DataFrame([{**row("local", "vgg16", "n1", 0, 1000.0), "backend": "tensorflow"},
                         {**row("local", "vgg16", "n1", 0, 1500.0), "run_id": "n1-jax-rep00", "backend": "jax"}])
    push_latest_campaigns(clean, both)
    assert samples(clean, "ect_run_energy_joules") == {labels("local", "vgg16", "n1", "n1-rep00"): 1000.0,
                                                       labels("local", "vgg16", "n1", "n1-jax-rep00", "jax"): 1500.0}
    push_latest_campaigns(clean, both.drop(columns=["backend"]).iloc[:1])
    assert samples(clean, "ect_run_energy_joules") == {labels("local", "vgg16", "n1", "n1-rep00"): 1000.0}

    def check(backend, status, change):
        return {"architecture": "vgg16", "backend": backend, "status": status, "relative_change": change}

    push_verdicts(clean, {"environment": "local", "latest_campaign": "n1", "architectures": {
        "vgg16·jax": check("jax", "regression", 0.25),
        "vgg16·tensorflow": check("tensorflow", "no regression", 0.01)}})
    ones = {key for key, value in samples(clean, "ect_regression_verdict").items() if value == 1}
    assert ones == {labels("local", "vgg16", "n1", backend="jax", verdict="regression"),
                    labels("local", "vgg16", "n1", verdict="no regression")}
    assert samples(clean, "ect_regression_change_ratio") == {labels("local", "vgg16", "n1", backend="jax"): 1.25,
                                                             labels("local", "vgg16", "n1"): 1.01}


@pytest.mark.pushgateway
def test_a_gateway_that_is_down_or_answers_an_error_is_a_warning_and_never_an_error(clean, caplog):
    down, wrong = f"http://127.0.0.1:{free_ports(1)[0]}", f"{clean}/no-such-prefix"
    runs = pd.DataFrame([row("local", "vgg16", "n1", 0, 12345.678)])
    result = {"environment": "local", "latest_campaign": "n1",
              "architectures": {"vgg16": {"status": "no baseline", "relative_change": None}}}
    with caplog.at_level(logging.WARNING, logger="ect"):
        assert push_latest_campaigns(down, runs) == [] and push_verdicts(down, result) is False
        assert push_latest_campaigns(wrong, runs) == [] and push_verdicts(wrong, result) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 4, warnings
    assert all(down in w and "Connection refused" in w for w in warnings[:2]), warnings
    assert all(wrong in w and "404" in w for w in warnings[2:]), warnings
    assert samples(clean, "ect_run_energy_joules") == {}


def test_the_setting_wants_a_gateway_url(project):
    assert load_config(project, env={}).base.prometheus_pushgateway is None
    cfg = load_config(project, env={"ECT_PROMETHEUS_PUSHGATEWAY": "http://pushgateway:9091/"})
    assert cfg.base.prometheus_pushgateway == "http://pushgateway:9091"
    for wrong in ("pushgateway:9091", "http://user:secret@pushgateway:9091", "http://pushgateway:port"):
        with pytest.raises(ConfigError, match=r"PROMETHEUS_PUSHGATEWAY=.*expected the Pushgateway's URL such as "
                                              r"http://pushgateway:9091"):
            load_config(project, overrides={"PROMETHEUS_PUSHGATEWAY": wrong}, env={})


@pytest.mark.pushgateway
def test_after_a_demo_run_the_gateway_lists_its_energy_and_verdicts(clean, project, tmp_path):
    metrics = tmp_path / "metrics"
    for repetition in range(2):
        key = RunKey("local", "tiny_cnn", f"manual__demo-rep{repetition:02d}")
        write_valid_run(key.folder(metrics / "raw"), start_ms=1_795_000_000_000 + 60_000 * repetition)
    cfg = load_config(project, profile="demo", overrides={"METRICS_DIR": str(metrics), "OUTPUT_DIR": str(tmp_path / "out"),
                                                          "PROMETHEUS_PUSHGATEWAY": clean}, env={})
    assert pipeline.aggregate_step(cfg).runs == 2
    processed = pd.read_parquet(metrics / "processed" / "runs.parquet").set_index("run_id")
    assert samples(clean, "ect_run_energy_joules") == {
        labels("local", "tiny_cnn", "manual__demo", run): processed.loc[run, "total_energy_J"]
        for run in ("manual__demo-rep00", "manual__demo-rep01")}
    pipeline.regression_step(cfg, "local")
    verdicts = samples(clean, "ect_regression_verdict")
    assert verdicts[labels("local", "tiny_cnn", "manual__demo", verdict="no baseline")] == 1
