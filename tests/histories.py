"""Processed histories (rows of processed/runs.parquet) whose true model is known, for tests of predictions and the
energy budget without training."""

from pathlib import Path

import pandas as pd

# The demo profile's architectures: energy per trained epoch in J, forward GFLOPs.
PER_EPOCH_J = {"tiny_cnn": 3000.0, "vgg16": 9000.0}
GFLOPS = {"tiny_cnn": 0.01, "vgg16": 0.5}
SECONDS_PER_JOULE = 0.01
IMAGES_PER_EPOCH = 280


def history(campaigns: int, repetitions: int = 2, environment: str = "local", epochs: int = 2) -> pd.DataFrame:
    """Nightly campaigns of tiny_cnn and vgg16 on TensorFlow, each run `epochs` epochs, its energy PER_EPOCH_J x epochs
    within +/- 4 % (a fixed pattern, so that intervals are narrow and the same every time)."""
    rows = []
    for night in range(campaigns):
        campaign = f"2026-01-{night + 1:02d}T02_00_00"
        for a, (architecture, per_epoch) in enumerate(PER_EPOCH_J.items()):
            for repetition in range(repetitions):
                energy = per_epoch * epochs * (1 + 0.04 * ((night + repetition) % 3 - 1))
                rows.append({
                    "environment": environment, "architecture": architecture, "backend": "tensorflow",
                    "run_id": f"{campaign}-rep{repetition:02d}", "campaign_id": campaign,
                    "start": pd.Timestamp("2026-01-01 02:00", tz="UTC") + pd.Timedelta(days=night, minutes=10 * a
                                                                                       + repetition),
                    "total_energy_J": energy, "duration_s": energy * SECONDS_PER_JOULE, "trained_epochs": epochs,
                    "gflops": GFLOPS[architecture], "images_seen": IMAGES_PER_EPOCH * epochs, "cpu_energy_J": energy,
                })
    return pd.DataFrame(rows)


def write_processed(metrics: Path, frame: pd.DataFrame) -> Path:
    """`frame` as METRICS_DIR/processed/runs.parquet."""
    path = Path(metrics) / "processed" / "runs.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path)
    return path
