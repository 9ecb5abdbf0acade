"""Keys of the run store are data, not paths: hostile keys in a folder store and in an S3 store (moto's server) go
through the real pull and report mirror paths and nothing is written outside their destinations; a folder store's
links are not followed; publishing never copies a link's target; a killed writer's temporary in a folder store is
removed by the next write; with RUN_STORE set, the store's runs alone are validated and aggregated."""

import json
import logging
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from itertools import count
from pathlib import Path
from unittest import mock
from urllib.parse import urlparse

import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from conftest import REPO, run_ect
from ect import pipeline
from ect.config import load_config
from ect.errors import StoreError, quoted
from ect.raw.atomic import temporary_name
from ect.raw.layout import KEY_QUOTE_LIMIT, MetricsDir, RunKey, is_temporary_key, store_key
from ect.runs.publish import publish_all
from ect.store import RunStore
from raw_runs import write_valid_run

KEY = RunKey("local", "vgg16", "nightly-rep00")
REPORT = "local"  # the report mirrored: reports/local/ into OUTPUT_DIR/local
VALID = {  # what the store holds beside the published run KEY
    "processed/runs.parquet": b"rows of the store's runs",
    "interim/index.json": b"{}",
    f"reports/{REPORT}/report.html": b"<html>the report</html>",
    f"reports/{REPORT}/figures/energy_boxplot.png": b"a figure",
}
SECRET = "the host's secret, never to be copied"
# The areas a worker lists: a hostile key below one of them is met, logged and skipped.
LISTED = ("raw/", "processed/", "interim/", "reports/")


# --- a store, hostile keys in it, a worker mirroring it --------------------------------------------------------

def s3_client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])


