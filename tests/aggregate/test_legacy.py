"""The legacy importer: the original replication package's nvidia-smi / psutil CSVs into ect's raw run folders."""

import csv
import json
import signal
import subprocess
import sys
from datetime import datetime, timedelta

import pytest

from conftest import log_lines
from ect.aggregate.legacy import import_legacy
from ect.energy import integrate_power_J
from ect.errors import LegacyImportError
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS

GPU_HEADER = ("timestamp,gpu_name,gpu_usage,gpu_memory_usage,gpu_total_memory,gpu_memory_used,gpu_power_draw,"
              "gpu_max_power,gpu_temperature")
CPU_HEADER = "timestamp,cpu usage (%),memory usage (MB),temperature (Celsius)"
STAMP_A, STAMP_B = "20221205T095541", "20221205T104713"
START = datetime(2022, 12, 5, 9, 55, 42, 535000)
# 10 samples at 1 s; with trim_samples=3 the kept ones are [100, 110, 130, 120].
POWERS = [119.17, 118.97, 119.0, 100.0, 110.0, 130.0, 120.0, 118.6, 118.44, 118.3]


def gpu_line(i, power="119.17 W", usage="23 %", limit="350.00 W", sep=","):
    stamp = (START + timedelta(seconds=i)).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return sep.join([stamp, "NVIDIA GeForce RTX 3090", usage, "8 %", "24268 MiB", "23573 MiB", power, limit, "55"])


def cpu_line(i, cpu="12.5", rss="12231.543"):
    return f"{(START + timedelta(seconds=i, microseconds=123456)).isoformat()},{cpu},{rss},32.0"


def write_run(src, stamp, gpu_lines=None, cpu_lines=None, env="cloud", arch="mobilenet_v2", cpu=True):
    folder = src / env / arch
    folder.mkdir(parents=True, exist_ok=True)
    if gpu_lines is None:
        gpu_lines = [gpu_line(i, f"{p:.2f} W") for i, p in enumerate(POWERS)]
    (folder / f"gpu-power-{stamp}.csv").write_text("\n".join([GPU_HEADER, *gpu_lines]) + "\n")
    if cpu:
        cpu_lines = cpu_lines if cpu_lines is not None else [cpu_line(i) for i in range(10)]
        (folder / f"cpu-mem-usage-{stamp}.csv").write_text("\n".join([CPU_HEADER, *cpu_lines]) + "\n")
    return folder


def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def header(path):
    with open(path, newline="") as handle:
        return tuple(next(csv.reader(handle)))


def manifest(folder):
    return json.loads((folder / "manifest.json").read_text())


def run_import(src, dest, **kwargs):
    """(the run folders imported, the log lines); a file that failed is asserted on by import_with_failures."""
    with log_lines() as lines:
        result = import_legacy(src, dest, **kwargs)
    assert result.failed == [], result.failed
    return result.imported, lines


def import_with_failures(src, dest, **kwargs):
    with log_lines() as lines:
        return import_legacy(src, dest, **kwargs), lines


