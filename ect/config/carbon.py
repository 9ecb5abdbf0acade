"""An environment's place in CodeCarbon's terms and, when CARBON_INTENSITY_GCO2E_PER_KWH is empty, its grid carbon
intensity from CodeCarbon's data for that place: the codecarbon package's bundled data through its own API
(`DataSource`, `Emissions`), never a copy of its files. codecarbon is imported only here and only when an environment
says where it is; each location is looked up once per process; CodeCarbon logs nothing into ours and reaches no
network (no tracker is started, no Electricity Maps token is given).

Precedence: cloud provider and region (CodeCarbon's cloud data, which has GCP's regions), else country and region
(its energy mix; regional data for US states, Canadian and Chinese provinces and Nordic bidding zones), as
CodeCarbon's own trackers do. A location CodeCarbon has no data for is a ConfigError naming the environment, the key
and the value, where CodeCarbon itself would log and fall back to the world average.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace

from ect.errors import ConfigError

SOURCE = "config/environments.yaml"
_LOCK = threading.Lock()  # one lookup at a time: CodeCarbon's caches and the silenced logger are process-wide


@dataclass(frozen=True)
class Location:
    """The location columns of CodeCarbon's emissions.csv for an environment (None: unknown)."""

    country_iso_code: str | None = None
    country_name: str | None = None
    region: str | None = None
    cloud_provider: str | None = None
    cloud_region: str | None = None

    @property
    def on_cloud(self) -> str:
        return "Y" if self.cloud_provider else "N"


class _Invalid(Exception):
    def __init__(self, key: str, value: str, why: str):
        super().__init__(f"{key}={value!r}: {why}")


@contextmanager
def _quiet():
    """CodeCarbon's logger (its own stderr handler, not propagated) silenced for the block."""
    logger = logging.getLogger("codecarbon")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


@lru_cache(maxsize=1)
def _codecarbon() -> SimpleNamespace:
    from codecarbon import __version__
    from codecarbon.core import emissions as emissions_module
    from codecarbon.core.units import Energy
    from codecarbon.external.geography import CloudMetadata, GeoMetadata
    from codecarbon.input import DataSource

    data = DataSource()
    return SimpleNamespace(version=__version__, data=data, emissions=emissions_module.Emissions(data),
                           one_kWh=Energy(kWh=1.0), nordic=emissions_module._NORDIC_REGIONS_BY_COUNTRY,
                           GeoMetadata=GeoMetadata, CloudMetadata=CloudMetadata)


def _examples(names, count: int = 12) -> str:
    names = sorted(str(n) for n in names)
    return ", ".join(names[:count]) + (f", ... ({len(names)} in all)" if len(names) > count else "")


def _known_regions(cc, geo) -> list[str] | None:
    """The regions CodeCarbon has regional data for in geo's country, as its GeoMetadata spells them (lower
    case); None where it has none for the country (it then uses the country's figure, as CodeCarbon does)."""
    country = geo.country_iso_code
    if country == "USA":
        return [r for r in cc.data.get_country_emissions_data("usa") if not r.startswith("_")]
    if country == "CAN":
        return list(cc.data.get_country_energy_mix_data("can"))
    if country in cc.nordic:
        return sorted(zone.lower() for zone in cc.nordic[country])
    if country == "CHN":
        return [name for province in cc.data.get_china_provincial_emissions_data()["data"].values()
                for name in province["names"]]
    return None


def _regional(cc, geo) -> bool:
    """Whether CodeCarbon has a regional figure for geo.region (raises _Invalid for a region it does not know in a
    country it has regions for)."""
    known = _known_regions(cc, geo)
    if known is None:
        return False
    if geo.country_iso_code == "CHN":  # CodeCarbon matches provinces by name, suffixes such as "province" dropped
        found = cc.emissions._try_get_china_province_emissions(cc.one_kWh, geo) is not None
    else:
        found = geo.region in known
    if not found:
        raise _Invalid("REGION", geo.region, f"CodeCarbon {cc.version} has no regional data for it in "
                       f"{geo.country_iso_code}; its regions there: {_examples(known)}")
    return True