def write_key(store: RunStore, url: str, key: str, data: bytes, injected: dict) -> None:
    """Puts `data` under `key` as it is, bypassing ect's checks: an S3 object of any name; in a folder, a file when the
    file system can hold that name, else the key is injected into the store's listing (a store that lists it)."""
    if not store.local:
        parsed = urlparse(url)
        s3_client().put_object(Bucket=parsed.netloc, Key=f"{parsed.path.strip('/')}/{key}", Body=data)
        return
    parts = key.split("/")
    if all(part not in ("", ".", "..") and "\x00" not in part for part in parts):
        path = Path(store.root, *parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        except OSError:  # a name too long, or a file where a folder is
            pass
    injected[key] = {"type": "file", "size": len(data), "mtime": 1_795_000_000.0}


@contextmanager
def listing_with(injected: dict):
    """The folder store's listing, with the injected keys (as a store that can name them would list them)."""
    find = RunStore._find

    def listed(self, relative):
        return {**find(self, relative), **{k: v for k, v in injected.items() if k.startswith(relative + "/")}}

    with mock.patch.object(RunStore, "_find", listed):
        yield


@contextmanager
def errors_logged():
    """The ERROR records ect logs inside the block."""
    records = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger("ect")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def files_below(root: Path) -> set[Path]:
    return {Path(folder, name) for folder, folders, names in os.walk(root) for name in names + folders}


def files_outside(root: Path, *folders: Path) -> set[Path]:
    """Files and folders below root, but for `folders` and what they hold."""
    return {p for p in files_below(root) if not any(p == f or f in p.parents for f in folders)}


def fill_store(store: RunStore, scratch: Path) -> None:
    assert store.publish(write_valid_run(KEY.folder(scratch)), KEY)
    for key, data in VALID.items():
        (scratch / "file").write_bytes(data)
        store.put(scratch / "file", key)


def mirror(store: RunStore, worker: Path) -> None:
    """The pulls of the DAG steps: the runs (validate, aggregate), the results and a report (report); and the
    report page's list of reports."""
    metrics = MetricsDir(worker / "metrics")
    pipeline.pull_runs(store, metrics.raw)
    pipeline.pull_report(store, metrics, REPORT, worker / "out" / REPORT)
    assert list(store.reports()) == [REPORT]


def store_keys_of(worker: Path) -> list[str]:
    """The store key each file a worker mirrored stands for."""
    places = {worker / "metrics" / "raw": "raw", worker / "metrics" / "processed": "processed",
              worker / "metrics" / "interim": "interim", worker / "out" / REPORT: f"reports/{REPORT}"}
    keys = []
    for path in sorted(files_below(worker)):
        if path.is_file() and not path.name.startswith("."):
            base = next(place for place in places if place in path.parents)
            keys.append(f"{places[base]}/{path.relative_to(base).as_posix()}")
    return keys


def check_mirror(worker: Path, store_root: Path, outside: set[Path], area: Path, errors: list, key: str | None,
                 logged_key: str | None = None) -> None:
    """Nothing outside the store and the worker changed; the worker holds layout files only, none of them a link,
    the valid ones with their contents; the hostile key's error names it."""
    assert files_outside(area, store_root, worker) == outside
    assert not any(p.is_symlink() for p in files_below(worker))
    assert all(store_key(k) is not None for k in store_keys_of(worker)), store_keys_of(worker)
    assert KEY.folder(worker / "metrics" / "raw").joinpath("manifest.json").is_file()
    assert (worker / "metrics" / "processed" / "runs.parquet").read_bytes() == VALID["processed/runs.parquet"]
    assert (worker / "out" / REPORT / "figures" / "energy_boxplot.png").read_bytes() == b"a figure"
    assert SECRET not in "".join(p.read_text(errors="replace") for p in files_below(worker) if p.is_file())
    if logged_key is not None:
        messages = [r.getMessage() for r in errors]
        named = quoted(logged_key, KEY_QUOTE_LIMIT)
        assert any(named in m and "skipped" in m for m in messages), (logged_key, messages)


# --- the table ---------------------------------------------------------------------------------------------

UP = "../../.."  # from a worker's METRICS_DIR/processed or OUTPUT_DIR/<report> to the test's folder
HOSTILE = {
    "dot-dot in processed": "processed/{up}/outside/x.txt",
    "dot-dot in a report": f"reports/{REPORT}/{{up}}/outside/x.txt",
    "dot-dot as report name": "reports/../outside/report.html",
    "dot-dot in raw": "raw/{up}/outside/vgg16/manifest.json",
    "dot-dot as run id": "raw/local/vgg16/../manifest.json",
    "deep dot-dot to an absolute place": "processed/" + "../" * 40 + "{outside}/deep.txt",
    "dot as a part": "processed/./runs.csv",
    "absolute path in processed": "processed/{outside}/x.txt",  # processed//tmp/...
    "absolute path in a report": f"reports/{REPORT}/{{outside}}/report.html",
    "absolute path in raw": "raw/{outside}/manifest.json",
    "backslashes": "processed/..\\..\\..\\outside\\x.txt",
    "backslash in a run id": "raw/local/vgg16/..\\..\\outside/manifest.json",
    "percent-encoded separators": "processed/%2e%2e%2F%2e%2e%2F%2e%2e%2Foutside%2Fx.txt",
    "percent-encoded dots as report name": "reports/%2e%2e/report.html",
    "division slash U+2215": "processed/..\u2215..\u2215..\u2215outside\u2215x.txt",
    "fullwidth solidus and full stops": "processed/\uff0e\uff0e\uff0f\uff0e\uff0e\uff0foutside\uff0fruns.csv",
    "NUL": "processed/runs.csv\x00/../../x.txt",
    "NUL at the end": "processed/runs.csv\x00",
    "very long name": "processed/" + "a" * 300 + ".parquet",
    "very long run id": "raw/local/vgg16/" + "r" * 300 + "/manifest.json",
    "bad environment name": "raw/bad env/vgg16/other-rep00/manifest.json",
    "hidden environment name": "raw/.local/vgg16/other-rep00/manifest.json",
    "bad architecture name": "raw/local/vgg16!/other-rep00/manifest.json",
    "bad run id": "raw/local/vgg16/-other-rep00/manifest.json",
    "unknown file in a run folder": f"raw/{KEY}/secrets.txt",
    "a run folder one level too deep": f"raw/{KEY}/previous-attempts/manifest.json",
    "unknown processed file": "processed/evil.sh",
    "unknown sample part": "interim/samples.parquet/evil.parquet",
    "unknown report file": f"reports/{REPORT}/evil.html",
    "bad figure name": f"reports/{REPORT}/figures/evil.svg",
}


@pytest.fixture(params=["folder", "s3"])
def store_url(request, tmp_path):
    return str(tmp_path / "shared" / "store") if request.param == "folder" else request.getfixturevalue("s3_url")


@pytest.mark.parametrize("template", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_key_is_skipped_with_an_error_and_nothing_lands_outside(template, store_url, tmp_path):
    sentinel = tmp_path / "outside"
    sentinel.mkdir()
    key = template.format(up=UP, outside=str(sentinel))
    assert store_key(key) is None
    store = RunStore(store_url)
    fill_store(store, tmp_path / "scratch")
    injected = {}
    write_key(store, store_url, key, b"written by an attacker", injected)
    before = files_outside(tmp_path, tmp_path / "shared")

    worker = tmp_path / "worker"
    with listing_with(injected), errors_logged() as errors:
        mirror(store, worker)
        mirror(store, worker)  # and again: still nothing, still named
    check_mirror(worker, tmp_path / "shared", before, tmp_path, errors, key, logged_key=key)
    assert list(sentinel.iterdir()) == []


def test_links_in_a_folder_store_are_not_followed(tmp_path):
    """A link to a folder or a file outside the store, in each area, and a FIFO (which would hang a reader)."""
    secrets = tmp_path / "secrets"
    (secrets / "figures").mkdir(parents=True)
    (secrets / "figures" / "leak.png").write_text(SECRET)
    (secrets / "secret.txt").write_text(SECRET)
    outside_run = write_valid_run(secrets / "run")
    (outside_run / "gpu.csv").write_text(SECRET)
    store = RunStore(str(tmp_path / "shared" / "store"))
    fill_store(store, tmp_path / "scratch")
    root = Path(store.root)
    links = {
        f"reports/{REPORT}/{KEY.run_id}/figures": secrets / "figures",  # a DAG run's copy of the report
        "processed/runs.csv": secrets / "secret.txt",
        "raw/local/vgg16/linked-rep00": outside_run,
        f"raw/{KEY}/cpu.csv": secrets / "secret.txt",  # in place of a run file (write_valid_run's cpu.csv removed)
        "interim/samples.parquet": secrets / "figures",
    }
    (root / "raw" / KEY.name / "cpu.csv").unlink()
    for key, target in links.items():
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).symlink_to(target)
    os.mkfifo(root / "processed" / "runs.csv.fifo")
    os.mkfifo(root / "interim" / "index.json.fifo")
    (root / "interim" / "index.json").unlink()
    os.mkfifo(root / "interim" / "index.json")

    worker = tmp_path / "worker"
    with errors_logged() as errors:
        mirror(store, worker)
    messages = "\n".join(r.getMessage() for r in errors)
    for key in links:
        assert f"run store key {quoted(key, KEY_QUOTE_LIMIT)} is a symbolic link: not followed" in messages
    assert f"{quoted('interim/index.json', KEY_QUOTE_LIMIT)} is not a regular file" in messages
    assert not (worker / "metrics" / "processed" / "runs.csv").exists()
    assert not RunKey("local", "vgg16", "linked-rep00").folder(worker / "metrics" / "raw").exists()
    assert not (KEY.folder(worker / "metrics" / "raw") / "cpu.csv").exists()
    assert SECRET not in "".join(p.read_text(errors="replace") for p in files_below(worker) if p.is_file())
    assert KEY.folder(worker / "metrics" / "raw").joinpath("manifest.json").is_file()  # the run's other files came

    with pytest.raises(StoreError, match="symbolic link"):  # nor is one written through, or read as a report
        store.put(tmp_path / "scratch" / "file", f"reports/{REPORT}/{KEY.run_id}/figures/x.png")
    assert not (secrets / "figures" / "x.png").exists()
    with pytest.raises(StoreError, match="symbolic link"):
        store.read_text("processed/runs.csv")


def test_the_store_is_listed_through_no_link_above_an_area(tmp_path):
    """reports/<name> itself a link: nothing below it is read."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "report.html").write_text(SECRET)
    store = RunStore(str(tmp_path / "store"))
    (Path(store.root) / "reports").mkdir(parents=True)
    (Path(store.root) / "reports" / REPORT).symlink_to(secrets)
    with errors_logged() as errors:
        assert store.reports() == {}
        store.pull_tree(f"reports/{REPORT}", tmp_path / "out")
    assert not (tmp_path / "out" / "report.html").exists()
    assert any("symbolic link" in r.getMessage() for r in errors)


def test_a_link_inside_the_destination_is_not_written_through(store_url, tmp_path):
    store = RunStore(store_url)
    fill_store(store, tmp_path / "scratch")
    raw = tmp_path / "worker" / "metrics" / "raw"
    raw.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (raw / KEY.environment).symlink_to(elsewhere)  # METRICS_DIR/raw/local -> somewhere else
    with errors_logged() as errors:
        pulled = store.pull_runs(raw)
    assert pulled.files == 0 and list(elsewhere.iterdir()) == []
    assert any("outside" in r.getMessage() for r in errors)


def test_ect_writes_layout_keys_only(store_url, tmp_path):
    store = RunStore(store_url)
    (tmp_path / "file").write_text("x")
    for key in ("processed/../x", "processed/evil.sh", "raw/local/vgg16/r-rep00/x.txt", "/abs/processed/runs.csv",
                "reports/local/../../x/report.html", "processed/runs.csv\x00"):
        with pytest.raises(StoreError, match="not a key of the run store's layout"):
            store.put(tmp_path / "file", key)
    with pytest.raises(StoreError, match="not a key of the run store's layout"):
        store.read_text("reports/../processed/runs.csv")
    with pytest.raises(StoreError, match="not a key of the run store's layout"):
        store.publish(write_valid_run(RunKey("local", "vgg16", "r-rep00").folder(tmp_path / "bad env")),
                      RunKey("bad env", "vgg16", "r-rep00"))


# --- hostile keys at random -----------------------------------------------------------------------------------

AREAS = ["raw", "processed", "interim", "interim/samples.parquet", "reports", f"reports/{REPORT}", "validation",
         "raw/local/vgg16", f"raw/{KEY}", "processed/..", ""]
ATOMS = ["..", ".", "", "...", "%2F", "%2f", "%2e%2e", "%2E%2E%2F", "\\", "..\\..", "\u2215", "\u2044", "\uff0f",
         "\uff0e\uff0e", "\x00", "a" * 300, "~", " ", "C:", "local", "vgg16", "nightly-rep00", "manifest.json",
         "gpu.csv", "runs.csv", "report.html", "figures", "x.png", "{outside}", "outside", "é", ".x.tmp-h-1"]
HOSTILE_CHARACTERS = "./\\%2eEfF\x00\u2215\uff0f\uff0e ab-_~:\t"


def hostile_keys():
    part = st.one_of(st.sampled_from(ATOMS), st.text(alphabet=HOSTILE_CHARACTERS, max_size=12))
    return st.builds(lambda area, parts: "/".join([area, *parts]) if area else "/".join(parts),
                     st.sampled_from(AREAS), st.lists(part, min_size=1, max_size=6))


def check_random_key(url: str, root: Path, key_template: str, make_store=RunStore) -> None:
    """One example: a store with the valid files and the hostile key, mirrored by a worker; `root` the example's."""
    sentinel = root / "outside"
    sentinel.mkdir(parents=True)
    key = key_template.replace("{outside}", str(sentinel))
    store = make_store(url)
    fill_store(store, root / "scratch")
    injected = {}
    write_key(store, url, key, b"written by an attacker", injected)
    store_root = root / "shared"
    before = files_outside(root, store_root)
    worker = root / "worker"
    with listing_with(injected), errors_logged() as errors:
        mirror(store, worker)
    met = (any(key.startswith(area) for area in LISTED) and store_key(key) is None and not is_temporary_key(key)
           and (store.local or not key.endswith("/")))  # an S3 key ending in "/" is a folder's marker, no file
    check_mirror(worker, store_root, before, root, errors, key, logged_key=key if met else None)
    assert list(sentinel.iterdir()) == []


EXAMPLES = count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=hostile_keys())
def test_random_hostile_keys_in_a_folder_store_never_land_outside(key, tmp_path):
    assume(key not in VALID and not key.startswith(f"raw/{KEY}/"))  # not the valid files themselves
    root = tmp_path / f"example-{next(EXAMPLES)}"
    check_random_key(str(root / "shared" / "store"), root, key)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=hostile_keys())
