"""`ect export --format codecarbon`: CodeCarbon 3's emissions.csv with the environments' locations, the runs' carbon
intensity from CodeCarbon's data where an environment says where it is, and CodeCarbon's own dashboard built from it."""

import dataclasses
import json
import textwrap

import pandas as pd
import pytest

from conftest import log_lines, run_ect
from ect.aggregate.aggregate import aggregate
from ect.aggregate.export import CODECARBON_COLUMNS, export_codecarbon
from ect.config import load_config
from ect.validation import Limits
from test_legacy import STAMP_A, STAMP_B, write_run

ENVIRONMENTS = """\
    cloud:   # GCP's Belgian region, CodeCarbon's cloud data
      CLOUD_PROVIDER: gcp
      CLOUD_REGION: europe-west1
      PUE: 1.1
    local:   # a workstation in France, CodeCarbon's energy mix
      COUNTRY_ISO_CODE: FRA
"""


@pytest.fixture(scope="module")
def located(tmp_path_factory, request):
    """Two imported runs per environment (cloud on GCP europe-west1, local in France), aggregated and exported."""
    import shutil

    from conftest import REPO

    root = tmp_path_factory.mktemp("located")
    project = root / "project"
    shutil.copytree(REPO / "config", project / "config")
    (project / "config" / "environments.yaml").write_text(textwrap.dedent(ENVIRONMENTS))
    cfg = load_config(project, env={})
    src, raw = root / "legacy", root / "metrics" / "raw"
    for env in ("cloud", "local"):
        for stamp in (STAMP_A, STAMP_B):
            write_run(src, stamp, env=env)
    from ect.aggregate.legacy import import_legacy

    with log_lines():
        import_legacy(src, raw)
        result = aggregate(raw, root / "metrics", cfg.environments, Limits())
    out = export_codecarbon(result.processed, root / "emissions.csv", cfg.environments)
    return project, cfg, pd.read_parquet(result.processed), out


def test_runs_record_codecarbons_intensity_and_its_source(located):
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import CloudMetadata, GeoMetadata
    from codecarbon.input import DataSource

    _, cfg, runs, _ = located
    emissions = Emissions(DataSource())
    france = emissions.get_private_infra_emissions(Energy(kWh=1.0), GeoMetadata("FRA")) * 1000
    belgium = emissions.get_cloud_emissions(Energy(kWh=1.0), CloudMetadata("gcp", "europe-west1")) * 1000
    by_env = runs.set_index("environment")
    assert set(by_env.loc["local", "carbon_intensity_gCO2e_per_kWh"]) == {france}
    assert set(by_env.loc["local", "carbon_intensity_source"]) == {"CodeCarbon 3.3.2 energy mix: FRA (country)"}
    assert set(by_env.loc["cloud", "carbon_intensity_gCO2e_per_kWh"]) == {belgium}
    assert set(by_env.loc["cloud", "carbon_intensity_source"]) == {"CodeCarbon 3.3.2 cloud data: gcp europe-west1"}
    for _, run in runs.iterrows():
        env = cfg.environments[run["environment"]]
        assert run["emissions_gCO2e"] == pytest.approx(
            run["energy_kWh"] * env.pue * run["carbon_intensity_gCO2e_per_kWh"], rel=1e-12)


def test_the_export_has_codecarbon_3s_columns_in_order_with_the_location(located):
    from codecarbon.output_methods.emissions_data import EmissionsData

    _, cfg, runs, out = located
    assert CODECARBON_COLUMNS == tuple(f.name for f in dataclasses.fields(EmissionsData))
    exported = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert tuple(exported.columns) == CODECARBON_COLUMNS and len(exported) == len(runs) == 4
    rows = exported.set_index("run_id")
    cloud, local = rows.loc[f"cloud/mobilenet_v2/legacy-{STAMP_A}"], rows.loc[f"local/mobilenet_v2/legacy-{STAMP_A}"]
    assert (cloud["country_iso_code"], cloud["country_name"], cloud["region"], cloud["cloud_provider"],
            cloud["cloud_region"], cloud["on_cloud"]) == ("BEL", "Belgium", "St. Ghislain", "gcp", "europe-west1", "Y")
    assert (local["country_iso_code"], local["country_name"], local["on_cloud"]) == ("FRA", "France", "N")
    assert pd.isna(local["region"]) and pd.isna(local["cloud_provider"]) and pd.isna(local["cloud_region"])

    run = runs.set_index("run_id").loc[f"legacy-{STAMP_A}"].set_index("environment").loc["cloud"]
    # CodeCarbon's energies and powers include the PUE; its emissions are that energy x the intensity.
    assert cloud["pue"] == 1.1
    assert cloud["energy_consumed"] == pytest.approx(run["energy_kWh"] * 1.1, rel=1e-12)
    assert cloud["gpu_energy"] == pytest.approx(run["gpu_energy_J"] / 3.6e6 * 1.1, rel=1e-12)
    assert cloud["gpu_power"] == pytest.approx(run["gpu_energy_J"] * 1.1 / run["duration_s"], rel=1e-12)
    assert cloud["emissions"] == pytest.approx(cloud["energy_consumed"] * run["carbon_intensity_gCO2e_per_kWh"] / 1000,
                                               rel=1e-12)
    assert cloud["gpu_utilization_percent"] == pytest.approx(run["gpu_utilization_mean_pct"], rel=1e-12)
    # The original's psutil log has no system CPU %: empty, as everything ect does not measure.
    for column in ("cpu_utilization_percent", "water_consumed", "wue", "ram_utilization_percent", "ram_used_gb",
                   "ram_total_size", "longitude", "latitude", "cpu_energy", "ram_energy"):
        assert exported[column].isna().all(), column