def test_layout_run_numbering_by_stamp_and_exact_columns(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    folder = write_run(src, STAMP_B)  # written first, numbered second: the stamp decides
    write_run(src, STAMP_A)
    (folder / "model_flops.txt").write_text("MACCS: 1\n")
    (folder / "performance-20221205T095541.csv").write_text("whatever\n")
    runs, lines = run_import(src, dest)
    base = dest / "cloud" / "mobilenet_v2"
    assert runs == [base / f"legacy-{STAMP_A}", base / f"legacy-{STAMP_B}"]
    assert [manifest(run)["repetition"] for run in runs] == [0, 1]
    for run in runs:
        assert sorted(p.name for p in run.iterdir()) == ["cpu.csv", "gpu.csv", "manifest.json"]
        assert header(run / "gpu.csv") == GPU_COLUMNS
        assert header(run / "cpu.csv") == CPU_COLUMNS
    assert manifest(runs[0])["legacy"]["other_files_in_folder"] == ["model_flops.txt", "performance-20221205T095541.csv"]
    assert f"imported cloud/mobilenet_v2 run 0 (legacy-{STAMP_A}): 4 GPU samples" in lines
    assert "2 runs imported" in lines[-1]


def test_values_full_precision_units_and_missing_fields(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    gpu = [gpu_line(0, "119.17 W"), gpu_line(1, "[N/A]", usage="[N/A]"),
           gpu_line(2, "118.97 W", usage="[N/A]", limit="[Not Supported]", sep=", "), gpu_line(3, "", usage="")]
    cpu = [cpu_line(0), "2022-12-05T09:55:43,None,,32.0", "2022-12-05 09:55:44.5,3.587,12234.051,None"]
    write_run(src, STAMP_A, gpu, cpu)
    (run,), _ = run_import(src, dest, trim_samples=0)
    rows = read_rows(run / "gpu.csv")
    assert rows[0] == {"timestamp": "2022-12-05T09:55:42.535Z", "gpu_index": "0", "name": "NVIDIA GeForce RTX 3090",
                       "power_W": "119.17", "energy_counter_mJ": "", "utilization_gpu_pct": "23",
                       "utilization_memory_pct": "8", "memory_used_MiB": "23573", "memory_total_MiB": "24268",
                       "temperature_C": "55", "power_limit_W": "350"}  # each number the shortest text of its value
    # Samples without power measure nothing: dropped (and noted); other missing values stay empty.
    assert len(rows) == 2 and (rows[1]["power_W"], rows[1]["utilization_gpu_pct"], rows[1]["power_limit_W"]) == (
        "118.97", "", "")
    assert "dropped 2 sample(s) without a power reading ([N/A] or empty power)" in manifest(run)["legacy"]["notes"]
    cpu_rows = read_rows(run / "cpu.csv")
    assert cpu_rows[0] == {"timestamp": "2022-12-05T09:55:42.658Z", "process_cpu_pct": "12.5",  # .658456 truncated
                           "process_rss_MiB": "12231.543", "system_cpu_pct": "", "rapl_package_energy_uJ": "",
                           "rapl_dram_energy_uJ": "", "cpu_power_estimated_W": "", "cpu_power_source": "none"}
    assert (cpu_rows[1]["timestamp"], cpu_rows[1]["process_cpu_pct"], cpu_rows[1]["process_rss_MiB"]) == (
        "2022-12-05T09:55:43.000Z", "", "")
    assert cpu_rows[2]["timestamp"] == "2022-12-05T09:55:44.500Z"


def test_truncated_last_lines_are_dropped_and_noted(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    gpu = [gpu_line(i, "120.00 W") for i in range(4)]
    gpu.append(gpu_line(4).split("119.17")[0] + "11")  # "...,23573 MiB,11": cut inside the power field
    cpu = [cpu_line(i) for i in range(3)] + ["2022-12-05T09:55:45.1"]
    write_run(src, STAMP_A, gpu, cpu)
    (run,), _ = run_import(src, dest, trim_samples=0)
    assert len(read_rows(run / "gpu.csv")) == 4
    assert len(read_rows(run / "cpu.csv")) == 3
    notes = manifest(run)["legacy"]["notes"]
    assert any("dropped a truncated last line" in n and f"gpu-power-{STAMP_A}.csv (line 6" in n for n in notes)
    assert any("dropped a truncated last line" in n and f"cpu-mem-usage-{STAMP_A}.csv (line 5" in n for n in notes)


def test_a_cut_final_field_is_kept_when_it_still_parses(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A, [gpu_line(0), gpu_line(1, "119.1")])  # "119.1": no unit, still a number
    (run,), _ = run_import(src, dest, trim_samples=0)
    assert [r["power_W"] for r in read_rows(run / "gpu.csv")] == ["119.17", "119.1"]


@pytest.mark.parametrize("bad", ["garbage", "line-with,too,few,fields", "BAD"])
def test_malformed_middle_line_fails_its_run_naming_file_and_line_and_the_others_are_imported(tmp_path, bad):
    src, dest = tmp_path / "src", tmp_path / "raw"
    gpu = [gpu_line(i) for i in range(6)]
    gpu[2] = gpu_line(2, "abc W") if bad == "BAD" else bad  # line 4 of the file (the header is line 1)
    write_run(src, STAMP_A, gpu)
    write_run(src, STAMP_B)
    result, lines = import_with_failures(src, dest, trim_samples=0)
    (failure,) = result.failed
    assert f"gpu-power-{STAMP_A}.csv, line 4: malformed" in failure
    assert [run.name for run in result.imported] == [f"legacy-{STAMP_B}"]
    assert not (dest / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}").exists()
    assert any(line.startswith("error: not imported:") and "line 4" in line for line in lines)
    assert "1 runs imported" in lines[-1] and "1 failed" in lines[-1]


def test_a_bad_value_in_a_full_last_line_that_is_not_its_final_field_is_an_error(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A, [gpu_line(0), gpu_line(1, "abc W")])
    result, _ = import_with_failures(src, dest, trim_samples=0)
    assert len(result.failed) == 1 and "line 3: malformed" in result.failed[0]


def test_trim_samples_applies_to_gpu_rows_only(tmp_path):
    src = tmp_path / "src"
    write_run(src, STAMP_A)
    (trimmed,), _ = run_import(src, tmp_path / "a")
    (whole,), _ = run_import(src, tmp_path / "b", trim_samples=0)
    assert [float(r["power_W"]) for r in read_rows(trimmed / "gpu.csv")] == [100.0, 110.0, 130.0, 120.0]
    assert [float(r["power_W"]) for r in read_rows(whole / "gpu.csv")] == POWERS
    assert len(read_rows(trimmed / "cpu.csv")) == len(read_rows(whole / "cpu.csv")) == 10
    assert manifest(trimmed)["legacy"]["trim_samples"] == 3
    assert manifest(whole)["legacy"]["trim_samples"] == 0


def test_too_short_file_is_skipped_with_a_warning_and_keeps_its_number(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A, [gpu_line(i) for i in range(6)])  # 6 <= 2 * 3
    write_run(src, STAMP_B)
    runs, lines = run_import(src, dest)
    assert [run.name for run in runs] == [f"legacy-{STAMP_B}"]
    assert manifest(runs[0])["repetition"] == 1
    assert not (dest / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}").exists()
    assert any(line.startswith("warning:") and f"gpu-power-{STAMP_A}.csv" in line for line in lines)


def test_manifest_fields(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A)
    (run,), _ = run_import(src, dest)
    m = manifest(run)
    assert {k: m[k] for k in ("run_id", "environment", "architecture", "repetition", "attempt", "status", "source",
                              "energy", "error")} == {
        "run_id": f"legacy-{STAMP_A}", "environment": "cloud", "architecture": "mobilenet_v2", "repetition": 0,
        "attempt": 1, "status": "completed", "source": "legacy-import", "energy": None, "error": None}
    start, end = START + timedelta(seconds=3), START + timedelta(seconds=6)  # the kept span
    assert m["window"] == {"start": "2022-12-05T09:55:45.535Z", "end": "2022-12-05T09:55:48.535Z",
                           "start_unix_s": (start - datetime(1970, 1, 1)).total_seconds(),
                           "end_unix_s": (end - datetime(1970, 1, 1)).total_seconds()}
    assert m["training"] == m["window"]
    legacy = m["legacy"]
    assert legacy["gpu_file"] == f"cloud/mobilenet_v2/gpu-power-{STAMP_A}.csv"
    assert legacy["cpu_file"] == f"cloud/mobilenet_v2/cpu-mem-usage-{STAMP_A}.csv"
    assert legacy["stamp"] == STAMP_A
    assert legacy["timezone"] == "unknown: nvidia-smi local time written as UTC"
    assert any("CPU temperature" in n for n in legacy["notes"])
    assert any("power.max_limit" in a for a in legacy["assumptions"])
    assert any("gpu_index 0" in a for a in legacy["assumptions"])
    # Every manifest has the same host and sensors fields; what an import does not know is null or empty.
    assert m["host"] == {"gpus": ["NVIDIA GeForce RTX 3090"], "hostname": None, "platform": None, "cpu_model": None,
                         "cpu_count": None, "gpu_driver": None}
    assert m["sensors"] == {"sampling_interval_s": 1.0, "used": ["nvidia-smi", "psutil"],
                            "gpu_energy_source": "integrated", "cpu_energy_source": "unavailable", "report": {},
                            "details": {}}
    assert m["created"].endswith("Z")


def test_gpu_file_without_cpu_partner_imports_the_gpu_side(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A, cpu=False)
    (run,), lines = run_import(src, dest)
    assert sorted(p.name for p in run.iterdir()) == ["gpu.csv", "manifest.json"]
    m = manifest(run)
    assert m["legacy"]["cpu_file"] is None and m["sensors"]["used"] == ["nvidia-smi"]
    assert any("no cpu-mem-usage" in n for n in m["legacy"]["notes"])
    assert any(line.startswith("warning:") and "no cpu partner" in line for line in lines)


def test_reimport_skips_completed_runs_without_touching_them(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A)
    (run,), _ = run_import(src, dest)
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()}
    again, lines = run_import(src, dest)
    assert again == []
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.iterdir()} == before
    assert any(line.startswith("already imported") for line in lines)
    assert "1 already imported" in lines[-1]


@pytest.mark.parametrize("name, content", [("manifest.json", '{"status": "running"}'), ("manifest.json", "{"),
                                           ("notes.txt", "mine\n")])
def test_an_existing_run_folder_that_no_import_left_is_refused(tmp_path, name, content):
    """A manifest ect's import did not complete, or a file an import never writes: not an interrupted import."""
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A)
    folder = dest / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}"
    folder.mkdir(parents=True)
    (folder / "gpu.csv").write_text("half written\n")
    (folder / name).write_text(content)
    result, _ = import_with_failures(src, dest)
    assert len(result.failed) == 1 and f"legacy-{STAMP_A} exists without a completed manifest" in result.failed[0]
    assert (folder / "gpu.csv").read_text() == "half written\n" and (folder / name).read_text() == content


