"""Credentials for what a task launches or reads, looked up when the task runs (never at parse time: whatever a DAG
holds then is stored in the serialized DAG, in clear text). They travel in the child's environment (process runner)
or the container's private environment (docker runner), never on a command line, in logs, XCom or rendered fields.

- MLflow: the `mlflow_default` connection if Airflow has one, else secrets.yaml / MLFLOW_TRACKING_*
  (ect.config.load_secrets).
- The run store (RUN_STORE on s3://): the `ect_store` connection if Airflow has one (type aws: login = access key
  id, password = secret key, extra {"endpoint_url": ..., "region_name": ...}), else the process's own AWS_*
  variables.
Both are registered with Airflow's secrets masker (mask_in_task_logs) as they are looked up.
"""

from __future__ import annotations

import os

from ect.masking import SECRET_VARIABLES, secret_forms, url_secrets

CONNECTION_ID = "mlflow_default"
STORE_CONNECTION_ID = "ect_store"


def _connection(conn_id: str):
    try:
        from airflow.sdk import BaseHook

        return BaseHook.get_connection(conn_id)
    except Exception:  # no such connection, or no Airflow context: fall back to the configuration
        return None


def _present(values: dict) -> dict:
    return {key: value for key, value in values.items() if value}


def _from_connection() -> dict:
    connection = _connection(CONNECTION_ID)
    if connection is None:
        return {}
    scheme = connection.conn_type if connection.conn_type in ("http", "https") else "http"
    url = connection.host if "://" in (connection.host or "") else \
        f"{scheme}://{connection.host}" + (f":{connection.port}" if connection.port else "")
    return _present({"MLFLOW_TRACKING_URI": url if connection.host else None,
                     "MLFLOW_TRACKING_USERNAME": connection.login, "MLFLOW_TRACKING_PASSWORD": connection.password})


def mlflow_environment(cfg) -> dict:
    """MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD for the run, from the first source that has a URL."""
    from_connection = _from_connection()
    if from_connection.get("MLFLOW_TRACKING_URI"):
        return from_connection
    from ect.config import load_secrets

    secrets = load_secrets(cfg.root)
    return _present({"MLFLOW_TRACKING_URI": secrets.url, "MLFLOW_TRACKING_USERNAME": secrets.username,
                     "MLFLOW_TRACKING_PASSWORD": secrets.password})


def store_environment() -> dict:
    """AWS_* variables of the run store from the `ect_store` connection; {} without one (the process's own apply)."""
    connection = _connection(STORE_CONNECTION_ID)
    if connection is None:
        return {}
    extra = connection.extra_dejson or {}
    return _present({"AWS_ACCESS_KEY_ID": connection.login, "AWS_SECRET_ACCESS_KEY": connection.password,
                     "AWS_ENDPOINT_URL": extra.get("endpoint_url"), "AWS_DEFAULT_REGION": extra.get("region_name")})


def mask_in_task_logs(values: dict) -> dict:
    """Registers the credentials among `values` (MLFLOW_*, AWS_* variables) with Airflow's secrets masker, in every
    form they may be printed in, so that the task log hides them wherever they appear; returns `values`."""
    try:
        from airflow.sdk.log import mask_secret
    except ImportError:  # an Airflow without the task SDK's masker: ect masks its own messages anyway
        return values
    secrets = [values.get(name) for name in SECRET_VARIABLES] + url_secrets(values.get("MLFLOW_TRACKING_URI"))
    for secret in filter(None, secrets):
        for form in secret_forms(str(secret)):
            mask_secret(form)
    return values


def use_store_credentials() -> None:
    """Puts the run store's credentials into this task process's environment, for the steps it runs in-process."""
    os.environ.update(mask_in_task_logs(store_environment()))


def run_environment(cfg) -> dict:
    """Everything a launched run needs: MLflow's and the run store's credentials."""
    return mask_in_task_logs({**mlflow_environment(cfg), **store_environment()})
