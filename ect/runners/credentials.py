"""MLflow credentials for a run launched from Airflow: the `mlflow_default` connection if Airflow has one,
else secrets.yaml / MLFLOW_TRACKING_* (ect.config.load_secrets). They travel in the child's environment
(process runner) or in the container's private environment (docker runner), never on a command line."""

from __future__ import annotations

CONNECTION_ID = "mlflow_default"


def _from_connection() -> dict:
    try:
        from airflow.sdk import BaseHook

        connection = BaseHook.get_connection(CONNECTION_ID)
    except Exception:  # no such connection, or no Airflow context: fall back to the configuration
        return {}
    scheme = connection.conn_type if connection.conn_type in ("http", "https") else "http"
    url = connection.host if "://" in (connection.host or "") else \
        f"{scheme}://{connection.host}" + (f":{connection.port}" if connection.port else "")
    values = {"MLFLOW_TRACKING_URI": url if connection.host else None,
              "MLFLOW_TRACKING_USERNAME": connection.login, "MLFLOW_TRACKING_PASSWORD": connection.password}
    return {key: value for key, value in values.items() if value}


def mlflow_environment(cfg) -> dict:
    """MLFLOW_TRACKING_URI / _USERNAME / _PASSWORD for the run, from the first source that has a URL."""
    from_connection = _from_connection()
    if from_connection.get("MLFLOW_TRACKING_URI"):
        return from_connection
    from ect.config import load_secrets

    secrets = load_secrets(cfg.root)
    values = {"MLFLOW_TRACKING_URI": secrets.url, "MLFLOW_TRACKING_USERNAME": secrets.username,
              "MLFLOW_TRACKING_PASSWORD": secrets.password}
    return {key: value for key, value in values.items() if value}
