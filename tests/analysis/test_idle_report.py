"""The report's idle baseline section: idle power and the energy above it beside the total, the hot starts."""

from test_report import processed_runs
from ect.analysis.report import write_report


def test_the_report_shows_idle_power_and_dynamic_energy_beside_the_total(tmp_path):
    runs = processed_runs(campaigns=3)
    measured = runs["campaign_id"] != "night0"  # the first night's runs were measured before idle baselines
    runs["idle_power_W"] = runs["gpu_idle_power_W"] = None
    runs["dynamic_energy_J"] = runs["start_temperature_C"] = None
    runs["hot_start"] = None
    runs.loc[measured, "gpu_idle_power_W"] = 100.0
    runs.loc[measured, "idle_power_W"] = 125.0
    runs.loc[measured, "dynamic_energy_J"] = runs["total_energy_J"] - 125.0 * runs["duration_s"]
    runs.loc[measured, "start_temperature_C"] = 36.0
    runs.loc[measured, "hot_start"] = runs.loc[measured, "campaign_id"] == "night2"
    for column in ("idle_power_W", "gpu_idle_power_W", "dynamic_energy_J", "start_temperature_C"):
        runs[column] = runs[column].astype(float)

    write_report(runs, tmp_path, "Idle")
    markdown = (tmp_path / "report.md").read_text()
    section = markdown.split("## Idle baseline and dynamic energy", 1)[1].split("\n## ", 1)[0]
    assert "Median idle power (W) | Median GPU idle power (W) | Median energy (kJ) | Median dynamic energy (kJ) | " \
           "Dynamic share (%) | Median start temperature (C) | Hot starts |" in section
    row = next(line for line in section.splitlines() if line.startswith("| local | vgg16 |"))
    local_vgg16 = runs[measured & (runs["environment"] == "local") & (runs["architecture"] == "vgg16")]
    total, dynamic = local_vgg16["total_energy_J"].median(), local_vgg16["dynamic_energy_J"].median()
    # The duration is energy / 250 W: 125 W of idle is half of it.
    assert row == (f"| local | vgg16 | 2 | 125 | 100 | {total / 1e3:.4g} | {dynamic / 1e3:.4g} | "
                   f"{100 * dynamic / total:.4g} | 36 | 1 |")
    assert f"{100 * dynamic / total:.4g}" == "50"


def test_a_report_without_idle_baselines_says_so(tmp_path):
    write_report(processed_runs(campaigns=1), tmp_path, "No idle")
    markdown = (tmp_path / "report.md").read_text()
    assert "## Idle baseline and dynamic energy\n\nNo run has an idle baseline (IDLE_BASELINE 0, or runs measured " \
           "before it): only total energy." in markdown