@lru_cache(maxsize=None)
def _resolve(country: str | None, region: str | None, provider: str | None,
             cloud_region: str | None) -> tuple[float, str, Location]:
    """(intensity in gCO2e/kWh, its source, the location) of one place, from CodeCarbon's data."""
    if region and not country:
        raise _Invalid("REGION", region, "needs COUNTRY_ISO_CODE (the country the region is in)")
    if bool(provider) != bool(cloud_region):
        key, value = ("CLOUD_PROVIDER", provider) if provider else ("CLOUD_REGION", cloud_region)
        raise _Invalid(key, value, "CLOUD_PROVIDER and CLOUD_REGION are given together")
    cc = _codecarbon()
    mix = cc.data.get_global_energy_mix_data()
    if country and country not in mix:
        raise _Invalid("COUNTRY_ISO_CODE", country, f"CodeCarbon {cc.version} has no energy mix for it; expected an "
                       f"ISO 3166-1 alpha-3 code it knows, such as ESP, FRA, USA ({len(mix)} countries)")
    country_name = mix[country]["country_name"] if country else None

    cloud = None
    if provider:
        clouds = cc.data.get_cloud_emissions_data()
        of_provider = clouds[clouds["provider"] == provider]
        rows = of_provider[of_provider["region"] == cloud_region]
        if len(rows):
            cloud = rows.iloc[0]
        elif len(of_provider):
            raise _Invalid("CLOUD_REGION", cloud_region, f"CodeCarbon {cc.version} has no cloud data for {provider} "
                           f"{cloud_region}; its {provider} regions: {_examples(of_provider['region'])}")
        elif not country:
            raise _Invalid("CLOUD_PROVIDER", provider, f"CodeCarbon {cc.version} has cloud carbon data only for "
                           f"{', '.join(sorted(set(clouds['provider'])))}: give COUNTRY_ISO_CODE (and REGION) of "
                           f"the {provider} region's location, or CARBON_INTENSITY_GCO2E_PER_KWH")

    if cloud is not None:
        if country and country != cloud["countryIsoCode"]:
            raise _Invalid("COUNTRY_ISO_CODE", country, f"{provider} {cloud_region} is in {cloud['countryIsoCode']} "
                           f"(CodeCarbon {cc.version}'s cloud data)")
        intensity = cc.emissions.get_cloud_emissions(cc.one_kWh, cc.CloudMetadata(provider, cloud_region)) * 1000
        source = f"CodeCarbon {cc.version} cloud data: {provider} {cloud_region}"
        place = next((str(p) for p in (cloud["state"], cloud["city"]) if isinstance(p, str) and p), None)
        location = Location(cloud["countryIsoCode"], cloud["country_name"], region or place, provider, cloud_region)
        return intensity, source, location

    geo = cc.GeoMetadata(country_iso_code=country, country_name=country_name, region=region)
    regional = bool(region) and _regional(cc, geo)
    intensity = cc.emissions.get_private_infra_emissions(cc.one_kWh, geo) * 1000  # kg for 1 kWh -> g/kWh
    source = f"CodeCarbon {cc.version} energy mix: {country}" + (f", region {geo.region}" if regional else " (country)")
    if provider:
        source += f"; CodeCarbon has no cloud data for {provider}"
    return intensity, source, Location(country, country_name, region, provider, cloud_region)


def _lookup(environment) -> tuple[float, str, Location]:
    key = (environment.country_iso_code, environment.region, environment.cloud_provider, environment.cloud_region)
    try:
        with _LOCK, _quiet():
            return _resolve(*key)
    except _Invalid as error:
        raise ConfigError(f"{SOURCE}: environment {environment.name}: {error}") from None


def codecarbon_intensity(environment) -> tuple[float, str]:
    """(gCO2e/kWh, source) of a located environment from CodeCarbon's data, e.g. (56.039, "CodeCarbon 3.3.2
    energy mix: FRA (country)")."""
    intensity, source, _ = _lookup(environment)
    return intensity, source


def location(environment) -> Location:
    """The CodeCarbon location of an environment (all None for one that says nothing, or None), checked against
    CodeCarbon's data and completed from it (country name; country and place of a cloud region)."""
    if environment is None or not environment.located:
        return Location()
    return _lookup(environment)[2]
