"""Symbolic links are never followed. A run file (gpu.csv, cpu.csv, history.csv, manifest.json, metrics.json) or a run,
architecture or environment folder that is a link is a named failure of its run (not_a_link): its target is never read,
quoted or written through, by `ect validate`, `ect aggregate`, the run store's mirror, `ect import-legacy` and
`ect mlflow-sync`; the valid runs of the same batch are validated and aggregated as without them.

Every file a link points to holds MARKER: it must appear in no file under METRICS_DIR and in no output."""

import json
import os
import shutil
import stat
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from conftest import REPO, log_lines, run_ect
from raw_runs import write_valid_run
from test_validation import edit_gpu, edit_manifest
from ect.aggregate.aggregate import aggregate
from ect.config import load_config
from ect.raw.layout import VALIDATION_FILE
from ect.validation import Limits

MARKER = "ect-secret-marker-4c1d9e"
PASSWD = f"root:x:0:0:root:/root:/bin/bash\n{MARKER}:x:1000:1000:{MARKER}:/home/{MARKER}:/bin/sh\n"
VALID = ("cloud/vgg16/good-rep01", "local/tiny_cnn/good-rep00")
HOSTILE = "local/mobilenet_v2"
KEY = ["environment", "architecture", "run_id"]


# --------------------------------------------------------------------------------------------------------------
# Outside METRICS_DIR: what the links point to


def secret_run(folder: Path) -> Path:
    """A valid run whose GPU name and host name are MARKER: followed, it would pass and reach the processed dataset."""
    write_valid_run(folder)
    edit_gpu(folder, lambda rows: [row.update(name=MARKER) for row in rows])
    edit_manifest(folder, lambda manifest: manifest["host"].update(hostname=MARKER))
    return folder


def make_outside(outside: Path) -> None:
    outside.mkdir(parents=True)
    (outside / "passwd").write_text(PASSWD)
    secret_run(outside / "run")
    (outside / "metrics.json").write_text(json.dumps({"val_accuracy": MARKER}) + "\n")
    (outside / "validation.json").write_text(json.dumps({"status": "passed", "note": MARKER}) + "\n")
    secret_run(outside / "arch" / "r0")
    secret_run(outside / "env" / "vgg16" / "r0")


def tree(folder: Path) -> dict:
    """Everything under folder, links not followed: {relative path: what it is, its bytes or target, its mtime}."""
    found = {}
    for path in sorted(Path(folder).rglob("*")):
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            found[path.relative_to(folder).as_posix()] = ("link", os.readlink(path))
        elif stat.S_ISREG(info.st_mode):
            found[path.relative_to(folder).as_posix()] = ("file", path.read_bytes(), info.st_mtime_ns)
        else:
            found[path.relative_to(folder).as_posix()] = (stat.S_IFMT(info.st_mode), info.st_mtime_ns)
    return found


def files_with_marker(folder: Path) -> list[str]:
    """The regular files under folder (links not followed) holding MARKER: in their bytes, or, for Parquet (whose
    pages may be compressed), in any value."""
    hits = []
    for directory, _, names in os.walk(folder):
        for name in names:
            path = Path(directory, name)
            if path.is_symlink() or not path.is_file():
                continue  # the links (and the FIFO) the test planted, not what ect wrote
            if MARKER.encode() in path.read_bytes():
                hits.append(str(path))
            elif name.endswith(".parquet") and pd.read_parquet(path).astype(str).apply(
                    lambda column: column.str.contains(MARKER, regex=False)).to_numpy().any():
                hits.append(str(path))
    return hits


# --------------------------------------------------------------------------------------------------------------
# The corpus: (case, name of the run in the summary, how to plant it, the failure's file, its details)


def link_file(name: str, target: str):
    """A valid run whose `name` is a link to outside/target."""
    def plant(folder: Path, outside: Path) -> None:
        write_valid_run(folder)
        (folder / name).unlink(missing_ok=True)
        (folder / name).symlink_to(outside / target)
    return plant


