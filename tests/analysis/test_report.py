"""ect analyze: the report (JSON, Markdown, HTML with figures) on processed datasets, seen in a real browser;
the Airflow UI plugin that serves it; the regression check from the command line."""

import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, run_ect
from ect import __version__
from ect.analysis.regression import campaign_key

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = REPO / ".home" / "test-artifacts"


def processed_runs(seed=0, campaigns=6, increase=None, repetitions=1) -> pd.DataFrame:
    """A processed dataset: 2 environments x 3 architectures x `campaigns` nightly runs of `repetitions` each, known
    medians."""
    rng = np.random.default_rng(seed)
    rows = []
    for env, factor in (("local", 1.0), ("cloud", 1.3)):
        for arch, median_J, gflops in (("vgg16", 400e3, 15.5), ("resnet50", 300e3, 4.1), ("mobilenet_v2", 100e3, 0.3)):
            for night, repetition in [(n, r) for n in range(campaigns) for r in range(repetitions)]:
                energy = median_J * factor * rng.lognormal(0, 0.02)
                if increase and night == campaigns - 1 and (env, arch) == increase:
                    energy *= 1.10
                rows.append({
                    "environment": env, "architecture": arch, "run_id": f"night{night}-rep{repetition:02d}",
                    "campaign_id": f"night{night}", "start": pd.Timestamp("2026-11-01", tz="UTC") + pd.Timedelta(days=night),
                    "duration_s": energy / 250, "total_energy_J": energy, "energy_kWh": energy / 3.6e6,
                    "emissions_gCO2e": energy / 3.6e6 * 232, "energy_per_image_J": energy / 1e4,
                    "val_f1": 0.8 + (0.05 if arch == "vgg16" else 0) + rng.normal(0, 0.01),
                    "gpu_utilization_mean_pct": 60 + rng.normal(0, 2), "gflops": gflops,
                    "gpu_energy_source": "counter", "cpu_energy_source": "counter",
                })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from ect.analysis.report import write_report

    out = tmp_path_factory.mktemp("report")
    return out, write_report(processed_runs(), out, "Energy of the nightly runs")


def test_results_have_the_papers_statistics(report):
    out, paths = report
    results = json.loads((out / "results.json").read_text())
    local = results["by_environment"]["local"]["metrics"]["total_energy_J"]
    assert local["kruskal_wallis"]["significant"] and len(local["dunn"]) == 3
    extreme = next(c for c in local["cliffs_delta"] if {c["a"], c["b"]} == {"mobilenet_v2", "vgg16"})
    assert abs(extreme["delta"]) == 1.0 and extreme["magnitude"] == "large"
    largest = results["energy_reduction"]["largest"]
    assert (largest["from"], largest["to"]) == ("vgg16@cloud", "mobilenet_v2@local")
    assert [g["group"] for g in results["pareto_front"]][0] == "mobilenet_v2@local"


def test_markdown_report_has_tables_and_figures(report):
    out, paths = report
    markdown = (out / "report.md").read_text()
    assert "| Environment | Architecture | Runs | Median energy (kJ) | Median energy (Wh) |" in markdown
    assert markdown.index("## Findings") < markdown.index("## Energy per architecture and environment")
    assert "Largest reduction of the median energy: " in markdown and "% interval" in markdown
    assert "On local, mobilenet_v2 costs the least energy per run" in markdown
    assert f"by ect {__version__} after DAG run night5" in markdown and "keep every digit" in markdown
    cells = [cell.strip() for line in markdown.splitlines() if line.startswith("| ") for cell in line.split("|")]
    numbers = [c for c in cells if re.fullmatch(r"-?[\d.]+(e[-+]?\d+)?", c)]
    assert numbers and all(significant_digits(n) <= 4 for n in numbers), [n for n in numbers if significant_digits(n) > 4]
    for figure in ("energy_boxplot", "median_energy", "pareto", "energy_vs_gflops"):
        assert f"(figures/{figure}.png)" in markdown and (out / "figures" / f"{figure}.png").stat().st_size > 5000


