"""An environment's carbon intensity: its CARBON_INTENSITY_GCO2E_PER_KWH, else CodeCarbon's own data for its location
(COUNTRY_ISO_CODE, REGION, CLOUD_PROVIDER, CLOUD_REGION), else the original's 232; the location keys are checked."""

import logging
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO, log_lines
from ect.config import load_config
from ect.config.carbon import Location, _resolve, location
from ect.errors import ConfigError


def environments(project, text: str):
    (project / "config" / "environments.yaml").write_text(textwrap.dedent(text))
    return load_config(project, env={}).environments


def codecarbon_g_per_kWh(country_iso_code=None, region=None, cloud=None) -> float:
    """What CodeCarbon's own API computes for 1 kWh at that place, in gCO2e/kWh (its trackers' path)."""
    from codecarbon.core.emissions import Emissions
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import CloudMetadata, GeoMetadata
    from codecarbon.input import DataSource

    emissions = Emissions(DataSource())
    if cloud:
        return emissions.get_cloud_emissions(Energy(kWh=1.0), CloudMetadata(*cloud)) * 1000
    return emissions.get_private_infra_emissions(Energy(kWh=1.0), GeoMetadata(country_iso_code, region=region)) * 1000


def test_a_country_gets_codecarbons_intensity_for_it(project):
    from codecarbon.input import DataSource

    env = environments(project, "lab:\n  COUNTRY_ISO_CODE: fra\n")["lab"]
    assert env.country_iso_code == "FRA" and env.carbon_intensity_gco2e_per_kwh is None
    intensity, source = env.carbon_intensity()
    assert intensity == codecarbon_g_per_kWh("FRA")  # exactly CodeCarbon's figure
    assert intensity == pytest.approx(DataSource().get_global_energy_mix_data()["FRA"]["carbon_intensity"], rel=1e-12)
    assert source == "CodeCarbon 3.3.2 energy mix: FRA (country)"
    assert location(env).country_name == "France" and location(env).on_cloud == "N"


def test_a_region_and_a_cloud_region_get_codecarbons_figures(project):
    envs = environments(project, """\
        texas: {COUNTRY_ISO_CODE: USA, REGION: Texas}
        stockholm: {COUNTRY_ISO_CODE: SWE, REGION: SE3}
        madrid: {COUNTRY_ISO_CODE: ESP, REGION: madrid}
        belgium: {CLOUD_PROVIDER: GCP, CLOUD_REGION: europe-west1}
        virginia: {COUNTRY_ISO_CODE: USA, CLOUD_PROVIDER: aws, CLOUD_REGION: us-east-1}
    """)
    assert envs["texas"].carbon_intensity() == (codecarbon_g_per_kWh("USA", "texas"),
                                                "CodeCarbon 3.3.2 energy mix: USA, region texas")
    assert envs["texas"].carbon_intensity()[0] != codecarbon_g_per_kWh("USA")
    assert envs["stockholm"].carbon_intensity() == (codecarbon_g_per_kWh("SWE", "SE3"),
                                                    "CodeCarbon 3.3.2 energy mix: SWE, region se3")
    # CodeCarbon has no regional data for Spain: the country's figure, and the source says so.
    assert envs["madrid"].carbon_intensity() == (codecarbon_g_per_kWh("ESP"), "CodeCarbon 3.3.2 energy mix: ESP (country)")
    assert envs["belgium"].carbon_intensity() == (codecarbon_g_per_kWh(cloud=("gcp", "europe-west1")),
                                                  "CodeCarbon 3.3.2 cloud data: gcp europe-west1")
    assert location(envs["belgium"]) == Location("BEL", "Belgium", "St. Ghislain", "gcp", "europe-west1")
    # No cloud data for AWS in CodeCarbon: its country's figure, as CodeCarbon's trackers fall back to.
    assert envs["virginia"].carbon_intensity() == (
        codecarbon_g_per_kWh("USA"), "CodeCarbon 3.3.2 energy mix: USA (country); CodeCarbon has no cloud data for aws")
    assert location(envs["virginia"]).on_cloud == "Y"


def test_an_explicit_intensity_wins_and_no_location_keeps_the_originals(project):
    envs = environments(project, """\
        lab: {CARBON_INTENSITY_GCO2E_PER_KWH: 100, COUNTRY_ISO_CODE: FRA}
        nowhere: {PUE: 1.2}
    """)
    assert envs["lab"].carbon_intensity() == (100.0, "config/environments.yaml")
    assert envs["nowhere"].carbon_intensity() == (232.0, "default: 232 gCO2e/kWh (the original's, Spain)")
    assert location(envs["nowhere"]) == location(None) and location(None).on_cloud == "N"


