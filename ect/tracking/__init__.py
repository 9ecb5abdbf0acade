"""MLflow tracking of completed profiled runs (MLFLOW_ENABLED) and `ect mlflow-sync`."""

from ect.tracking.mlflow_runs import TRACKING_FILE, read_tracking, sync_runs, track_completed_run

__all__ = ["TRACKING_FILE", "read_tracking", "sync_runs", "track_completed_run"]
