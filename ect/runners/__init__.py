"""How a profiled run is launched from an Airflow task: a local process or a Docker container."""