@pytest.mark.parametrize("entry, expected", [
    ("COUNTRY_ISO_CODE: XYZ", "COUNTRY_ISO_CODE='XYZ': CodeCarbon 3.3.2 has no energy mix for it"),
    ("{COUNTRY_ISO_CODE: USA, REGION: texass}", "REGION='texass': CodeCarbon 3.3.2 has no regional data for it in USA"),
    ("{COUNTRY_ISO_CODE: CHN, REGION: atlantis}", "REGION='atlantis': CodeCarbon 3.3.2 has no regional data"),
    ("REGION: texas", "REGION='texas': needs COUNTRY_ISO_CODE"),
    ("CLOUD_PROVIDER: gcp", "CLOUD_PROVIDER='gcp': CLOUD_PROVIDER and CLOUD_REGION are given together"),
    ("{CLOUD_PROVIDER: gcp, CLOUD_REGION: europe-west99}", "CLOUD_REGION='europe-west99': CodeCarbon 3.3.2 has no "
                                                           "cloud data for gcp europe-west99; its gcp regions: "),
    ("{CLOUD_PROVIDER: azure, CLOUD_REGION: westeurope}", "CLOUD_PROVIDER='azure': CodeCarbon 3.3.2 has cloud carbon "
                                                          "data only for gcp: give COUNTRY_ISO_CODE"),
    ("{COUNTRY_ISO_CODE: ESP, CLOUD_PROVIDER: gcp, CLOUD_REGION: europe-west1}",
     "COUNTRY_ISO_CODE='ESP': gcp europe-west1 is in BEL"),
])
def test_a_location_codecarbon_does_not_know_is_an_error_naming_environment_key_and_value(project, entry, expected):
    env = environments(project, f"lab:\n  {entry}\n")["lab"]
    with pytest.raises(ConfigError) as error:
        env.carbon_intensity()
    assert str(error.value).startswith("config/environments.yaml: environment lab: ") and expected in str(error.value)
    with pytest.raises(ConfigError):
        location(env)  # the export checks the same


@pytest.mark.parametrize("entry, expected", [
    ("COUNTRY_ISO_CODE: FR", "COUNTRY_ISO_CODE='FR': expected an ISO 3166-1 alpha-3 country code"),
    ("COUNTRY_ISO_CODE: 724", "expected an ISO 3166-1 alpha-3"),
    ("CLOUD_PROVIDER: ovh", "CLOUD_PROVIDER='ovh': expected one of aws, azure, gcp"),
    ("CARBON_INTENSITY_GCO2E_PER_KWH: -5", "CARBON_INTENSITY_GCO2E_PER_KWH=-5: expected a finite number > 0"),
])
def test_malformed_location_values_fail_when_the_config_loads(project, entry, expected):
    (project / "config" / "environments.yaml").write_text(f"lab:\n  {entry}\n")
    with pytest.raises(ConfigError) as error:
        load_config(project, env={})
    assert "environments.yaml: environment lab" in str(error.value) and expected in str(error.value)


def test_codecarbon_stays_quiet(project, capfd):
    """Even with CodeCarbon's logger at DEBUG, a lookup writes nothing to the terminal or to ect's log."""
    env = environments(project, "lab: {COUNTRY_ISO_CODE: DEU}\n")["lab"]
    env.carbon_intensity()  # imports codecarbon, which installs its own stderr handler
    logger = logging.getLogger("codecarbon")
    level = logger.level
    logger.setLevel(logging.DEBUG)
    _resolve.cache_clear()
    capfd.readouterr()
    try:
        with log_lines() as lines:
            env.carbon_intensity()
    finally:
        logger.setLevel(level)
    captured = capfd.readouterr()
    assert (captured.out, captured.err, lines) == ("", "", [])


def test_codecarbon_is_imported_only_when_an_environment_needs_its_data(project):
    (project / "config" / "environments.yaml").write_text(textwrap.dedent("""\
        explicit: {CARBON_INTENSITY_GCO2E_PER_KWH: 100, COUNTRY_ISO_CODE: FRA}
        plain: {}
        located: {COUNTRY_ISO_CODE: FRA}
    """))
    script = textwrap.dedent(f"""\
        import sys
        from ect.config import load_config
        from ect.energy import emissions_gCO2e
        envs = load_config({str(project)!r}, env={{}}).environments
        emissions_gCO2e(1.0, envs["explicit"]), emissions_gCO2e(1.0, envs["plain"])
        print("codecarbon" in sys.modules)
        print(emissions_gCO2e(1.0, envs["located"]), "codecarbon" in sys.modules)
    """)
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", str(codecarbon_g_per_kWh("FRA")), "True"]
    assert result.stderr == ""
