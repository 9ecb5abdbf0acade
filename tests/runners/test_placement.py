"""Where host-bound tasks run: an environment whose GPU host is not this one says which setting to set."""

import pytest

from conftest import free_ports
from ect.config import load_config
from ect.errors import RunnerError
from ect.runners import docker


@pytest.mark.parametrize("queue, expected", [
    ("", r"has no QUEUE.*set QUEUE in config/environments.yaml and serve it on the GPU host with `ect worker cloud`, "
         r"or set DOCKER_URL to the GPU host's engine"),
    ("  QUEUE: ect_cloud\n", r"host_check runs on queue ect_cloud \(QUEUE\): serve it there with `ect worker cloud`, "
                             r"or set DOCKER_URL"),
])
def test_a_docker_environment_without_an_engine_here_says_to_set_queue_or_docker_url(project, queue, expected):
    url = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    (project / "config" / "environments.yaml").write_text(f"cloud:\n  RUNNER: docker\n  DOCKER_URL: {url}\n{queue}")
    cfg = load_config(project, env={})
    with pytest.raises(RunnerError, match=rf"no Docker engine answers at {url} \(DOCKER_URL of environment cloud\) "
                                          rf"from this host .*{expected}"):
        docker.check(cfg.environment("cloud"), cfg)
