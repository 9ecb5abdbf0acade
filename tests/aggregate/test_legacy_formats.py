"""nvidia-smi's own CSV in each of its variants, imported and aggregated to hand-computed energy and duration; the
original's trimming exactly; one bad file among good ones; the original's model metrics attached."""

import json
from datetime import datetime, timedelta

import pandas as pd
import pytest

from conftest import REPO, log_lines, run_ect
from ect.aggregate.aggregate import aggregate
from ect.aggregate.legacy import import_legacy
from ect.config import load_config
from ect.validation import Limits

STAMP = "20230308T212956"
START = datetime(2023, 3, 8, 21, 29, 56, 373000)
POWERS = [100.0, 110.0, 130.0, 120.0]  # W at 1 s: trapezoid 105 + 120 + 125 = 350 J over 3 s
FULL = ("timestamp", "name", "utilization.gpu [%]", "utilization.memory [%]", "memory.total [MiB]",
        "memory.used [MiB]", "power.draw [W]", "power.max_limit [W]", "temperature.gpu")
ENVIRONMENTS = load_config(REPO, env={}).environments


def stamp(i: int) -> str:
    return (START + timedelta(seconds=i)).strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]  # nvidia-smi's format


def value(field: str, i: int, power: float, units: bool, index: int = 0) -> str:
    unit = lambda text, u: f"{text} {u}" if units else text  # noqa: E731
    return {
        "timestamp": stamp(i), "index": str(index), "name": "NVIDIA GeForce RTX 3090",
        "utilization.gpu [%]": unit("23", "%"), "utilization.memory [%]": unit("8", "%"),
        "memory.total [MiB]": unit("24576", "MiB"), "memory.used [MiB]": unit("23573", "MiB"),
        "power.draw [W]": "[N/A]" if power is None else unit(f"{power:.2f}", "W"),
        "power.max_limit [W]": unit("350.00", "W"), "temperature.gpu": "55",
    }[field]


def nvidia_smi(fields=FULL, powers=POWERS, units=True, header=True, gpus=(0,), extra_power=0.0) -> list[str]:
    """The lines nvidia-smi writes with --query-gpu=<fields> --format=csv[,nounits][,noheader] -l 1."""
    lines = [", ".join(fields)] if header else []
    for i, power in enumerate(powers):
        for gpu in gpus:
            watts = None if power is None else power + gpu * extra_power
            lines.append(", ".join(value(f, i, watts, units, gpu) for f in fields))
    return lines


def write(src, lines, stamp_=STAMP, env="workstation", arch="vgg16", raw_bytes=None):
    folder = src / env / arch
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"gpu-power-{stamp_}.csv"
    if raw_bytes is not None:
        path.write_bytes(raw_bytes)
    else:
        path.write_text("\n".join(lines) + "\n")
    return path


def imported_energy(tmp_path, lines, trim=0, **kwargs):
    """(GPU energy J, duration s, the processed row) of the one run imported from `lines` and aggregated."""
    src, raw = tmp_path / "src", tmp_path / "metrics" / "raw"
    write(src, lines, **kwargs)
    result = import_legacy(src, raw, trim_samples=trim)
    assert result.failed == [] and len(result.imported) == 1
    aggregated = aggregate(raw, tmp_path / "metrics", ENVIRONMENTS, Limits())
    assert aggregated.skipped == [], aggregated.skipped
    (row,) = pd.read_parquet(aggregated.processed).to_dict("records")
    return row["gpu_energy_J"], row["duration_s"], row


@pytest.mark.parametrize("variant", ["units", "nounits", "noheader"])
def test_each_nvidia_smi_format_gives_the_hand_computed_energy(tmp_path, variant):
    lines = nvidia_smi(units=variant != "nounits", header=variant != "noheader")
    energy_J, duration_s, row = imported_energy(tmp_path, lines)
    assert energy_J == pytest.approx(350.0, rel=1e-12) and duration_s == 3.0
    assert row["gpu_energy_source"] == "integrated" and row["gpu_name"] == "NVIDIA GeForce RTX 3090"
    assert row["gpu_power_mean_W"] == pytest.approx(115.0, rel=1e-12)


def test_a_subset_of_fields_in_another_order(tmp_path):
    lines = nvidia_smi(fields=("power.draw [W]", "temperature.gpu", "timestamp"))
    energy_J, duration_s, row = imported_energy(tmp_path, lines)
    assert (energy_J, duration_s) == (pytest.approx(350.0, rel=1e-12), 3.0)
    gpu = pd.read_csv(next((tmp_path / "metrics" / "raw").glob("*/*/*/gpu.csv")))
    assert list(gpu["power_W"]) == POWERS and gpu["utilization_gpu_pct"].isna().all()
    assert list(gpu["temperature_C"]) == [55] * 4


def test_two_gpus_in_one_file(tmp_path):
    lines = nvidia_smi(fields=("timestamp", "index", "name", "power.draw [W]"), gpus=(0, 1), extra_power=-50.0)
    energy_J, duration_s, row = imported_energy(tmp_path, lines)
    # GPU 0: 350 J; GPU 1 draws 50 W less: 350 - 3 * 50 = 200 J.
    assert energy_J == pytest.approx(550.0, rel=1e-12) and duration_s == 3.0 and row["gpu_count"] == 2