def significant_digits(number: str) -> int:
    return len(number.lstrip("-").lower().split("e")[0].replace(".", "").lstrip("0")) or 1


def test_statistics_at_one_run_per_group_say_not_tested_and_leave_no_field_empty(tmp_path):
    from ect.analysis.report import write_report

    write_report(processed_runs(campaigns=1), tmp_path, "One run each")
    markdown = (tmp_path / "report.md").read_text()
    assert "Kruskal-Wallis not tested: n = 1 per group (needs >= 3); Levene not tested: n = 1 per group" in markdown
    assert "Dunn's pairwise test and Cliff's delta not tested" in markdown
    assert "H = ," not in markdown and "p = ," not in markdown and "| |" not in markdown
    assert "no interval: n = 1 and 1 runs (needs >= 3 each)" in markdown


def test_a_report_without_f1_says_why_there_is_no_pareto_plot(tmp_path):
    from ect.analysis.report import write_report

    paths = write_report(processed_runs().assign(val_f1=np.nan), tmp_path, "No F1")
    assert "No Pareto front: no run has a validation F1" in (tmp_path / "report.md").read_text()
    assert not (tmp_path / "figures" / "pareto.png").exists() and paths["html"]


def test_a_report_flags_models_that_predict_one_class_and_leaves_them_off_the_pareto_front(tmp_path):
    from ect.analysis.report import write_report

    runs = processed_runs(repetitions=2).assign(val_accuracy=0.85, val_precision=0.85, val_recall=0.85)
    # mobilenet_v2 on local, the cheapest, calls every image positive: accuracy 0.5, F1 0.667.
    one_class = (runs["architecture"] == "mobilenet_v2") & (runs["environment"] == "local")
    runs.loc[one_class, ["val_accuracy", "val_precision", "val_recall", "val_f1"]] = [0.5, 0.5, 1.0, 2 / 3]
    write_report(runs, tmp_path, "One class")
    results = json.loads((tmp_path / "results.json").read_text())
    assert len(results["one_class_models"]) == one_class.sum() == 12
    assert "mobilenet_v2@local" not in [g["group"] for g in results["pareto_front"]]
    markdown = (tmp_path / "report.md").read_text()
    assert ("12 run(s) predicted one class: their accuracy and F1 say nothing of quality; left out of the Pareto "
            "front and the F1 statistics: mobilenet_v2 on local (12 of 12 runs).") in markdown
    assert "validation recall 1 and precision 0.5 = accuracy: every validation image called positive" in markdown
    summary = next(line for line in markdown.splitlines() if line.startswith("| local | mobilenet_v2 |"))
    assert summary.split("|")[9].strip() == "–"  # its median F1: none that says anything
    pareto = (tmp_path / "figures" / "pareto.png").read_bytes()
    assert pareto[:8] == b"\x89PNG\r\n\x1a\n"

    everyone = runs.assign(val_accuracy=0.5, val_precision=0.5, val_recall=1.0, val_f1=2 / 3)
    write_report(everyone, tmp_path / "all", "All one class")
    assert "No Pareto front: every run with a validation F1 predicted one class." in (
        tmp_path / "all" / "report.md").read_text()