def test_an_import_killed_mid_run_is_redone_by_the_next_import(tmp_path):
    """A real kill (SIGKILL) just before the manifest is written leaves gpu.csv and cpu.csv without a manifest: the
    next import removes that folder, says so, and imports it again, exactly as an import that was never killed."""
    src, dest, clean = tmp_path / "src", tmp_path / "raw", tmp_path / "clean"
    write_run(src, STAMP_A)
    write_run(src, STAMP_B)
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal\n"
        "import ect.aggregate.legacy as legacy\n"
        "os.cpu_count = lambda: 1\n"  # one run at a time: killed at the first run's manifest
        "def killed(*args):\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
        "legacy.write_manifest = killed\n"
        f"legacy.import_legacy({str(src)!r}, {str(dest)!r})\n")], capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    left = dest / "cloud" / "mobilenet_v2" / f"legacy-{STAMP_A}"
    assert sorted(p.name for p in left.iterdir()) == ["cpu.csv", "gpu.csv"]  # what a kill leaves
    assert not left.with_name(f"legacy-{STAMP_B}").exists()

    with log_lines() as lines:
        result = import_legacy(src, dest)
    assert result.failed == [] and sorted(result.imported) == [left, left.with_name(f"legacy-{STAMP_B}")]
    assert f"{left} has no manifest.json: an interrupted import left it; removed and imported again" in lines
    run_import(src, clean)
    for run in result.imported:
        again = clean / run.relative_to(dest)
        assert sorted(p.name for p in run.iterdir()) == sorted(p.name for p in again.iterdir())
        for name in ("gpu.csv", "cpu.csv"):
            assert (run / name).read_bytes() == (again / name).read_bytes()
        assert {**manifest(run), "created": None} == {**manifest(again), "created": None}
    assert import_with_failures(src, dest)[0].imported == []  # and then it is done