def test_the_export_command_fills_the_location_from_the_configuration(located, tmp_path):
    project, _, _, _ = located
    processed = project.parent / "metrics" / "processed" / "runs.parquet"
    result = run_ect("export", "--format", "codecarbon", "--processed", str(processed), "--out",
                     str(tmp_path / "emissions.csv"), cwd=tmp_path, env={"ECT_HOME": str(project)})
    assert result.returncode == 0, result.stderr
    exported = pd.read_csv(tmp_path / "emissions.csv")
    assert sorted(set(exported["country_iso_code"])) == ["BEL", "FRA"] and result.stderr == ""


@pytest.mark.filterwarnings("ignore:\\s*The dash_table.DataTable will be removed:DeprecationWarning")  # carbonboard's
def test_codecarbons_dashboard_renders_from_the_export(located):
    """carbonboard's app builder and every one of its callbacks, run on ect's emissions.csv (no server started)."""
    import plotly
    from codecarbon.viz.carbonboard import render_app

    _, _, _, out = located
    df = pd.read_csv(out)
    app = render_app(df)
    ids = {getattr(c, "id", None) for c in app.layout._traverse()}
    assert {"project_name", "net_power_consumption", "project_infrastructure_location", "global_emissions_choropleth",
            "cloud_emissions_barchart", "project_time_series", "project_emissions_bar_chart"} <= ids
    dropdown = next(c for c in app.layout._traverse() if getattr(c, "id", None) == "project_name")
    assert [o["value"] for o in dropdown.options] == ["ect-cloud-mobilenet_v2", "ect-local-mobilenet_v2"]

    callbacks = {entry["callback"].__wrapped__.__name__: entry["callback"].__wrapped__
                 for entry in app.callback_map.values()}
    assert len(callbacks) == 9

    def through_json(value):  # what the browser hands back to a callback
        return json.loads(json.dumps(value, cls=plotly.utils.PlotlyJSONEncoder))

    for project, place, on_cloud in (("ect-cloud-mobilenet_v2", "St. Ghislain, Belgium", "block"),
                                     ("ect-local-mobilenet_v2", "France", "none")):
        table, summary, net_energy, net_emissions, location, *_ = callbacks["update_project_data"](project)
        table, summary = through_json(table), through_json(summary)
        assert net_energy == f"{df['energy_consumed'].sum():.1f} kWh" and location.endswith(place)
        assert summary["country_iso_code"] in ("BEL", "FRA")
        assert len(callbacks["update_exemplary_equivalents"](summary)) == 6
        world, mix = callbacks["update_global_comparisons"](summary, "wind")
        assert len(world.data[0].locations) > 200 and len(mix.data) == 1
        assert callbacks["update_show_regional_comparison"](summary) == {"display": "none"}
        callbacks["update_regional_comparison_choropleth"](summary)
        series = callbacks["update_project_time_series"](table)
        assert len(series.data[0].x) == 2  # the project's two runs
        assert len(callbacks["update_project_bar_chart"](table).data[0].y) == 2
        assert callbacks["update_on_cloud"](summary) == {"display": on_cloud}
        provider, bars, _ = callbacks["update_cloud_emissions_barchart"](summary)
        if on_cloud == "block":
            assert provider == "Google Cloud Platform" and bars.data[0].x[0] == "europe-west1"
