"""Run keys, run folders and run ids."""

import pandas as pd
import pytest

from ect.raw.layout import RunKey, campaign_of, find_runs, run_id_for, run_name, signature


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
