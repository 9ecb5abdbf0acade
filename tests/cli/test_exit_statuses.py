"""The exit statuses README promises (0 all good, 1 items did not pass, 2 bad input or nothing to work on, 3 the
system or a bug) and the one line that says why: nothing to work on, a configuration file that would cost time or
memory, a disk that refuses a write. Never a traceback, and never "a bug in ect" when the machine refused."""

import errno
import os
import shutil

import pandas as pd
import pytest

from conftest import REPO, run_ect

COMMANDS_ON_PROCESSED = {  # a command reading the processed dataset -> what it has nothing to do
    ("check-regression", "local"): "check",
    ("compare", "night0", "night1"): "compare",
    ("analyze",): "analyse",
    ("analyze", "--environment", "local"): "analyse",
    ("export", "--format", "codecarbon"): "export",
}


def processed_runs(environments=("local",), nights=3) -> pd.DataFrame:
    """A small processed dataset: 3 runs of vgg16 per night and environment."""
    return pd.DataFrame([
        {"environment": env, "architecture": "vgg16", "run_id": f"night{night}-rep{rep:02d}",
         "campaign_id": f"night{night}", "start": pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=night),
         "total_energy_J": 400e3 + 1e3 * rep, "duration_s": 1600.0}
        for env in environments for night in range(nights) for rep in range(3)])