def test_not_available_values_are_missing_samples_not_zero_watts(tmp_path):
    lines = nvidia_smi(powers=[100.0, None, 130.0, 120.0])
    lines[2] = lines[2].replace("23 %", "[Not Supported]")
    energy_J, duration_s, _ = imported_energy(tmp_path, lines)
    assert energy_J == pytest.approx((100 + 130) / 2 * 2 + (130 + 120) / 2, rel=1e-12)  # 355 J
    assert duration_s == 3.0


TEN = [100.0, 101.0, 102.0, 100.0, 110.0, 130.0, 120.0, 103.0, 104.0, 105.0]


@pytest.mark.parametrize("cut", ["mid-value", "after-timestamp", "after-timestamp-and-separator"])
def test_a_cut_last_line_counts_as_one_of_the_trimmed_lines_as_in_the_original(tmp_path, cut):
    """The original's pandas read (skiprows=3, skipfooter=3) saw 11 lines of samples, the last one cut: it kept the
    4th to the 8th line. ect keeps the same five samples: 100, 110, 130, 120, 103 W."""
    lines = nvidia_smi(powers=TEN)
    last = value("timestamp", 10, 0, True)
    lines.append({"mid-value": ", ".join(nvidia_smi(powers=TEN + [140.0])[-1].split(", ")[:6]) + ", 14",
                  "after-timestamp": last, "after-timestamp-and-separator": last + ", "}[cut])
    energy_J, duration_s, _ = imported_energy(tmp_path, lines, trim=3)
    assert duration_s == 4.0
    assert energy_J == pytest.approx((100 + 110) / 2 + (110 + 130) / 2 + (130 + 120) / 2 + (120 + 103) / 2, rel=1e-12)
    notes = json.loads(next((tmp_path / "metrics" / "raw").glob("*/*/*/manifest.json")).read_text())["legacy"]["notes"]
    assert any("the cut last line counted as one of them" in note and "kept 5 of 11" in note for note in notes)


def test_one_unreadable_file_is_reported_and_the_good_ones_imported(tmp_path):
    src, raw = tmp_path / "src", tmp_path / "raw"
    write(src, nvidia_smi(), stamp_="20230308T100000")
    bad = write(src, [], stamp_="20230308T110000", raw_bytes=b"\xff\xfe\x00garbage\x00\x9c")
    write(src, nvidia_smi(units=False), stamp_="20230308T120000")
    with log_lines() as lines:
        result = import_legacy(src, raw, trim_samples=0)
    assert [run.name for run in result.imported] == ["legacy-20230308T100000", "legacy-20230308T120000"]
    (failure,) = result.failed
    assert str(bad) in failure
    assert "2 runs imported" in lines[-1] and "1 failed" in lines[-1]
    cli = run_ect("import-legacy", str(src), str(tmp_path / "raw-cli"), "--trim-samples", "0", cwd=tmp_path)
    assert cli.returncode == 1 and f"error: not imported: {bad}" in cli.stdout and "1 failed" in cli.stdout


def model_metrics_frame(rows):
    columns = ["split number", "training size", "validation size", "batch size", "GFLOPs", "accuracy", "precision",
               "recall", "AUC", "trained epochs", "total seen images", "f1-score"]
    index = pd.MultiIndex.from_tuples([row[:3] for row in rows], names=["train_environment", "architecture", "run"])
    return pd.DataFrame([row[3:] for row in rows], index=index, columns=columns)


def test_the_originals_model_metrics_become_the_runs_metrics_and_reach_the_processed_dataset(tmp_path):
    src, raw = tmp_path / "src", tmp_path / "metrics" / "raw"
    write(src, nvidia_smi(), stamp_="20230308T100000")
    write(src, nvidia_smi(), stamp_="20230308T120000")
    metrics_file = tmp_path / "model_metrics.parquet"
    model_metrics_frame([
        ("workstation", "vgg16", 0, 0, 2800, 1200, 32, 15.5, 0.91, 0.9, 0.88, 0.95, 42, 168000, 0.89),
        ("workstation", "vgg16", 1, 0, 2800, 1200, 32, 15.5, 0.93, 0.92, 0.9, 0.96, 40, 160000, 0.91),
        ("cloud", "vgg16", 0, 0, 2800, 1200, 32, 15.5, 0.9, 0.9, 0.9, 0.9, 10, 40000, 0.9),  # no such import
    ]).to_parquet(metrics_file)
    with log_lines() as lines:
        result = import_legacy(src, raw, trim_samples=0, model_metrics=metrics_file)
    assert result.failed == []
    first = json.loads((result.imported[0] / "metrics.json").read_text())
    assert first["val_f1"] == 0.89 and first["val_auc"] == 0.95 and first["gflops"] == 15.5
    assert first["images_seen"] == 168000 and first["trained_epochs"] == 42 and first["train_images"] == 2800
    assert any(line == "warning: model metrics: no imported run for cloud/vgg16 run 0" for line in lines)
    assert any("2 run(s) given a metrics.json, 1 row(s) without an imported run" in line for line in lines)

    runs = pd.read_parquet(aggregate(raw, tmp_path / "metrics", ENVIRONMENTS, Limits()).processed)
    assert list(runs["val_f1"]) == [0.89, 0.91]
    assert list(runs["energy_per_image_J"]) == pytest.approx([350.0 / 168000, 350.0 / 160000], rel=1e-12)