def link_folder(target: str):
    """A link to outside/target where a folder of the raw layout belongs."""
    def plant(path: Path, outside: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(outside / target, target_is_directory=True)
    return plant


def not_read(name: str) -> str:
    return f"{name} is a symbolic link: not read"


def not_followed(name: str) -> str:
    return f"{name} is a symbolic link: not followed (nothing read or written through it)"


CASES = [
    ("linked_gpu_csv", f"{HOSTILE}/link-gpu", link_file("gpu.csv", "run/gpu.csv"), "gpu.csv", not_read("gpu.csv")),
    ("linked_cpu_csv", f"{HOSTILE}/link-cpu", link_file("cpu.csv", "passwd"), "cpu.csv", not_read("cpu.csv")),
    ("linked_history_csv", f"{HOSTILE}/link-history", link_file("history.csv", "passwd"), "history.csv",
     not_read("history.csv")),
    ("linked_manifest", f"{HOSTILE}/link-manifest", link_file("manifest.json", "run/manifest.json"), "manifest.json",
     not_read("manifest.json")),
    ("linked_metrics_json", f"{HOSTILE}/link-metrics", link_file("metrics.json", "metrics.json"), "metrics.json",
     not_read("metrics.json")),
    ("link_to_a_passwd_like_secret", f"{HOSTILE}/link-passwd", link_file("gpu.csv", "passwd"), "gpu.csv",
     not_read("gpu.csv")),
    ("dangling_link", f"{HOSTILE}/link-dangling", link_file("gpu.csv", f"gone-{MARKER}.csv"), "gpu.csv",
     not_read("gpu.csv")),
    ("linked_run_folder", f"{HOSTILE}/link-run-folder", link_folder("run"), "(run folder)",
     not_followed(f"{HOSTILE}/link-run-folder")),
    ("linked_architecture_folder", "local/linked_arch", link_folder("arch"), "(architecture folder)",
     not_followed("local/linked_arch")),
    ("linked_environment_folder", "linked_env", link_folder("env"), "(environment folder)", not_followed("linked_env")),
]
IDS = [case[0] for case in CASES]
LINKED_VALIDATION = f"{HOSTILE}/link-validation-json"  # a valid run whose validation.json links outside: it passes
FIFO = f"{HOSTILE}/fifo-gpu"  # gpu.csv is a FIFO: never opened for a read that would wait for a writer


def test_the_corpus_covers_every_kind_of_link():
    assert len(CASES) >= 10 and len(set(IDS)) == len(IDS)
    assert {file for *_, file, _ in CASES} >= {"gpu.csv", "cpu.csv", "history.csv", "manifest.json", "metrics.json",
                                               "(run folder)", "(architecture folder)", "(environment folder)"}


def project_at(root: Path) -> Path:
    project = root / "project"
    shutil.copytree(REPO / "config", project / "config")
    return project


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """The valid and the hostile runs side by side, validated and aggregated by `ect validate` and `ect aggregate`;
    the valid runs alone (copies), aggregated apart."""
    root = tmp_path_factory.mktemp("links")
    project, metrics, outside = project_at(root), root / "metrics", root / "outside"
    raw = metrics / "raw"
    make_outside(outside)
    for run in VALID:
        write_valid_run(raw / run)
    for _, run, plant, *_ in CASES:
        plant(raw / run, outside)
    link_file(VALIDATION_FILE, "validation.json")(raw / LINKED_VALIDATION, outside)
    write_valid_run(raw / FIFO)
    (raw / FIFO / "gpu.csv").unlink()
    os.mkfifo(raw / FIFO / "gpu.csv")
    outside_before = tree(outside)

    env = {"ECT_HOME": str(project), "ECT_METRICS_DIR": str(metrics), "ECT_MODELS_DIR": str(root / "models")}
    validated = run_ect("validate", str(raw), cwd=root, env=env, timeout=900)
    aggregated = run_ect("aggregate", str(raw), cwd=root, env=env, timeout=900)
    clean = root / "clean"
    for run in VALID:
        shutil.copytree(raw / run, clean / "raw" / run)
    with log_lines():
        aggregate(clean / "raw", clean, load_config(project).environments, Limits())
    summary = json.loads((metrics / "validation" / "summary.json").read_text())
    return SimpleNamespace(root=root, raw=raw, metrics=metrics, outside=outside, outside_before=outside_before,
                           validated=validated, aggregated=aggregated, clean=clean,
                           verdicts={entry["run"]: entry for entry in summary["runs"]})


def output(result) -> str:
    return result.stdout + result.stderr


@pytest.mark.parametrize("case, run, plant, file, details", CASES, ids=IDS)
def test_each_link_is_quarantined_with_not_a_link(batch, case, run, plant, file, details):
    verdict = batch.verdicts[run]
    expected = [{"file": file, "check": "not_a_link", "column": None, "details": details}]
    assert verdict["status"] == "quarantined" and verdict["failures"] == expected, verdict
    assert run in output(batch.validated) and details in output(batch.validated)  # the terminal says it too
    path = batch.raw / run
    if file.startswith("("):  # a linked folder: its verdict is in the summary only, nothing was written through it
        assert path.is_symlink()
    else:
        assert (path / file).is_symlink()
        record = json.loads((path / VALIDATION_FILE).read_text())
        assert record["status"] == "quarantined" and record["failures"] == expected


def test_ect_validate_exits_1_and_ect_aggregate_skips_the_links_with_exit_0(batch):
    """Exit statuses (README): validate says 1 (runs quarantined); aggregate aggregates what passed and skips the
    quarantined runs, as any quarantined run (1 is for runs that passed validation and failed to aggregate)."""
    assert batch.validated.returncode == 1, output(batch.validated)
    assert batch.aggregated.returncode == 0, output(batch.aggregated)
    for _, run, *_ in CASES:
        assert f"skipped {run}: quarantined" in output(batch.aggregated)


def test_no_link_target_is_read_quoted_or_printed(batch):
    for result in (batch.validated, batch.aggregated):
        assert MARKER not in output(result)
    assert files_with_marker(batch.metrics) == []
    assert files_with_marker(batch.clean) == []


def test_nothing_is_written_outside(batch):
    assert tree(batch.outside) == batch.outside_before
    assert list(batch.outside.rglob(VALIDATION_FILE)) == [batch.outside / VALIDATION_FILE]  # the planted target only
    assert not (batch.outside / f"gone-{MARKER}.csv").exists()


def test_the_valid_runs_pass_and_are_aggregated_as_without_the_links(batch):
    for run in VALID:
        assert batch.verdicts[run]["status"] == "passed", batch.verdicts[run]
    runs = pd.read_parquet(batch.metrics / "processed" / "runs.parquet")
    names = set(runs["environment"] + "/" + runs["architecture"] + "/" + runs["run_id"])
    assert names == {*VALID, LINKED_VALIDATION}
    valid = runs[(runs["environment"] + "/" + runs["architecture"] + "/" + runs["run_id"]).isin(VALID)]
    alone = pd.read_parquet(batch.clean / "processed" / "runs.parquet")
    pd.testing.assert_frame_equal(valid.reset_index(drop=True), alone)
    samples = pd.read_parquet(batch.metrics / "interim" / "samples.parquet")
    samples = samples[(samples["environment"] + "/" + samples["architecture"] + "/" + samples["run_id"]).isin(VALID)]
    samples_alone = pd.read_parquet(batch.clean / "interim" / "samples.parquet")
    order = [*KEY, "timestamp", "gpu_index"]
    pd.testing.assert_frame_equal(samples.sort_values(order).reset_index(drop=True),
                                  samples_alone.sort_values(order).reset_index(drop=True))


def test_a_linked_validation_json_is_replaced_never_written_through(batch):
    assert batch.verdicts[LINKED_VALIDATION]["status"] == "passed"
    record = batch.raw / LINKED_VALIDATION / VALIDATION_FILE
    assert not record.is_symlink() and json.loads(record.read_text())["status"] == "passed"


def test_a_file_that_is_not_a_regular_file_is_not_read(batch):
    verdict = batch.verdicts[FIFO]
    assert verdict["status"] == "quarantined"
    assert verdict["failures"] == [{"file": "gpu.csv", "check": "file_readable", "column": None,
                                    "details": "cannot be read: gpu.csv is not a regular file: not read"}]


# --------------------------------------------------------------------------------------------------------------
# With a run store: links inside the store and inside its mirror (METRICS_DIR/raw)


def test_links_in_the_run_store_and_in_its_mirror_are_never_followed(tmp_path, monkeypatch, capsys):
    """The store (a folder) has a run whose gpu.csv links to a secret; the mirror has a link where a run of the store
    belongs (mirroring would write through it). Both runs are quarantined, the others validated and pushed."""
    from ect.cli import main

    project, metrics, outside, store = project_at(tmp_path), tmp_path / "metrics", tmp_path / "outside", \
        tmp_path / "store"
    make_outside(outside)
    (outside / "mirror-target").mkdir()
    for run in ("local/vgg16/good-rep00", "local/vgg16/mirrored-rep00"):
        write_valid_run(store / "raw" / run)
    link_file("gpu.csv", "passwd")(store / "raw" / "local" / "vgg16" / "stored-link-rep00", outside)
    link_folder("mirror-target")(metrics / "raw" / "local" / "vgg16" / "mirrored-rep00", outside)
    outside_before = tree(outside)
    for name, value in {"ECT_HOME": project, "ECT_METRICS_DIR": metrics, "ECT_RUN_STORE": store,
                        "ECT_MODELS_DIR": tmp_path / "models"}.items():
        monkeypatch.setenv(name, str(value))

    with log_lines() as lines:
        assert main(["validate"]) == 1
    printed = "\n".join(lines) + "".join(capsys.readouterr())
    assert MARKER not in printed
    summary = json.loads((metrics / "validation" / "summary.json").read_text())
    verdicts = {entry["run"]: entry for entry in summary["runs"]}
    assert verdicts["local/vgg16/good-rep00"]["status"] == "passed"
    mirrored = verdicts["local/vgg16/mirrored-rep00"]
    assert mirrored["status"] == "quarantined" and [f["check"] for f in mirrored["failures"]] == ["not_a_link"]
    assert verdicts["local/vgg16/stored-link-rep00"]["status"] == "quarantined"
    assert json.loads((store / "raw" / "local" / "vgg16" / "good-rep00" / VALIDATION_FILE).read_text())["status"] \
        == "passed"  # pushed to the store
    assert tree(outside) == outside_before
    assert files_with_marker(metrics) == [] and files_with_marker(store) == []


# --------------------------------------------------------------------------------------------------------------
# ect import-legacy and ect mlflow-sync


STAMP_A, STAMP_B = "20221205T095541", "20221205T104713"


def legacy_gpu_file(folder: Path, stamp: str) -> Path:
    """An nvidia-smi log of the original's layout: 10 samples, 1 s apart."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp, name, power.draw [W]"] + [f"2022/12/05 09:55:{40 + i:02d}.000, NVIDIA X, {100 + i}.00 W"
                                                   for i in range(10)]
    (folder / f"gpu-power-{stamp}.csv").write_text("\n".join(lines) + "\n")
    return folder


def test_import_legacy_follows_no_link_in_its_source_or_destination(tmp_path):
    from ect.aggregate.legacy import import_legacy

    src, dest, outside = tmp_path / "src", tmp_path / "raw", tmp_path / "outside"
    make_outside(outside)
    good = legacy_gpu_file(src / "cloud" / "mobilenet_v2", STAMP_A)
    (good / f"gpu-power-{STAMP_B}.csv").symlink_to(outside / "passwd")  # a linked source file
    (src / "linked_env").symlink_to(outside / "env", target_is_directory=True)  # a linked source folder
    legacy_gpu_file(src / "cloud" / "vgg16", STAMP_A)
    (dest / "cloud").mkdir(parents=True)
    (dest / "cloud" / "vgg16").symlink_to(outside / "arch", target_is_directory=True)  # a linked destination folder
    outside_before = tree(outside)
    with log_lines() as lines:
        result = import_legacy(src, dest)
    assert result.imported == [dest / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}"]
    assert len(result.failed) == 3, result.failed
    assert f"{src / 'linked_env'} is a symbolic link: not followed (nothing read through it)" in result.failed
    assert any(f"gpu-power-{STAMP_B}.csv is a symbolic link: not read" in line for line in result.failed)
    assert any(f"{dest / 'cloud' / 'vgg16'} is a symbolic link: not followed" in line for line in result.failed)
    assert MARKER not in "\n".join(lines + result.failed)
    assert tree(outside) == outside_before and files_with_marker(dest) == []


def test_mlflow_sync_never_follows_a_linked_run_folder(tmp_path, monkeypatch, capsys):
    """A linked run folder and a tracked run with a linked file are not synced (named; exit status 1), nothing is read
    or written through them; the other unsynced run is uploaded."""
    import ect.tracking.mlflow_runs as mlflow_runs
    from ect.cli import main

    project, metrics, outside = project_at(tmp_path), tmp_path / "metrics", tmp_path / "outside"
    make_outside(outside)
    unsynced = {"synced": False, "experiment_name": "ect-links", "error": "down"}
    (outside / "run" / "tracking.json").write_text(json.dumps(unsynced))
    raw = metrics / "raw"
    good = write_valid_run(raw / "local" / "vgg16" / "good-rep00")
    (good / "tracking.json").write_text(json.dumps(unsynced))
    linked_file = write_valid_run(raw / "local" / "vgg16" / "linked-history-rep00")
    (linked_file / "tracking.json").write_text(json.dumps(unsynced))
    (linked_file / "history.csv").symlink_to(outside / "passwd")
    link_folder("run")(raw / "local" / "vgg16" / "linked-rep00", outside)
    outside_before = tree(outside)
    uploaded = []

    def upload(cfg, folder, experiment_name=None):
        uploaded.append(folder)
        return {"synced": True, "mlflow_run_id": "r1", "experiment_name": experiment_name}

    monkeypatch.setattr(mlflow_runs, "track_completed_run", upload)
    settings = {"ECT_HOME": project, "ECT_METRICS_DIR": metrics, "ECT_MODELS_DIR": tmp_path / "models",
                "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "ECT_SECRETS_FILE": tmp_path / "none.yaml"}
    for name, value in settings.items():
        monkeypatch.setenv(name, str(value))
    with log_lines() as lines:
        assert main(["mlflow-sync"]) == 1
    printed = capsys.readouterr().out
    assert uploaded == [good]
    assert f"{raw / 'local' / 'vgg16' / 'linked-rep00'}: not synced: a symbolic link, not followed" in printed
    assert f"{linked_file}: not synced: history.csv: a symbolic link, not read" in printed
    assert MARKER not in printed + "\n".join(lines)
    assert tree(outside) == outside_before
