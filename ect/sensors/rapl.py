"""CPU package and DRAM energy from the Linux powercap RAPL counters (Intel, and AMD on recent kernels)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ect.sensors.base import Availability, Sensor

POWERCAP_ROOT = Path("/sys/class/powercap")


def wraparound_delta(previous: int, current: int, max_range: int) -> int:
    """Energy between two readings of a counter that wraps to 0 after reaching `max_range`.

    Linux documents energy_uj as counting in [0, max_energy_range_uj]; like CodeCarbon and Zeus we add
    max_energy_range_uj on a wrap (the one-microjoule ambiguity at the wrap point is below any reading's
    resolution). A counter that wraps more than once between two reads cannot be detected: at the
    default 100 ms sampling interval a wrap takes many minutes, so it never happens.
    """
    delta = current - previous
    if delta < 0:
        delta += max_range
    return delta


def _read_int(path: Path) -> int:
    return int(path.read_text())


def find_zones(root: Path) -> list[tuple[Path, str]]:
    """(folder, name) of the package and DRAM zones at depth 1 and 2 under `root`; core, uncore, psys are skipped."""
    zones: dict[Path, tuple[Path, str]] = {}
    for name_file in sorted([*root.glob("*/name"), *root.glob("*/*/name")]):
        zone = name_file.parent
        if zone.name.startswith("intel-rapl-mmio"):
            continue  # the MMIO interface reports the same package as intel-rapl a second time
        try:
            name = name_file.read_text().strip()
        except OSError:
            continue
        if name.startswith("package") or name == "dram":
            # /sys/class/powercap lists every zone flat and also nested under its parent: count each once
            zones.setdefault(zone.resolve(), (zone, name))
    return list(zones.values())


def permission_fix(path: Path, root: Path) -> str:
    return (f"cannot read {path}: permission denied (Linux >= 5.10 lets only root read RAPL counters). "
            f"On a host: `sudo chmod a+r {root}/intel-rapl:*/energy_uj` (or a udev rule that does "
            f"it at boot); in a container: mount the counters read-only with "
            f"`-v /sys/class/powercap:/sys/class/powercap:ro` and run as a user who may read them")


@dataclass
class _Zone:
    path: Path
    name: str
    max_energy_range_uj: int
    previous_uj: int
    total_uj: int = 0


class RaplSensor(Sensor):
    """Cumulative package and DRAM energy since start(), unwrapped, summed over CPU sockets."""

    name = "rapl"
    kind = "cpu"

    def __init__(self, root: Path = POWERCAP_ROOT):
        self.root = Path(root)
        self.error: str | None = None
        self._zones: list[_Zone] = []

    def probe(self) -> Availability:
        zones = find_zones(self.root)
        names = [name for _, name in zones]
        if not any(name.startswith("package") for name in names):
            return Availability(False, f"no RAPL powercap zones under {self.root}")
        for zone, _ in zones:
            try:
                _read_int(zone / "energy_uj")
            except PermissionError:
                return Availability(False, permission_fix(zone / "energy_uj", self.root))
            except (OSError, ValueError) as error:
                return Availability(False, f"cannot read {zone / 'energy_uj'}: {error}")
        return Availability(True, f"{len(zones)} RAPL zone(s): {', '.join(names)}")

    def start(self) -> None:
        try:
            self._zones = [
                _Zone(zone, name, _read_int(zone / "max_energy_range_uj"), _read_int(zone / "energy_uj"))
                for zone, name in find_zones(self.root)
            ]
        except (OSError, ValueError) as error:
            self.error = f"RAPL failed at start: {error}"

    def read(self, boundary: bool = True) -> list[dict]:
        if self.error is not None:
            return []
        try:
            for zone in self._zones:
                current_uj = _read_int(zone.path / "energy_uj")
                zone.total_uj += wraparound_delta(zone.previous_uj, current_uj, zone.max_energy_range_uj)
                zone.previous_uj = current_uj
        except (OSError, ValueError) as error:
            self.error = f"RAPL counter unreadable mid-run: {error}"
            return []
        dram = [zone.total_uj for zone in self._zones if zone.name == "dram"]
        return [{
            "rapl_package_energy_uJ": sum(zone.total_uj for zone in self._zones if zone.name != "dram"),
            "rapl_dram_energy_uJ": sum(dram) if dram else None,
        }]

    def info(self) -> dict:
        return {"zones": [{"path": str(zone.path), "name": zone.name, "max_energy_range_uj": zone.max_energy_range_uj}
                          for zone in self._zones]}
