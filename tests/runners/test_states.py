"""The watch of host_check: what each state of host_check means for a DAG run of an environment with a QUEUE."""

import pytest

from ect.config import load_config
from ect.errors import RunnerError
from ect.runners.states import host_check_verdict


@pytest.fixture
def gpu(project):
    (project / "config" / "environments.yaml").write_text(
        "gpu:\n  RUNNER: process\n  QUEUE: ect_gpu\n  HOST_CHECK_TIMEOUT_S: 600\n")
    return load_config(project, env={}).environment("gpu")


@pytest.mark.parametrize("state", ["success", "failed", "upstream_failed", "skipped", "removed"])
def test_a_finished_host_check_ends_the_watch(gpu, state):
    assert host_check_verdict(gpu, state, waited_s=10_000) is True  # host_check's own outcome decides the rest


@pytest.mark.parametrize("state", [None, "scheduled", "queued", "running", "up_for_retry"])
def test_a_host_check_on_its_way_is_watched_again(gpu, state):
    assert host_check_verdict(gpu, state, waited_s=599) is False


def test_a_worker_that_cannot_load_the_dag_fails_the_watch_at_once_saying_what_to_do(gpu):
    with pytest.raises(RunnerError, match=r"the worker of queue ect_gpu \(QUEUE of environment gpu\) could not load "
                                          r"DAG ect_gpu.*'Dag not found during start up'.*`ect worker gpu`"):
        host_check_verdict(gpu, "up_for_reschedule", waited_s=0)


def test_a_host_check_that_no_worker_takes_times_out_naming_the_queue_and_the_setting(gpu):
    with pytest.raises(RunnerError, match=r"host_check of ect_gpu did not finish within 600 s \(HOST_CHECK_TIMEOUT_S "
                                          r"of environment gpu; state queued\): no worker of queue ect_gpu took it"):
        host_check_verdict(gpu, "queued", waited_s=601)
    with pytest.raises(RunnerError, match=r"state running\): it is still running on the GPU host"):
        host_check_verdict(gpu, "running", waited_s=601)
