"""Atomic writes: a file is either the old one or the complete new one, never a part."""

import json

import pytest

from conftest import lock_held_elsewhere
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


def test_a_full_disk_leaves_the_old_file_and_no_temporary(tmp_path):
    """The kernel's own ENOSPC: this process's temporary is a link to /dev/full, so every write to it fails."""
    import errno

    from ect.raw.atomic import temporary_name

    path = tmp_path / "manifest.json"
    write_json(path, {"status": "running"})
    (tmp_path / temporary_name("manifest", ".json")).symlink_to("/dev/full")
    with pytest.raises(OSError) as raised:
        write_json(path, {"status": "completed", "energy_J": 1.0})
    assert raised.value.errno == errno.ENOSPC
    assert read_json(path) == {"status": "running"} and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_the_next_write_removes_what_a_killed_writer_left(tmp_path):
    """SIGKILL mid-write leaves a temporary; the next write of that file (another process) deletes it."""
    import subprocess
    import sys

    path = tmp_path / "summary.json"
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from ect.raw.atomic import atomic_path\n"
        f"with atomic_path({str(path)!r}) as tmp:\n"
        "    tmp.write_text('{\"half\": ')\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")])
    assert killed.returncode == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].startswith(".summary.tmp-")
    write_json(path, {"passed": 3})
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_temporaries_of_live_processes_and_other_hosts_are_left_alone(tmp_path):
    import os

    from ect.raw.atomic import HOST, remove_stale_temporaries

    mine = tmp_path / f".runs.tmp-{HOST}-{os.getpid()}.csv"
    other_host = tmp_path / ".runs.tmp-another-host-1.csv"
    dead = tmp_path / f".runs.tmp-{HOST}-999999999.csv"
    for path in (mine, other_host, dead):
        path.write_text("x")
    assert remove_stale_temporaries(tmp_path, "runs") == [dead]
    assert mine.exists() and other_host.exists() and not dead.exists()


def test_a_folder_held_by_another_process_is_refused(tmp_path):
    from ect.raw.atomic import FolderInUse, exclusive

    with lock_held_elsewhere(tmp_path / ".r1.lock", "profile-run local/vgg16/r1"):
        with pytest.raises(FolderInUse, match=rf"{tmp_path / '.r1.lock'} is held by profile-run local/vgg16/r1, pid \d+"):
            with exclusive(tmp_path / ".r1.lock", "profile-run local/vgg16/r1"):
                pass
    with exclusive(tmp_path / ".r1.lock", "the next run"):  # the OS released the killed holder's lock
        assert "the next run" in (tmp_path / ".r1.lock").read_text()