def project_env(tmp_path, runs: pd.DataFrame | None = None) -> dict:
    """ECT_* variables of a project whose METRICS_DIR holds `runs` as its processed dataset (None: nothing)."""
    metrics = tmp_path / "metrics"
    metrics.mkdir(exist_ok=True)
    if runs is not None:
        (metrics / "processed").mkdir(exist_ok=True)
        runs.to_parquet(metrics / "processed" / "runs.parquet")
    return {"ECT_HOME": str(REPO), "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}


def one_line_error(result, status: int, *fragments: str) -> str:
    assert result.returncode == status, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "a bug in ect" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args", list(COMMANDS_ON_PROCESSED))
def test_without_a_processed_dataset_each_command_says_so_and_exits_2(args, tmp_path):
    result = run_ect(*args, cwd=tmp_path, env=project_env(tmp_path))
    processed = tmp_path / "metrics" / "processed" / "runs.parquet"
    one_line_error(result, 2, f"ect {args[0]}: error: processed dataset {processed} does not exist",
                   "run `ect aggregate` first")


@pytest.mark.parametrize("args", list(COMMANDS_ON_PROCESSED))
def test_an_empty_processed_dataset_is_nothing_to_do_exit_2(args, tmp_path):
    # What `ect aggregate` writes without runs: zero rows of three columns.
    empty = pd.DataFrame({"environment": pd.Series([], dtype=str), "architecture": pd.Series([], dtype=str),
                          "run_id": pd.Series([], dtype=str)})
    result = run_ect(*args, cwd=tmp_path, env=project_env(tmp_path, empty))
    line = one_line_error(result, 2, f"ect {args[0]}: error: nothing to {COMMANDS_ON_PROCESSED[args]}: ",
                          "has no run", "`ect aggregate` adds the measured runs")
    if "local" in args:
        assert "of environment 'local'" in line
    assert not (tmp_path / "metrics" / "processed" / "emissions.csv").exists()


def test_runs_of_other_environments_only_are_nothing_to_check(tmp_path):
    env = project_env(tmp_path, processed_runs(environments=("cloud",)))
    result = run_ect("check-regression", "local", cwd=tmp_path, env=env)
    one_line_error(result, 2, "nothing to check: ", "no run of environment 'local'")
    assert run_ect("check-regression", "cloud", cwd=tmp_path, env=env).returncode == 0


def test_validate_and_aggregate_of_an_empty_raw_folder_succeed_with_nothing(tmp_path):
    env = project_env(tmp_path)
    (tmp_path / "metrics" / "raw").mkdir()
    validated = run_ect("validate", cwd=tmp_path, env=env)
    assert validated.returncode == 0 and "0 runs" in validated.stdout, validated.stderr
    aggregated = run_ect("aggregate", cwd=tmp_path, env=env)
    assert aggregated.returncode == 0 and "processed dataset: 0 runs" in aggregated.stdout, aggregated.stderr


# Configuration files that would cost time or memory: refused at once, in a line people can read.

def config_project(tmp_path, file: str, text: str) -> dict:
    root = tmp_path / "project"
    shutil.copytree(REPO / "config", root / "config")
    (root / "config" / file).write_text(text)
    return {"ECT_HOME": str(root)}


def test_a_yaml_alias_bomb_is_refused_with_a_short_message(tmp_path):
    laughs = "".join(f"{name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
                     for previous, name in zip([None, *"abcdefgh"], "abcdefghi"))  # 9^9 values, were it expanded
    env = config_project(tmp_path, "experiment.yaml", laughs)
    result = run_ect("pools", cwd=tmp_path, env=env, timeout=60)
    one_line_error(result, 2, "experiment.yaml: expands to more than 100,000 values through its aliases")
    assert len(result.stderr) < 2000


def test_a_config_file_over_1_mib_is_refused_naming_it(tmp_path):
    env = config_project(tmp_path, "experiment.yaml", "INITIAL_EPOCHS: 3\n" + "# padding\n" * 120_000)
    result = run_ect("pools", cwd=tmp_path, env=env)
    one_line_error(result, 2, "experiment.yaml: 1.14 MiB, more than a configuration file may be (1 MiB)")


def test_a_5001_digit_integer_names_file_key_and_what_was_expected(tmp_path):
    env = config_project(tmp_path, "experiment.yaml", f"INITIAL_EPOCHS: {'1' * 5001}\n")
    result = run_ect("pools", cwd=tmp_path, env=env)
    one_line_error(result, 2, "config/experiment.yaml: INITIAL_EPOCHS='111", "... (4,503 more characters): "
                   "expected an integer >= 1")
    assert len(result.stderr) < 1000


# The machine refuses a write: the path and the OS's reason, exit status 3, no traceback, not "a bug".

def test_an_output_folder_the_os_refuses_is_named_with_the_reason(tmp_path):
    env = {**project_env(tmp_path, processed_runs()), "ECT_OUTPUT_DIR": "/proc/ect-no-such-folder/out"}
    result = run_ect("check-regression", "local", cwd=tmp_path, env=env)
    one_line_error(result, 3, "ect check-regression: error: cannot access /proc/ect-no-such-folder",
                   "No such file or directory (ENOENT)")


@pytest.fixture
def ect_main(tmp_path, monkeypatch, capsys):
    """`ect ARGS` in this process (so that a writer can be made to fail): (exit status, stderr)."""
    from ect.cli import main

    for name, value in project_env(tmp_path, processed_runs()).items():
        monkeypatch.setenv(name, value)

    def run(*args):
        status = main(list(args))
        return status, capsys.readouterr().err
    return run


@pytest.mark.parametrize("code, reason", [
    (errno.ENOSPC, "No space left on device"), (errno.EDQUOT, "Disk quota exceeded"),
    (errno.EROFS, "Read-only file system"), (errno.EACCES, "Permission denied"),
    (errno.EPERM, "Operation not permitted"),
])
def test_a_disk_that_refuses_a_write_is_named_with_the_reason(code, reason, ect_main, tmp_path, monkeypatch):
    def refuse(descriptor):  # the OS's error as a write or fsync raises it: without a file name
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "fsync", refuse)
    status, stderr = ect_main("check-regression", "local")
    assert status == 3
    verb = "cannot write" if code in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) else "cannot access"
    assert stderr.strip() == (f"ect check-regression: error: {verb} {tmp_path / 'out' / 'local' / 'regression.json'}: "
                              f"{reason} ({errno.errorcode[code]})")


def test_a_read_only_folder_is_named_with_the_reason(ect_main, tmp_path, monkeypatch):
    from pathlib import Path

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))

    monkeypatch.setattr(Path, "mkdir", read_only)
    status, stderr = ect_main("check-regression", "local")
    assert status == 3
    assert stderr.strip() == (f"ect check-regression: error: cannot write {tmp_path / 'out' / 'local'}: "
                              "Read-only file system (EROFS)")


def test_an_unexpected_exception_is_still_reported_as_a_bug_with_its_traceback(ect_main, monkeypatch):
    from ect import pipeline

    def broken(cfg, environment):
        raise KeyError("total_energy_J")

    monkeypatch.setattr(pipeline, "regression_step", broken)
    status, stderr = ect_main("check-regression", "local")
    assert status == 3 and "Traceback" in stderr
    assert stderr.strip().splitlines()[-1] == ("ect check-regression: internal error: KeyError: 'total_energy_J' "
                                               "(a bug in ect: please report it with the traceback above)")