def test_random_hostile_keys_in_an_s3_store_never_land_outside(key, s3_url, tmp_path):
    assume(key not in VALID and not key.startswith(f"raw/{KEY}/"))
    number = next(EXAMPLES)
    check_random_key(f"{s3_url}-{number}", tmp_path / f"example-{number}", key)


# --- writing: links in scratch, a killed writer's temporary --------------------------------------------------

def test_publish_refuses_a_linked_file_or_folder_and_publishes_the_other_runs(store_url, tmp_path):
    scratch = tmp_path / "metrics" / "scratch"
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    linked_file = RunKey("local", "vgg16", "linked-file-rep00")
    folder = write_valid_run(linked_file.folder(scratch))
    (folder / "cpu.csv").unlink()
    (folder / "cpu.csv").symlink_to(secret)
    linked_folder = RunKey("local", "vgg16", "linked-folder-rep00")
    elsewhere = write_valid_run(tmp_path / "elsewhere" / "run")
    linked_folder.folder(scratch).symlink_to(elsewhere)
    fine = RunKey("local", "vgg16", "fine-rep00")
    write_valid_run(fine.folder(scratch))

    store = RunStore(store_url)
    with errors_logged() as errors:
        results = dict(publish_all(store, scratch))
    assert results == {fine.name: True, linked_file.name: False, linked_folder.name: False}
    messages = "\n".join(r.getMessage() for r in errors)
    assert f"{folder / 'cpu.csv'} is a symbolic link: not published" in messages
    assert f"{linked_folder.folder(scratch)} is a symbolic link: not published" in messages
    assert json.loads((folder / "publish.json").read_text())["published"] is False
    assert not (elsewhere / "publish.json").exists()  # nothing written through the linked folder

    mirror_raw = tmp_path / "reader" / "raw"
    assert store.pull_runs(mirror_raw).keys == {fine}
    assert SECRET not in "".join(p.read_text() for p in files_below(mirror_raw) if p.is_file())
    again = run_ect("publish", cwd=tmp_path, env={"ECT_HOME": str(REPO), "ECT_METRICS_DIR": str(tmp_path / "metrics"),
                                                  "ECT_RUN_STORE": store_url})
    assert again.returncode == 1, again.stdout + again.stderr
    assert f"{folder / 'cpu.csv'} is a symbolic link: not published" in again.stdout + again.stderr


