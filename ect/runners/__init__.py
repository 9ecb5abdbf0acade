"""How a profiled run is launched from an Airflow task. Each runner is a module with the same two functions:

    check(env, cfg) -> str        what it found, or RunnerError (preflight calls it before any training)
    tasks(env, cfg, plan)         the (warm-up, mapped training) tasks of the environment's DAG

process: `python -m ect profile-run` as a subprocess of the task; docker: the same in the worker image through
Airflow's DockerOperator. RUNNER in config/environments.yaml picks one by name.
"""

from ect.runners import docker, process

RUNNERS = {"process": process, "docker": docker}
