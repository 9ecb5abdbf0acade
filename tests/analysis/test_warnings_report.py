"""The report names the runs kept with validation warnings and the checks that warned."""

from test_report import processed_runs
from ect.analysis.report import write_report


def section_of(markdown: str) -> str:
    return markdown.split("### Validation warnings", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_the_report_lists_the_runs_kept_with_warnings(tmp_path):
    runs = processed_runs(campaigns=2)
    runs["validation_warnings"], runs["validation_warning_count"] = "", 0
    hot = runs.index[(runs["campaign_id"] == "night1") & (runs["architecture"] == "vgg16")][:1]
    runs.loc[hot, "validation_warnings"] = "history.csv steady_state_long_enough; manifest.json hot_start"
    runs.loc[hot, "validation_warning_count"] = 2
    write_report(runs, tmp_path, "Warnings")
    section = section_of((tmp_path / "report.md").read_text())
    assert f"1 of {len(runs)} run(s) passed validation with warnings" in section
    (row,) = [line for line in section.splitlines() if line.startswith("| vgg16")]
    assert runs.loc[hot[0], "run_id"] in row
    assert row.endswith("| history.csv steady_state_long_enough, manifest.json hot_start |")


def test_a_report_says_when_no_run_warned_and_when_it_cannot_know(tmp_path):
    runs = processed_runs(campaigns=1)
    write_report(runs, tmp_path / "old", "Old")
    assert "Not known for these processed runs (aggregated by an older ect)" in section_of(
        (tmp_path / "old" / "report.md").read_text())
    runs["validation_warnings"], runs["validation_warning_count"] = "", 0
    write_report(runs, tmp_path / "clean", "Clean")
    assert f"None of the {len(runs)} run(s) passed with a warning." in section_of(
        (tmp_path / "clean" / "report.md").read_text())