def test_a_killed_writers_temporary_in_a_folder_store_is_removed_by_the_next_write(tmp_path):
    store = RunStore(str(tmp_path / "store"))
    remote = Path(store.root, "raw", *KEY.name.split("/"))
    remote.mkdir(parents=True)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\nfrom pathlib import Path\nfrom ect.raw.atomic import temporary_name\n"
        "Path(sys.argv[1], temporary_name('gpu.csv')).write_text('half a file')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"), str(remote)], timeout=120)
    assert killed.returncode == -signal.SIGKILL
    left = [p.name for p in remote.iterdir()]
    assert len(left) == 1 and left[0].startswith(".gpu.csv.tmp-")
    other_host = remote / f".cpu.csv.tmp-another-host-{os.getpid()}"  # another host's: it cannot tell, it stays
    other_host.write_text("another host's write")
    with errors_logged() as errors:
        assert store.pull_runs(tmp_path / "reader").runs == 0  # a temporary is no run and no error
    assert errors == []

    assert store.publish(write_valid_run(KEY.folder(tmp_path / "scratch")), KEY)
    assert sorted(p.name for p in remote.iterdir() if p.name.startswith(".")) == [other_host.name]
    assert not any(temporary_name("gpu.csv") == name for name in os.listdir(remote))


# --- a store is the truth -----------------------------------------------------------------------------------