def test_a_header_without_power_names_the_file_and_what_is_missing(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    folder = write_run(src, STAMP_A)
    path = folder / f"gpu-power-{STAMP_A}.csv"
    path.write_text("timestamp, name, memory.used [MiB]\n" + path.read_text().split("\n", 1)[1])
    result, _ = import_with_failures(src, dest)
    (failure,) = result.failed
    assert str(path) in failure and "no power.draw or gpu_power_draw" in failure


def test_missing_source_and_source_without_gpu_files(tmp_path):
    with pytest.raises(LegacyImportError, match="no such folder"):
        run_import(tmp_path / "nope", tmp_path / "raw")
    (tmp_path / "empty" / "cloud" / "vgg16").mkdir(parents=True)
    with pytest.raises(LegacyImportError, match="no gpu-power"):
        run_import(tmp_path / "empty", tmp_path / "raw")


def test_energy_of_the_imported_samples_is_the_hand_computed_trapezoid(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A)
    (run,), _ = run_import(src, dest)  # trim 3: kept powers [100, 110, 130, 120] W at 1 s spacing
    # (100 + 110) / 2 + (110 + 130) / 2 + (130 + 120) / 2 = 105 + 120 + 125 = 350 J
    expected_J = (100 + 110) / 2 * 1 + (110 + 130) / 2 * 1 + (130 + 120) / 2 * 1
    assert expected_J == 350
    rows = read_rows(run / "gpu.csv")
    times_s = [datetime.fromisoformat(r["timestamp"]).timestamp() for r in rows]
    window = manifest(run)["window"]
    energy_J = integrate_power_J(times_s, [float(r["power_W"]) for r in rows], window["start_unix_s"],
                                 window["end_unix_s"])
    assert energy_J == pytest.approx(expected_J, rel=1e-9)


def test_energy_keeps_the_centiwatts_the_original_dropped(tmp_path):
    src, dest = tmp_path / "src", tmp_path / "raw"
    write_run(src, STAMP_A, [gpu_line(i, p) for i, p in enumerate(["119.17 W", "118.97 W", "119.00 W"])])
    (run,), _ = run_import(src, dest, trim_samples=0)
    # (119.17 + 118.97) / 2 + (118.97 + 119.00) / 2 = 119.07 + 118.985 = 238.055 J (whole watts would give 237.5)
    rows = read_rows(run / "gpu.csv")
    times_s = [datetime.fromisoformat(r["timestamp"]).timestamp() for r in rows]
    window = manifest(run)["window"]
    energy_J = integrate_power_J(times_s, [float(r["power_W"]) for r in rows], window["start_unix_s"],
                                 window["end_unix_s"])
    assert energy_J == pytest.approx((119.17 + 118.97) / 2 + (118.97 + 119.00) / 2, rel=1e-9)
    assert energy_J == pytest.approx(238.055, rel=1e-9)


def test_worker_processes_import_the_same_runs_files_and_failures_as_one_process(tmp_path, monkeypatch):
    from ect import processes
    from ect.aggregate import legacy

    src = tmp_path / "src"
    for n, stamp in enumerate(["20221205T095541", "20221205T104713", "20221206T080000", "20221207T080000"]):
        write_run(src, stamp, arch=("mobilenet_v2", "vgg16")[n % 2])
    write_run(src, "20221208T080000", [gpu_line(i, "abc W" if i == 2 else "119.17 W") for i in range(6)])

    def imported(dest):
        with log_lines() as lines:
            result = import_legacy(src, dest)
        files = {path.relative_to(dest).as_posix(): path.read_text() for path in sorted(dest.rglob("*.csv"))}
        manifests = {path.relative_to(dest).as_posix(): {k: v for k, v in json.loads(path.read_text()).items()
                                                          if k != "created"}
                     for path in sorted(dest.rglob("manifest.json"))}
        return ([p.relative_to(dest) for p in result.imported], result.failed, files, manifests), lines

    one, _ = imported(tmp_path / "one")
    monkeypatch.setattr(legacy, "PROCESS_MIN_BYTES", 0)
    monkeypatch.setattr(processes, "cpu_count", lambda: 2)
    workers, lines = imported(tmp_path / "workers")
    assert any("in 2 processes" in line for line in lines)
    assert sum(line.startswith("imported ") for line in lines) == 4  # the workers' log lines, here
    assert workers == one and len(one[0]) == 4 and len(one[1]) == 1
    (src / "cloud" / "mobilenet_v2" / "gpu-power-20221208T080000.csv").unlink()  # the failed run, mended away
    monkeypatch.setattr(legacy, "PROCESS_MIN_BYTES", 1)
    with log_lines() as again:  # a rerun: every run imported before, nothing for workers
        import_legacy(src, tmp_path / "workers")
    assert not any("in 2 processes" in line for line in again) and any("already imported" in l for l in again)