@pytest.mark.browser
def test_html_report_shows_its_figures_and_tables_in_a_headless_browser(report, tmp_path):
    assert BROWSER, "chromium is not installed (.ci/run installs it)"
    out, paths = report
    page = (out / "report.html").read_text()
    # Reports, once the page has loaded in a 1280 x 900 window: its tables, the rendered width of every image, whether
    # the page scrolls sideways and the most significant digits of any number in a table.
    probe = ("<script>window.addEventListener('load', () => { const digits = t => t.replace(/^-/, '')"
             ".split(/e/i)[0].replace('.', '').replace(/^0+/, '').length; document.title = 'tables=' + "
             "document.querySelectorAll('table').length + ' scroll=' + (document.documentElement.scrollWidth - "
             "window.innerWidth) + ' digits=' + Math.max(...[...document.querySelectorAll('td')].flatMap(td => "
             "(td.textContent.match(/\\d+(?:\\.\\d+)?(?:e[-+]?\\d+)?/gi) || []).map(digits))) + ' images=' + "
             "[...document.images].map(i => i.complete ? i.naturalWidth : 0).join(','); });</script>")
    (tmp_path / "probe.html").write_text(page.replace("</body>", probe + "</body>"))
    flags = [BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--window-size=1280,900"]
    dom = subprocess.run([*flags, "--dump-dom", f"file://{tmp_path / 'probe.html'}"], capture_output=True,
                         text=True, timeout=120).stdout
    title = dom.split("<title>", 1)[1].split("</title>", 1)[0]
    probed = dict(item.split("=", 1) for item in title.split())
    widths = [int(w) for w in probed["images"].split(",")]
    assert int(probed["tables"]) >= 3 and len(widths) >= 4 and all(w > 300 for w in widths), title
    assert int(probed["scroll"]) <= 0, f"the page scrolls sideways at 1280 px: {title}"
    assert int(probed["digits"]) <= 4, f"a table number has more than 4 significant digits: {title}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)  # kept for people to look at after the run
    subprocess.run([*flags, f"--screenshot={ARTIFACTS / 'report-1280x900.png'}", f"file://{out / 'report.html'}"],
                   capture_output=True, timeout=120)
    from PIL import Image

    pixels = np.asarray(Image.open(ARTIFACTS / "report-1280x900.png").convert("L"))
    assert pixels.shape == (900, 1280) and pixels.std() > 20  # text, tables and plots, not a blank page


def test_the_airflow_plugin_lists_and_serves_the_report(report, monkeypatch):
    out, paths = report
    monkeypatch.setenv("AIRFLOW__CORE__PLUGINS_FOLDER", str(REPO / "plugins"))
    monkeypatch.setenv("ECT_OUTPUT_DIR", str(out.parent))
    from airflow import plugins_manager, settings

    # settings.PLUGINS_FOLDER is read when Airflow is first imported, maybe by an earlier test
    monkeypatch.setattr(settings, "PLUGINS_FOLDER", str(REPO / "plugins"))
    plugins_manager._get_plugins.cache_clear() if hasattr(plugins_manager._get_plugins, "cache_clear") else None
    plugins, _ = plugins_manager._get_plugins()
    (plugin,) = [p for p in plugins if p.name == "ect_reports"]
    assert plugin.external_views[0]["href"] == "/ect-reports/"
    from fastapi.testclient import TestClient

    app = plugin.fastapi_apps[0]["app"]
    module = sys.modules[plugin.__module__]
    client = TestClient(app)
    assert client.get("/").status_code == 401 and client.get(f"/{out.name}").status_code == 401  # no credentials
    # Signed in (the real auth manager's tokens are tested with a real API server, tests/dags/test_airflow.py):
    monkeypatch.setitem(app.dependency_overrides, module.signed_in, lambda: "a signed-in user")
    listing = client.get("/").text
    assert f'href="{out.name}"' in listing and "36 run(s); largest reduction 80.39 %" in listing
    served = client.get(f"/{out.name}")
    assert served.status_code == 200 and "Energy of the nightly runs" in served.text and "<img" in served.text
    assert client.get("/nothing").status_code == 404


def test_with_a_run_store_the_report_page_serves_the_stores_reports(report, s3_url, monkeypatch):
    """The API server reads the reports every worker pushed to the store (credentials: its AWS_* variables)."""
    from ect.store import RunStore

    out, _ = report
    store = RunStore(s3_url)
    for path in (out / "report.html", out / "results.json"):
        store.push(path, f"reports/cloud/{path.name}")
    monkeypatch.setenv("ECT_RUN_STORE", s3_url)
    monkeypatch.setenv("ECT_OUTPUT_DIR", str(out.parent / "nothing-here"))
    from fastapi.testclient import TestClient

    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    import ect_reports

    monkeypatch.setitem(ect_reports.reports_app.dependency_overrides, ect_reports.signed_in, lambda: "signed in")
    client = TestClient(ect_reports.reports_app)
    assert 'href="cloud"' in client.get("/").text
    served = client.get("/cloud")
    assert served.status_code == 200 and "Energy of the nightly runs" in served.text
    assert client.get("/local").status_code == 404


def test_a_browser_without_a_session_is_sent_to_airflows_login(monkeypatch):
    from airflow.api_fastapi.app import create_auth_manager
    from fastapi.testclient import TestClient

    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    import ect_reports

    create_auth_manager()  # what the API server does at start
    client = TestClient(ect_reports.reports_app, follow_redirects=False)
    page = client.get("/local", headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status_code == 307 and "/login" in page.headers["location"] and "next=" in page.headers["location"]
    assert client.get("/local", headers={"Authorization": "Bearer not-a-token"}).status_code in (401, 403)


def test_the_report_page_serves_no_api_docs_with_or_without_a_session(monkeypatch, tmp_path):
    """FastAPI's /docs, /redoc and /openapi.json are served outside the app's dependencies, i.e. to anyone: they are
    off. Without a session they are refused as any page; signed in they are reports that do not exist."""
    from airflow.api_fastapi.app import create_auth_manager
    from fastapi.testclient import TestClient

    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    monkeypatch.setenv("ECT_OUTPUT_DIR", str(tmp_path))
    import ect_reports

    app = ect_reports.reports_app
    assert (app.docs_url, app.redoc_url, app.openapi_url) == (None, None, None)
    create_auth_manager()
    client = TestClient(app, follow_redirects=False)
    docs = ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect")
    for path in docs:
        answer = client.get(path)
        assert answer.status_code in (401, 403, 404), (path, answer.status_code)
        assert "swagger" not in answer.text.lower() and '"paths"' not in answer.text, path
    monkeypatch.setitem(app.dependency_overrides, ect_reports.signed_in, lambda: "signed in")
    for path in docs:
        answer = client.get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert "swagger" not in answer.text.lower() and '"paths"' not in answer.text, path


def test_the_report_page_neither_lists_nor_serves_a_report_that_is_a_link(report, monkeypatch, tmp_path):
    """OUTPUT_DIR/<name> or its report.html linked to another file of the API server: not listed, 404, never its
    content; a linked results.json is not read either."""
    from fastapi.testclient import TestClient

    out, _ = report
    marker = "ect-secret-marker-77a0"
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_text(f"root:x:0:0:{marker}:/root:/bin/bash\n")
    (secret / "report.html").write_text(f"<html>{marker}</html>")
    (secret / "results.json").write_text(json.dumps({"n_runs": marker}))
    output = tmp_path / "out"
    shutil.copytree(out, output / "cloud")
    shutil.copytree(out, output / "local")
    (output / "local" / "results.json").unlink()
    (output / "local" / "results.json").symlink_to(secret / "results.json")
    (output / "linked_folder").symlink_to(secret, target_is_directory=True)
    (output / "linked_file").mkdir()
    (output / "linked_file" / "report.html").symlink_to(secret / "passwd")
    monkeypatch.setenv("ECT_OUTPUT_DIR", str(output))
    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    import ect_reports

    monkeypatch.setitem(ect_reports.reports_app.dependency_overrides, ect_reports.signed_in, lambda: "signed in")
    client = TestClient(ect_reports.reports_app)
    listing = client.get("/").text
    assert 'href="cloud"' in listing and 'href="local"' in listing and "36 run(s)" in listing
    assert "linked_folder" not in listing and "linked_file" not in listing and marker not in listing
    assert client.get("/cloud").status_code == 200 and client.get("/local").status_code == 200
    for name in ("linked_folder", "linked_file"):
        answer = client.get(f"/{name}")
        assert answer.status_code == 404 and marker not in answer.text


def processed_project(tmp_path, runs: pd.DataFrame) -> dict:
    """The environment of `ect` commands on a processed dataset of these runs (METRICS_DIR and OUTPUT_DIR in tmp)."""
    metrics = tmp_path / "metrics"
    (metrics / "processed").mkdir(parents=True, exist_ok=True)
    runs.to_parquet(metrics / "processed" / "runs.parquet")
    return {"ECT_HOME": str(REPO), "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}


def test_cli_analyze_and_check_regression(tmp_path):
    env = processed_project(tmp_path, processed_runs(increase=("local", "vgg16"), repetitions=5))
    analyzed = run_ect("analyze", "--environment", "local", cwd=tmp_path, env=env)
    assert analyzed.returncode == 0, analyzed.stderr
    assert analyzed.stdout.splitlines()[0].split() == ["environment", "architecture", "runs", "median", "kJ",
                                                       "median", "Wh", "gCO2e", "F1"]
    vgg16 = next(line for line in analyzed.stdout.splitlines() if line.startswith("local") and "vgg16" in line)
    assert vgg16.split()[2] == "30" and all(len(v.replace(".", "").lstrip("0")) <= 4 for v in vgg16.split()[3:])
    page = (tmp_path / "out" / "local" / "report.html").read_text()
    # The footer names where the full-precision runs are: the processed dataset, not the interim samples.
    footer = re.search(r"<footer>(.*)</footer>", page).group(1)
    assert f"the processed runs ({tmp_path / 'metrics' / 'processed' / 'runs.parquet'}) keep every digit" in footer
    assert "interim" not in footer
    checked = run_ect("check-regression", "local", cwd=tmp_path, env=env)
    assert checked.returncode == 1 and "vgg16: +" in checked.stderr and " %" in checked.stderr
    lines = {line.split()[1]: line for line in checked.stdout.splitlines() if line.startswith("local ")}
    assert lines["vgg16"].endswith(" regression") and not lines["vgg16"].endswith("no regression")
    assert lines["resnet50"].endswith("no regression") and lines["mobilenet_v2"].endswith("no regression")
    assert "vgg16: 96.7 % interval of the change" in checked.stdout
    # Lists read as text, never as Python's ['a', 'b'].
    assert "regressions: vgg16; inconclusive: none (latest campaign night5)" in checked.stdout + checked.stderr
    assert "['" not in checked.stdout + checked.stderr
    result = json.loads((tmp_path / "out" / "local" / "regression.json").read_text())
    assert result["regressions"] == ["vgg16"] and (tmp_path / "out" / "local" / "trend.png").exists()
    clean = run_ect("check-regression", "cloud", cwd=tmp_path, env=env)
    assert clean.returncode == 0 and "no energy regression on cloud" in clean.stdout


def test_an_empty_processed_dataset_gives_a_report_that_says_so(tmp_path):
    from ect.analysis.report import write_report

    empty = processed_runs().iloc[0:0]
    write_report(empty, tmp_path, "Nothing yet")
    assert "No aggregated run yet" in (tmp_path / "report.html").read_text()
    assert json.loads((tmp_path / "results.json").read_text())["n_runs"] == 0


def test_compare_two_campaigns_in_the_terminal_and_as_a_report(tmp_path):
    env = processed_project(tmp_path, processed_runs(increase=("local", "vgg16"), repetitions=10))
    compared = run_ect("compare", "night4", "night5", cwd=tmp_path, env=env)
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.splitlines()[0].split("  ")[:4] == ["Environment", "Architecture", "Runs 1st", "Runs 2nd"]
    assert "1st: the first campaign, night4\n2nd: the second campaign, night5\n" in compared.stdout
    rows = {tuple(line.split()[:2]): line for line in compared.stdout.splitlines() if line.startswith(("local", "cloud"))}
    assert len(rows) == 6
    assert rows[("local", "vgg16")].rstrip().endswith(" regression") and "no regression" not in rows[("local", "vgg16")]
    assert all(line.rstrip().endswith("no regression") for key, line in rows.items() if key != ("local", "vgg16"))
    assert "vgg16 on local: " in compared.stdout and "interval of the change" in compared.stdout
    out = tmp_path / "out" / "compare" / "night4_vs_night5"
    result = json.loads((out / "compare.json").read_text())
    assert {(r["environment"], r["architecture"], r["status"]) for r in result["comparisons"]} >= {
        ("local", "vgg16", "regression"), ("cloud", "vgg16", "no regression")}
    markdown = (out / "report.md").read_text()
    assert "| Environment | Architecture | Runs 1st | Runs 2nd | 1st (kJ) | 2nd (kJ) |" in markdown
    assert "1st: the first campaign, night4; 2nd: the second campaign, night5" in markdown
    unknown = run_ect("compare", "night4", "night9", cwd=tmp_path, env=env)
    assert unknown.returncode != 0 and "no runs of campaign 'night9'" in unknown.stderr and "night5" in unknown.stderr


def test_compare_of_dag_runs_fits_120_columns_and_says_first_and_second(tmp_path):
    first, second = "scheduled__2026-12-01T02:00:00+00:00", "scheduled__2026-12-02T02:00:00+00:00"
    runs = processed_runs(campaigns=2, repetitions=3)
    for night, dag_run in enumerate((first, second)):
        key = campaign_key(dag_run)
        at = runs["campaign_id"] == f"night{night}"
        runs.loc[at, "run_id"] = key + "-rep" + runs.loc[at, "run_id"].str[-2:]
        runs.loc[at, "campaign_id"] = key
    env = processed_project(tmp_path, runs)
    compared = run_ect("compare", first, second, cwd=tmp_path, env=env)
    assert compared.returncode == 0, compared.stderr
    lines = compared.stdout.splitlines()
    assert max(map(len, lines[:-1])) <= 120, "\n".join(line for line in lines if len(line) > 120)  # not the path
    assert f"1st: the first campaign, {first}" in lines and f"2nd: the second campaign, {second}" in lines
    text = " ".join(line.strip() for line in lines)
    # 3 runs a side: too few for a verdict, said with the campaigns' words, not the nightly check's.
    assert "needs 2 more second-campaign repetition(s) and 2 more first-campaign repetition(s): 3 second-campaign " \
           "and 3 first-campaign run(s)" in text
    assert "latest" not in compared.stdout and "baseline" not in compared.stdout


def test_each_dag_runs_report_is_kept_and_the_latest_is_linked_as_before(tmp_path):
    metrics = tmp_path / "metrics"
    (metrics / "processed").mkdir(parents=True)
    env = {"ECT_HOME": str(REPO), "ECT_METRICS_DIR": str(metrics), "ECT_OUTPUT_DIR": str(tmp_path / "out")}
    for campaigns in (5, 6):  # two nights: night4 is the latest, then night5
        processed_runs(campaigns=campaigns).to_parquet(metrics / "processed" / "runs.parquet")
        assert run_ect("analyze", "--environment", "local", cwd=tmp_path, env=env).returncode == 0
    local = tmp_path / "out" / "local"
    assert "after DAG run night5" in (local / "report.html").read_text()
    for night in ("night4", "night5"):
        kept = (local / night / "report.html").read_text()
        assert f"after DAG run {night}" in kept and (local / night / "figures" / "energy_boxplot.png").exists()
    assert not list(local.glob(".*partial"))


def test_the_report_page_headline_never_says_no_regression_before_anything_was_judged():
    from ect.analysis.report import report_headline

    verdicts = lambda *statuses: {"n_runs": 2, "regression": {"architectures": {  # noqa: E731
        f"a{i}": {"status": s} for i, s in enumerate(statuses)}}}
    assert report_headline(verdicts("no baseline", "no baseline")) == "2 run(s); regression check: 2 no baseline"
    assert report_headline(verdicts("inconclusive", "no regression")).endswith(
        "regression check: 1 inconclusive, 1 no regression")
    assert report_headline(verdicts("no regression", "no regression")).endswith("; no regression")
    assert report_headline(verdicts("regression", "inconclusive")).endswith("; regression: a0")


def two_backend_runs(jax_factor=1.4, **options) -> pd.DataFrame:
    """processed_runs on TensorFlow and the same runs on JAX (run ids <campaign>-jax-rep<KK>), jax_factor times the
    energy."""
    tensorflow = processed_runs(**options).assign(backend="tensorflow", backend_version="2.21.0")
    jax = tensorflow.assign(backend="jax", backend_version="0.10.2",
                            run_id=tensorflow["run_id"].str.replace("-rep", "-jax-rep"))
    for column in ("total_energy_J", "energy_kWh", "emissions_gCO2e", "energy_per_image_J", "duration_s"):
        jax[column] = jax[column] * jax_factor
    return pd.concat([tensorflow, jax], ignore_index=True)


def test_the_report_shows_the_backend_factor(tmp_path):
    from ect.analysis.report import write_report

    write_report(two_backend_runs(), tmp_path, "Two backends")
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["backends"] == ["jax", "tensorflow"]
    effect = results["by_backend"]["vgg16@local"]["metrics"]["total_energy_J"]
    assert effect["kruskal_wallis"]["significant"] and effect["cliffs_delta"][0]["delta"] == 1.0
    assert set(results["pareto_front_by_backend"]) == {"jax", "tensorflow"}
    markdown = (tmp_path / "report.md").read_text()
    assert "## Energy per architecture and backend" in markdown and "backend effect not tested" not in markdown
    assert ("| Environment | Architecture | Backend | Runs | Median energy (kJ) | Median F1 | Energy above the "
            "cheapest backend (%) |") in markdown
    section = markdown.split("## Energy per architecture and backend")[1].split("\n## ")[0]
    row = next(line for line in section.splitlines() if line.startswith("| local | vgg16 | jax |"))
    assert row.split("|")[7].strip() == "40"  # 1.4 times TensorFlow's energy: 40 % above the cheapest backend
    assert "| Environment | Architecture | Kruskal-Wallis p | Eta squared | Cliff's delta (energy) |" in markdown
    assert "jax vs tensorflow: 1 (large)" in markdown
    assert "vgg16 on local: tensorflow needs 28.57 % less energy per run than jax (medians; Kruskal-Wallis p" \
        in markdown
    assert "### Backend effect on vgg16@local: across backends" in markdown
    assert "### Environment local·jax: across architectures" in markdown
    assert "### The Pareto front of each backend" in markdown
    assert "by running mobilenet_v2 on local with tensorflow instead of vgg16 on cloud with jax" in markdown
    cells = [cell.strip() for line in markdown.splitlines() if line.startswith("| ") for cell in line.split("|")]
    numbers = [c for c in cells if re.fullmatch(r"-?[\d.]+(e[-+]?\d+)?", c)]
    assert all(significant_digits(n) <= 4 for n in numbers), [n for n in numbers if significant_digits(n) > 4]
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Energy per architecture and backend</h2>" in page and "<th>Backend</th>" in page


def test_a_report_of_one_backend_says_the_backend_effect_was_not_tested(tmp_path):
    from ect.analysis.report import write_report

    write_report(processed_runs(campaigns=2), tmp_path, "One backend")
    page = (tmp_path / "report.html").read_text()
    assert "<h2>Energy per architecture and backend</h2><p>One backend (tensorflow): backend effect not tested.</p>" \
        in page
    assert "<th>Backend</th>" not in page  # TensorFlow only: the tables of before
    write_report(processed_runs(campaigns=2).assign(backend="jax"), tmp_path / "jax", "JAX only")
    page = (tmp_path / "jax" / "report.html").read_text()
    assert "One backend (jax): backend effect not tested." in page and "<th>Backend</th>" in page


def test_the_regression_section_names_the_backend_of_each_verdict(tmp_path):
    from ect.analysis.regression import check_regressions
    from ect.analysis.report import write_report

    runs = two_backend_runs(campaigns=3, repetitions=5)
    regression = check_regressions(runs, "local")
    assert set(regression["architectures"]) == {f"{a}·{b}" for a in ("mobilenet_v2", "resnet50", "vgg16")
                                                for b in ("jax", "tensorflow")}
    write_report(runs[runs["environment"] == "local"], tmp_path, "Local", regression=regression)
    markdown = (tmp_path / "report.md").read_text()
    assert "| Architecture | Backend | Runs | Baseline runs | Median (kJ) |" in markdown
    assert re.search(r"\| vgg16 \| jax \| 5 \| 10 \| [\d.]+ \(uncertainty unknown\) \|", markdown)