def test_with_a_store_the_dataset_holds_the_stores_runs_alone(project, store_url, tmp_path):
    metrics, out = tmp_path / "metrics", tmp_path / "out"
    local = load_config(project, overrides={"METRICS_DIR": str(metrics), "OUTPUT_DIR": str(out)}, env={})
    earlier = [RunKey("local", "vgg16", f"before-store-rep{k:02d}") for k in range(5)]
    for number, key in enumerate(earlier):
        write_valid_run(key.folder(metrics / "raw"), start_ms=1_790_000_000_000 + number * 60_000)
    pipeline.validate_step(local)
    assert pipeline.aggregate_step(local).runs == 5

    store = RunStore(store_url)
    published = [RunKey(env, "vgg16", "in-store-rep00") for env in ("local", "cloud")]
    for number, key in enumerate(published):
        assert store.publish(write_valid_run(key.folder(tmp_path / "gpu-host"), start_ms=1_795_000_000_000 + number),
                             key)

    env = {"ECT_HOME": str(project), "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(out),
           "ECT_RUN_STORE": store_url}
    validated = run_ect("validate", cwd=tmp_path, env=env)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    warning = (f"5 run(s) in {metrics / 'raw'} are not in the run store RunStore({store_url!r}) and are left out of "
               f"validation and aggregation: {', '.join(map(str, sorted(earlier)))}; `ect publish {metrics / 'raw'}` "
               "publishes them to the store")
    assert warning in validated.stdout + validated.stderr
    summary = json.loads((metrics / "validation" / "summary.json").read_text())
    assert "before-store-rep00" not in json.dumps(summary) and "in-store-rep00" in json.dumps(summary)

    aggregated = run_ect("aggregate", cwd=tmp_path, env=env)
    assert aggregated.returncode == 0, aggregated.stdout + aggregated.stderr
    assert warning in aggregated.stdout + aggregated.stderr
    processed = pd.read_parquet(metrics / "processed" / "runs.parquet")
    runs = sorted(processed["environment"] + "/" + processed["run_id"])
    assert runs == ["cloud/in-store-rep00", "local/in-store-rep00"]  # 2 rows, not 5 + 2
    assert "in-store-rep00" in store.read_text("processed/runs.csv")
    assert "before-store" not in store.read_text("processed/runs.csv")
