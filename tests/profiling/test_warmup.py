"""Warm-up and cool-down."""

from conftest import REPO, log_lines, run_ect


def test_cool_down_sleeps_the_whole_time_and_reports_progress():
    from ect.profiling.warmup import cool_down

    slept = []
    with log_lines() as lines:
        cool_down(150, sleep=slept.append)
    assert sum(slept) == 150 and max(slept) <= 60
    assert lines[0] == "cool-down: 150 s" and lines[-1] == "cool-down: 120/150 s"


def test_warmup_command_keeps_the_device_busy(tmp_path):
    result = run_ect("warmup", "local", "--minutes", "0.02", cwd=tmp_path, env={"ECT_HOME": str(REPO)})
    assert result.returncode == 0, result.stderr
    assert "warm-up: 1 s of matrix products on /CPU:0" in result.stdout
