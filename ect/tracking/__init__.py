"""MLflow tracking of completed runs (MLFLOW_ENABLED) and `ect mlflow-sync`."""

from ect.tracking.mlflow_runs import read_tracking, sync_runs, track_completed_run

__all__ = ["read_tracking", "sync_runs", "track_completed_run"]
