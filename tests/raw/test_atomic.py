"""Atomic writes: a file is either the old one or the complete new one, never a part."""

import json

import pytest

from ect.raw.atomic import atomic_path, read_json, write_json, write_text


def test_written_files_replace_the_old_ones_whole(tmp_path):
    path = tmp_path / "manifest.json"
    write_json(path, {"status": "running"})
    write_json(path, {"status": "completed", "energy_J": 1234.5678901234567})
    assert json.loads(path.read_text()) == {"status": "completed", "energy_J": 1234.5678901234567}
    assert read_json(path) == {"status": "completed", "energy_J": 1234.5678901234567}
    write_text(tmp_path / "summary.txt", "ok\n")
    assert (tmp_path / "summary.txt").read_text() == "ok\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json", "summary.txt"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "runs.csv"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            assert tmp.suffix == ".csv" and tmp.parent == tmp_path
            tmp.write_text("half a fi")
            raise RuntimeError("disk full")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["runs.csv"]


def test_read_json_is_none_for_what_is_not_a_json_object(tmp_path):
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "cut.json").write_text('{"status": "comp')
    assert read_json(tmp_path / "list.json") is None and read_json(tmp_path / "cut.json") is None
