"""The pyarrow reader of import-legacy gives exactly what the line-by-line parser gives, and leaves every unusual
file to that parser."""

import pytest

from ect.aggregate import legacy
from ect.raw.columns import CPU_COLUMNS, GPU_COLUMNS
from test_legacy_formats import FULL, nvidia_smi, write

RENAMED = ("timestamp", "gpu_name", "gpu_usage", "gpu_memory_usage", "gpu_total_memory", "gpu_memory_used",
           "gpu_power_draw", "gpu_max_power", "gpu_temperature")


def both_readers(path, monkeypatch):
    """read_gpu_file through pyarrow, and through the line parser alone."""
    fast = legacy.read_gpu_file(path, [])
    with monkeypatch.context() as patched:
        patched.setattr(legacy, "_plain_gpu", lambda *args: None)
        slow = legacy.read_gpu_file(path, [])
    return fast, slow


def renamed(lines):
    """The original's renamed header, its ISO timestamps, no space after the commas."""
    return [",".join(RENAMED)] + [line.replace(", ", ",").replace("/", "-", 2) for line in lines[1:]]


VARIANTS = {
    "units": nvidia_smi(),
    "nounits": nvidia_smi(units=False),
    "noheader": nvidia_smi(header=False),
    "subset in another order": nvidia_smi(fields=("power.draw [W]", "temperature.gpu", "timestamp")),
    "two GPUs": nvidia_smi(fields=("timestamp", "index", "name", "power.draw [W]"), gpus=(0, 1), extra_power=-50.0),
    "not available": nvidia_smi(powers=[100.0, None, 130.0, 120.0]),
    "renamed": renamed(nvidia_smi()),
    "temperature with a unit": [line.replace(", 55", ", 55 C") for line in nvidia_smi()],
    "odd numbers": [line.replace("119.50 W", "1.195e2 W").replace("23 %", "+23.%") for line in nvidia_smi(powers=[119.5] * 4)],
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_pyarrow_and_the_line_parser_read_the_same_values(tmp_path, monkeypatch, variant):
    path = write(tmp_path, VARIANTS[variant])
    names = [legacy._field_name(f) for f in legacy._first_line(path.read_text())]
    header = not legacy._is_timestamp(names[0])
    positions = legacy.gpu_format(names if header else list(legacy.ORIGINAL_QUERY))[0]
    assert legacy._plain_gpu(path.read_text(), names if header else list(legacy.ORIGINAL_QUERY), header,
                             positions) is not None, "this variant should take the pyarrow path"
    (fast, fast_cut, fast_sources), (slow, slow_cut, slow_sources) = both_readers(path, monkeypatch)
    assert (fast_cut, fast_sources) == (slow_cut, slow_sources) == (False, slow_sources)
    for column in ("t_ms",) + GPU_COLUMNS:
        if column in fast or any(value is not None for value in slow[column]):
            assert fast[column] == slow[column], column
            assert [type(v) for v in fast[column]] == [type(v) for v in slow[column]], column  # 55 stays an int


def test_both_readers_write_the_same_files(tmp_path, monkeypatch):
    src = tmp_path / "src"
    gpu = write(src, VARIANTS["units"])
    gpu.with_name(gpu.name.replace("gpu-power", "cpu-mem-usage")).write_text(
        "timestamp,cpu usage (%),memory usage (MB),temperature (Celsius)\n"
        + "".join(f"2023-03-08T21:29:5{6 + i}.{i}23456,10{i}.5,1200{i}.125,4{i}.0\n" for i in range(4)))
    legacy.import_legacy(src, tmp_path / "fast", trim_samples=1)
    monkeypatch.setattr(legacy, "_plain_gpu", lambda *args: None)
    monkeypatch.setattr(legacy, "_plain_cpu", lambda *args: None)
    legacy.import_legacy(src, tmp_path / "slow", trim_samples=1)
    for name in ("gpu.csv", "cpu.csv"):
        fast, slow = (next((tmp_path / tree).glob(f"*/*/*/{name}")).read_text() for tree in ("fast", "slow"))
        assert fast == slow and len(fast.splitlines()) == {"gpu.csv": 3, "cpu.csv": 5}[name]
    assert "2023-03-08T21:29:56.023Z,100.5,12000.125," in fast  # microseconds truncated to ms


UNUSUAL = {
    "quoted name": lambda lines: [lines[0]] + [line.replace("NVIDIA GeForce RTX 3090", '"NVIDIA, RTX"')
                                               for line in lines[1:]],
    "cut after its timestamp": lambda lines: lines + [lines[-1].split(", ")[0]],
    "time going backwards": lambda lines: lines[:1] + lines[2:3] + lines[1:2] + lines[3:],
    "a number with a comma decimal": lambda lines: [lines[0]] + [line.replace("110.00 W", "110,00 W")
                                                                 for line in lines[1:]],
    "a word for a number": lambda lines: [lines[0]] + [line.replace("23 %", "high") for line in lines[1:]],
    "a zoned timestamp": lambda lines: [lines[0]] + [line.replace(".373", ".373+01:00", 1) for line in lines[1:]],
    "no such day": lambda lines: [lines[0]] + [line.replace("2023/03/08", "2023/02/30") for line in lines[1:]],
}


@pytest.mark.parametrize("variant", UNUSUAL)
def test_unusual_files_are_left_to_the_line_parser(tmp_path, variant):
    text = "\n".join(UNUSUAL[variant](nvidia_smi())) + "\n"
    names = [legacy._field_name(f) for f in FULL]
    assert legacy._plain_gpu(text, names, True, legacy.gpu_format(names)[0]) is None


def test_cpu_rows_match_the_line_parser_column_for_column(tmp_path):
    text = ("timestamp,cpu usage (%),memory usage (MB)\n"
            "2023-03-08 21:29:56.999999,12,100.5\n2023-03-08 21:29:57.5,None,101\n")
    fast = legacy._plain_cpu(text, legacy.CPU_HEADERS[1])
    rows, cut = legacy._parse(tmp_path, legacy._lines(text)[1:], 3, legacy._cpu_row, [])
    assert fast == legacy._as_columns(rows, ("t_ms",) + CPU_COLUMNS) and not cut
    assert fast["t_ms"] == [1678310996999, 1678310997500] and fast["process_cpu_pct"] == [12.0, None]


@pytest.mark.parametrize("name", ["NVIDIA H200", 'Tesla "V100", SXM2'])
def test_run_files_are_written_with_full_precision_and_any_name(tmp_path, name):
    """Arrow writes the run files; a value it would have to quote goes through the csv module: read back, each
    value is the one imported (floats to the last digit, missing ones empty), with csv's line ends."""
    import csv

    samples = {"t_ms": [1, 2], "timestamp": ["2023-03-08T21:00:00.001Z", "2023-03-08T21:00:00.002Z"],
               "gpu_index": [0, 0], "name": [name, name], "power_W": [0.1 + 0.2, 350.0],
               "energy_counter_mJ": [None, None], "temperature_C": [55, 56.5]}
    path = tmp_path / "gpu.csv"
    legacy._write_csv(path, GPU_COLUMNS, samples)
    assert path.read_bytes().count(b"\r\n") == 3
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(GPU_COLUMNS) and [row["name"] for row in rows] == [name, name]
    assert [float(row["power_W"]) for row in rows] == [0.1 + 0.2, 350.0]
    assert [float(row["temperature_C"]) for row in rows] == [55, 56.5]
    assert {row["energy_counter_mJ"] for row in rows} == {row["memory_used_MiB"] for row in rows} == {""}
