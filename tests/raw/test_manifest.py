"""The manifest: JSON round trip, lenient reading, its lifecycle and previous attempts."""

import json

import pytest

from ect.raw.layout import RunKey
from ect.raw.manifest import (Host, Manifest, Sensors, Window, read_manifest, recorded, set_aside_previous_attempt,
                              started_now, write_manifest)

KEY = RunKey("local", "tiny_cnn", "nightly-rep00")


def test_a_manifest_round_trips_through_json_and_keeps_unknown_fields(tmp_path):
    manifest = started_now(KEY, "profiled", repetition=0, attempt=1, experiment_name="shapes",
                           host=Host(hostname="gpu-1", gpus=["NVIDIA H200"]),
                           sensors=Sensors(sampling_interval_s=0.1, used=["nvml", "process", "estimate"],
                                           gpu_energy_source="counter", cpu_energy_source="estimated"),
                           window=Window(1795000000.1, 1795000060.25))
    manifest.extra["added_by_a_later_version"] = {"x": 1}
    write_manifest(tmp_path, manifest)
    data = json.loads((tmp_path / "manifest.json").read_text())
    assert data["window"] == {"start": "2026-11-18T11:06:40.100Z", "end": "2026-11-18T11:07:40.250Z",
                              "start_unix_s": 1795000000.1, "end_unix_s": 1795000060.25}
    assert data["host"]["hostname"] == "gpu-1" and data["sensors"]["gpu_energy_source"] == "counter"
    assert data["added_by_a_later_version"] == {"x": 1} and data["status"] == "running"
    back = read_manifest(tmp_path)
    assert back == manifest and back.key == KEY
    assert (back.window.start_ms, back.window.end_ms) == (1795000000100, 1795000060250)


def test_odd_manifests_still_load_for_validation_to_judge(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "x", "host": "not a mapping", "sensors": None,
                                                        "window": {"start_unix_s": "text"}}))
    manifest = read_manifest(tmp_path)
    assert manifest.run_id == "x" and manifest.environment is None and manifest.host == Host()
    assert manifest.sensors is None and manifest.window.start_unix_s == "text"
    (tmp_path / "manifest.json").write_text("[]")
    assert read_manifest(tmp_path) is None
    assert read_manifest(tmp_path / "missing") is None


def test_a_run_is_recorded_as_completed_or_as_failed_with_its_error(tmp_path):
    (tmp_path / "a").mkdir()
    done = Manifest(KEY.run_id, KEY.environment, KEY.architecture)
    with recorded(tmp_path / "a", done):
        assert read_manifest(tmp_path / "a").status == "running"
    assert read_manifest(tmp_path / "a").status == "completed" and done.finished.endswith("Z")

    (tmp_path / "b").mkdir()
    failed = Manifest(KEY.run_id, KEY.environment, KEY.architecture)
    with pytest.raises(KeyboardInterrupt):
        with recorded(tmp_path / "b", failed):
            raise KeyboardInterrupt("stopped")
    on_disk = read_manifest(tmp_path / "b")
    assert on_disk.status == "failed" and on_disk.error == "KeyboardInterrupt: stopped"
    assert "KeyboardInterrupt" in on_disk.traceback


def test_an_unfinished_attempt_is_set_aside_before_the_next(tmp_path):
    assert set_aside_previous_attempt(tmp_path, None) == 1  # nothing there yet
    running = Manifest(KEY.run_id, KEY.environment, KEY.architecture, attempt=1)
    write_manifest(tmp_path, running)
    (tmp_path / "cpu.csv").write_text("timestamp\n")
    assert set_aside_previous_attempt(tmp_path, running) == 2
    assert sorted(p.name for p in (tmp_path / "previous-attempts" / "1").iterdir()) == ["cpu.csv", "manifest.json"]
    assert not (tmp_path / "cpu.csv").exists()
