"""Run keys, run folders and run ids."""

from pathlib import Path

import pandas as pd
import pytest

from ect.errors import StoreError
from ect.raw.atomic import HOST
from ect.raw.layout import (RunKey, campaign_of, find_runs, inside, is_temporary_key, layout_key, run_id_for, run_name,
                            signature, store_key)


def test_a_run_key_names_its_folder_and_is_read_back_from_it(tmp_path):
    key = RunKey("local", "vgg16", "manual__2026-12-01-rep03")
    assert key.name == str(key) == "local/vgg16/manual__2026-12-01-rep03"
    folder = key.folder(tmp_path)
    assert folder == tmp_path / "local" / "vgg16" / "manual__2026-12-01-rep03"
    assert RunKey.of_folder(folder) == key == RunKey.parse(key.name)
    with pytest.raises(ValueError):
        RunKey.parse("local/vgg16")


def test_run_names_of_table_columns_match_the_keys():
    frame = pd.DataFrame({"environment": ["local", "cloud"], "architecture": ["vgg16", "resnet50"],
                          "run_id": ["a-rep00", "b-rep01"]})
    names = run_name(frame["environment"], frame["architecture"], frame["run_id"])
    assert list(names) == [RunKey("local", "vgg16", "a-rep00").name, RunKey("cloud", "resnet50", "b-rep01").name]


def test_run_ids_are_safe_deterministic_and_give_back_their_campaign():
    run_id = run_id_for("manual__2026-12-01T03:52:18.948596+00:00", 3)
    assert run_id == "manual__2026-12-01T03_52_18.948596_00_00-rep03"
    assert run_id_for("manual__2026-12-01T03:52:18.948596+00:00", 3) == run_id
    assert campaign_of(run_id) == "manual__2026-12-01T03_52_18.948596_00_00"
    assert campaign_of("legacy-20221205T095541") == "legacy-20221205T095541"


def test_find_runs_lists_folders_with_a_run_file_and_signature_changes_with_them(tmp_path):
    run = RunKey("local", "vgg16", "r-rep00").folder(tmp_path)
    run.mkdir(parents=True)
    (run / "cpu.csv").write_text("timestamp\n")
    RunKey("local", "vgg16", "empty").folder(tmp_path).mkdir(parents=True)
    assert find_runs(tmp_path) == [run]
    before = signature(run)
    assert set(before) == {"cpu.csv"}
    (run / "cpu.csv").write_text("timestamp\n2026-12-01T00:00:00.000Z\n")
    assert signature(run) != before


def test_find_runs_keeps_only_the_runs_asked_for(tmp_path):
    keys = [RunKey("local", "vgg16", f"r-rep0{k}") for k in range(3)]
    for key in keys:
        key.folder(tmp_path).mkdir(parents=True)
        (key.folder(tmp_path) / "manifest.json").write_text("{}")
    assert find_runs(tmp_path, only={keys[0], keys[2]}) == [keys[0].folder(tmp_path), keys[2].folder(tmp_path)]
    assert find_runs(tmp_path, only=set()) == []


KEY = RunKey("local", "vgg16", "nightly-rep00")


@pytest.mark.parametrize("key", [
    f"raw/{KEY}/manifest.json", f"raw/{KEY}/validation.json", "validation/summary.json", "interim/index.json",
    "interim/samples.parquet/part-0123456789abcdef.parquet", "processed/runs.csv", "reports/report/report.html",
    "reports/local/trend.png", "reports/local/figures/pareto.png", "reports/local/nightly/report.md",
    "reports/local/nightly/figures/pareto.png"])
def test_the_store_layout_names_its_files(key):
    assert store_key(key) is not None and store_key(key).key == key == layout_key(key)


@pytest.mark.parametrize("key", [
    "raw/../x", f"raw/{KEY}/../manifest.json", "processed//etc/passwd", "/processed/runs.csv", "processed/runs.csv/",
    "processed\\runs.csv", "processed/%2e%2e%2Fruns.csv", "processed/..\u2215x", "processed/\uff0fruns.csv",
    "processed/runs.csv\x00", "processed/" + "a" * 300 + ".parquet", "raw/bad env/vgg16/r/manifest.json",
    "raw/local/vgg16/-r/manifest.json", f"raw/{KEY}/secrets.txt", "reports/local/evil.html", "reports/../report.html",
    "interim/samples.parquet/part-xyz.parquet", "validation/other.json", "elsewhere/runs.csv", "", "raw",
    f"raw/{KEY}/" + "x" * 2000])
def test_anything_else_is_no_key_of_the_store(key):
    assert store_key(key) is None
    with pytest.raises(StoreError, match="not a key of the run store's layout"):
        layout_key(key)


def test_a_run_files_key_gives_its_run_and_temporaries_are_told_apart():
    assert store_key(f"raw/{KEY}/gpu.csv").run == KEY and store_key("processed/runs.csv").run is None
    assert is_temporary_key(f"raw/{KEY}/.gpu.csv.tmp-{HOST}-123")
    assert not is_temporary_key(f"raw/{KEY}/.secrets.txt.tmp-{HOST}-123")
    assert not is_temporary_key("processed/../.runs.csv.tmp-h-1")


def test_inside_resolves_links_and_dot_dots(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "link").symlink_to(tmp_path)
    assert inside(tmp_path / "in" / "a" / "b", tmp_path / "in")
    assert not inside(tmp_path / "in" / ".." / "x", tmp_path / "in")
    assert not inside(tmp_path / "in" / "link" / "x", tmp_path / "in")
    assert not inside(Path("/etc/passwd"), tmp_path / "in")
    assert not inside(tmp_path / "in" / "a\x00b", tmp_path / "in")
