"""The run store, as a shared folder and as s3:// against a real S3-compatible server (moto's standalone server):
publishing (manifest last, once), mirroring (only complete runs, only what changed), and the DAG steps on a worker
that shares nothing with the GPU hosts but the store."""

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, S3_CREDENTIALS as CREDENTIALS, run_ect
from ect import pipeline
from ect.config import load_config
from ect.errors import ConfigError, StoreError
from ect.raw.layout import MANIFEST_FILE, PUBLISH_FILE, RunKey
from ect.runs.publish import publish_run
from ect.store import RunStore
from ect.validation import Limits, validate_run
from raw_runs import write_valid_run

KEY = RunKey("local", "vgg16", "nightly-rep00")


@pytest.fixture(params=["folder", "s3"])
def store_url(request, tmp_path):
    return str(tmp_path / "shared" / "store") if request.param == "folder" else request.getfixturevalue("s3_url")


def test_publishing_puts_the_manifest_last_and_a_run_only_once(store_url, tmp_path):
    folder = write_valid_run(KEY.folder(tmp_path / "scratch"))
    store = RunStore(store_url)
    written = []
    put = store.put
    store.put = lambda local, relative: (written.append(Path(relative).name), put(local, relative))
    assert store.publish(folder, KEY) is True
    assert written[-1] == MANIFEST_FILE and sorted(written) == sorted(p.name for p in folder.iterdir())
    written.clear()
    assert store.publish(folder, KEY) is False and written == []  # a retry finds it published
    # A run measured again (a new attempt) is published again.
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "attempt": 2}))
    assert store.publish(folder, KEY) is True and written[-1] == MANIFEST_FILE


def test_the_mirror_holds_complete_runs_only_and_fetches_only_what_changed(store_url, tmp_path):
    store = RunStore(store_url)
    complete = write_valid_run(KEY.folder(tmp_path / "scratch"))
    store.publish(complete, KEY)
    half = RunKey("cloud", "resnet50", "killed-rep00")  # data files arrived, the manifest never did
    partial = write_valid_run(half.folder(tmp_path / "scratch"))
    store.put(partial / "gpu.csv", f"raw/{half}/gpu.csv")

    mirror = tmp_path / "worker" / "raw"
    first = store.pull_runs(mirror)
    assert (first.runs, first.files) == (1, len(list(complete.iterdir())))
    assert sorted(p.name for p in KEY.folder(mirror).iterdir()) == sorted(p.name for p in complete.iterdir())
    assert all((KEY.folder(mirror) / p.name).read_bytes() == p.read_bytes() for p in complete.iterdir())
    assert not half.folder(mirror).exists()
    assert store.pull_runs(mirror).files == 0  # nothing changed


def test_a_verdict_recorded_on_one_worker_holds_on_every_other(store_url, tmp_path):
    store = RunStore(store_url)
    store.publish(write_valid_run(KEY.folder(tmp_path / "scratch")), KEY)
    one, other = tmp_path / "one" / "raw", tmp_path / "other" / "raw"
    store.pull_runs(one)
    verdict = validate_run(KEY.folder(one), Limits())
    assert verdict.status == "passed" and not verdict.reused
    store.push(KEY.folder(one) / "validation.json", f"raw/{KEY}/validation.json")
    store.pull_runs(other)
    again = validate_run(KEY.folder(other), Limits())
    assert again.status == "passed" and again.reused  # the mirrored files have the store's sizes and times


def test_a_store_that_cannot_be_written_is_named_with_its_reason(tmp_path, s3_endpoint, monkeypatch):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StoreError, match="a-file/store: not reachable or not writable"):
        RunStore(str(tmp_path / "a-file" / "store")).check()
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    with pytest.raises(StoreError) as error:
        RunStore("s3://no-such-bucket-ect/runs").check()
    assert "s3://no-such-bucket-ect/runs" in str(error.value) and CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in str(error.value)
    with pytest.raises(ConfigError, match="without user:password@"):
        load_config(REPO, overrides={"RUN_STORE": "s3://key:secret@bucket/runs"}, env={})


def test_a_run_the_store_did_not_take_stays_complete_and_is_published_later_exactly_once(tmp_path, s3_url):
    metrics = tmp_path / "host" / "metrics"
    folder = write_valid_run(KEY.folder(metrics / "scratch"))
    down = tmp_path / "a-file"
    down.write_text("the store's disk is gone")
    assert publish_run(RunStore(str(down / "store")), folder, KEY) is False
    record = json.loads((folder / PUBLISH_FILE).read_text())
    assert record["published"] is False and "not a directory" in record["error"].lower()
    assert json.loads((folder / MANIFEST_FILE).read_text())["status"] == "completed"

    env = {"ECT_HOME": str(REPO), "ECT_METRICS_DIR": str(metrics), "ECT_RUN_STORE": s3_url}
    first = run_ect("publish", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"{KEY} published to the run store" in first.stdout
    second = run_ect("publish", cwd=tmp_path, env=env)
    assert second.returncode == 0 and "nothing to publish" in second.stdout, second.stdout + second.stderr
    mirror = tmp_path / "reader" / "raw"
    assert RunStore(s3_url).pull_runs(mirror).runs == 1
    assert CREDENTIALS["AWS_SECRET_ACCESS_KEY"] not in first.stdout + first.stderr + second.stdout


def test_the_dag_steps_on_a_worker_that_shares_only_the_store(store_url, project, tmp_path, monkeypatch):
    """Two GPU hosts publish; a third worker validates, aggregates and reports from the store alone; a fourth,
    fresh one finds nothing to aggregate again and reads the same results."""
    for host, key in (("workstation", RunKey("local", "vgg16", "n1-rep00")), ("cloud-gpu", RunKey("cloud", "vgg16", "n1-rep00"))):
        folder = write_valid_run(key.folder(tmp_path / host / "scratch"), start_ms=1_795_000_000_000 + len(host))
        assert publish_run(RunStore(store_url), folder, key)

    def worker(name):
        return load_config(project, overrides={"METRICS_DIR": str(tmp_path / name / "metrics"),
                                               "OUTPUT_DIR": str(tmp_path / name / "out"), "RUN_STORE": store_url},
                           env={})

    cfg = worker("reporting")
    results = pipeline.validate_step(cfg)
    assert sorted(r.run for r in results) == ["cloud/vgg16/n1-rep00", "local/vgg16/n1-rep00"]
    assert all(r.status == "passed" for r in results)
    result = pipeline.aggregate_step(cfg)
    assert (result.runs, result.updated) == (2, 2)
    report = pipeline.report_step(cfg, None)
    assert Path(report["html"]).exists()

    store = RunStore(store_url)
    assert "report" in store.reports()
    assert "cloud" in store.read_text("reports/report/report.html") and "local" in store.read_text("reports/report/report.html")
    processed = pd.read_parquet(tmp_path / "reporting" / "metrics" / "processed" / "runs.parquet")
    assert sorted(processed["environment"]) == ["cloud", "local"]

    fresh = worker("fresh")
    again = pipeline.aggregate_step(fresh)
    assert (again.runs, again.updated, again.changed) == (2, 0, False)  # the store's verdicts and aggregation hold
    regression = pipeline.regression_step(fresh, "local")
    assert regression["latest_campaign"] == "n1"
    assert json.loads(store.read_text("reports/local/regression.json"))["environment"] == "local"


def test_an_s3_store_without_credentials_is_named_before_any_training(s3_endpoint, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    with pytest.raises(StoreError, match="s3://ect-anything/runs: not reachable or not writable: .*credentials"):
        RunStore("s3://ect-anything/runs").check()
