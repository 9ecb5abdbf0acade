"""Loads the configuration in layers: command line > ECT_* environment > profile > files > defaults."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Mapping

import yaml

from ect.config.settings import SECTIONS, Base, Environment, Experiment, Resources, keys_of
from ect.errors import ConfigError, quoted, shorten
from ect.masking import mask, masked_url, url_secrets

FILES = {"base": "base.yaml", "experiment": "experiment.yaml", "resources": "resources.yaml"}
ENVIRONMENTS_FILE = "environments.yaml"
DEFAULT_ENVIRONMENTS = {
    "local": {"DESCRIPTION": "A workstation GPU, runs as a local process", "RUNNER": "process"},
    "cloud": {"DESCRIPTION": "A cloud GPU host, runs in the worker container", "RUNNER": "docker"},
}


def project_root(env: Mapping[str, str] = os.environ) -> Path:
    """ECT_HOME, else the working directory if it holds config/, else the checkout this package lives in."""
    if env.get("ECT_HOME"):
        return Path(env["ECT_HOME"]).resolve()
    cwd = Path.cwd()
    if (cwd / "config").is_dir():
        return cwd
    checkout = Path(__file__).resolve().parents[2]
    return checkout if (checkout / "config").is_dir() else cwd


# A configuration file is a few KiB of a few hundred values: far more is a mistake (or a YAML "billion laughs" whose
# aliases expand a small file into billions of values), refused before it costs time or memory.
MAX_FILE_BYTES = 1024 * 1024
MAX_VALUES = 100_000


class _ConfigLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, except that an integer with more digits than Python converts (sys.get_int_max_str_digits)
    stays text, which the setting's parser then refuses naming the key and what it expects."""

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            return self.construct_scalar(node)


_ConfigLoader.add_constructor("tag:yaml.org,2002:int", _ConfigLoader.construct_yaml_int)


def _expanded_values(node, counted: dict) -> int:
    """How many nodes `node` stands for once every alias is expanded, counting each shared node once per use
    (memoised in `counted`, so time is linear in the distinct nodes); a node that contains itself is endless."""
    if id(node) in counted:
        return counted[id(node)]
    counted[id(node)] = MAX_VALUES + 1  # while being counted: an alias to it from inside is an endless expansion
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [item for pair in node.value for item in pair]
    else:
        children = []
    total = 1
    for child in children:
        total += _expanded_values(child, counted)
        if total > MAX_VALUES:
            break
    counted[id(node)] = total
    return total


def _load_limited(path: Path, text: str):
    """The YAML document in `text`, refused (ConfigError) when its aliases expand it past MAX_VALUES values."""
    loader = _ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_values(node, {}) > MAX_VALUES:
            raise ConfigError(f"{path}: expands to more than {MAX_VALUES:,} values through its aliases (*name), or "
                              "an alias stands for the list or mapping it is in; a configuration has a few hundred "
                              "values: is it the right file?")
        return None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: Path) -> dict:
    """A YAML mapping from `path`; {} when the file is absent or empty. Files over MAX_FILE_BYTES and documents
    that expand past MAX_VALUES values are refused before they cost time or memory."""
    if not path.is_file():
        return {}
    try:
        with open(path, "rb") as handle:
            content = handle.read(MAX_FILE_BYTES + 1)
        if len(content) > MAX_FILE_BYTES:
            raise ConfigError(f"{path}: {path.stat().st_size / 2**20:.3g} MiB, more than a configuration file may "
                              f"be ({MAX_FILE_BYTES // 2**20} MiB); expected a few KiB of KEY: value lines")
        data = _load_limited(path, content.decode("utf-8"))
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {shorten(str(error))}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a configuration (lists or mappings inside each other "
                          "hundreds of levels deep)") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text ({error.reason} at byte {error.start})") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot be read ({error.strerror or error})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of KEY: value, got {type(data).__name__}")
    return data


def flatten(data: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"GPU": {"MEM_LIMIT": 1}} -> {"GPU_MEM_LIMIT": 1}. Lists and scalars are leaves."""
    flat = {}
    for key, value in data.items():
        name = f"{prefix}{str(key).upper()}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


@dataclass(frozen=True)
class Config:
    root: Path
    profile: str | None
    base: Base
    experiment: Experiment
    resources: Resources
    environments: dict[str, Environment]
    origins: dict[str, str]  # "section.KEY" -> where its value came from

    def path(self, key: str) -> Path:
        """A Base path setting as an absolute path."""
        value = Path(getattr(self.base, key.lower()))
        return value if value.is_absolute() else (self.root / value)

    def environment(self, name: str) -> Environment:
        if name not in self.environments:
            raise ConfigError(
                f"unknown environment {quoted(name)}: {self.root / 'config' / ENVIRONMENTS_FILE} "
                f"defines {', '.join(sorted(self.environments))}"
            )
        return self.environments[name]

    def backends(self, environment: str) -> tuple[str, ...]:
        """The backends a campaign of the environment trains with: BACKENDS, else the environment's BACKEND."""
        return self.experiment.backends or (self.environment(environment).backend,)

    def dataset_dir(self) -> Path:
        """The dataset folder, which must exist for anything that trains."""
        folder = self.path("DATASET_DIR")
        if not folder.is_dir():
            raise ConfigError(
                f"{self.origins['base.DATASET_DIR']}: DATASET_DIR={self.base.dataset_dir!r}: "
                f"dataset folder {folder} does not exist; expected a folder with two class sub-folders of images "
                "(create a synthetic one with `ect make-dataset DIR`)"
            )
        return folder

    def run_store(self) -> str | None:
        """RUN_STORE as a URL or an absolute path (a relative path is relative to the project root), or None."""
        store = self.base.run_store
        if store is None or "://" in store:
            return store
        path = Path(store).expanduser()
        return str(path if path.is_absolute() else self.root / path)

    def dataset_roots(self) -> list[Path]:
        """DATASET_ROOTS as absolute paths, links and .. resolved."""
        return [(Path(r) if Path(r).is_absolute() else self.root / r).resolve() for r in self.base.dataset_roots]

    def snapshot(self) -> dict:
        """Every effective setting, for run manifests (holds no secrets)."""
        sections = {name: _as_dict(getattr(self, name)) for name in SECTIONS}
        sections["environments"] = {name: _as_dict(env) for name, env in self.environments.items()}
        return {"profile": self.profile, "root": str(self.root), **sections}


def _as_dict(settings) -> dict:
    return {f.name.upper(): getattr(settings, f.name) for f in fields(settings) if "parse" in f.metadata}


def _parse(cls, values: dict[str, tuple[Any, str]], where: str, extra: dict | None = None):
    """Build `cls` from {KEY: (raw value, origin)}; unknown keys and invalid values raise ConfigError."""
    known = keys_of(cls)
    parsed, origins = dict(extra or {}), {}
    for key, (raw, origin) in values.items():
        if key not in known:
            raise ConfigError(f"{origin}: unknown key {shorten(key)} in {where}; known keys: {', '.join(known)}")
        try:
            parsed[known[key].name] = known[key].metadata["parse"](raw)
        except ValueError as error:
            # A URL's credentials never reach the message, not even those of a URL refused for not parsing.
            secrets = url_secrets(raw) if isinstance(raw, str) else []
            shown = masked_url(raw) if isinstance(raw, str) else raw
            raise ConfigError(mask(f"{origin}: {key}={quoted(shown)}: expected {error}", secrets)) from None
        origins[key] = origin
    return cls(**parsed), origins


def _section_values(section, files_data, profile_data, profile_origin, env, overrides, config_dir, override_origins):
    """Raw values of one section with their origins, lowest layer first."""
    cls = SECTIONS[section]
    known = keys_of(cls)
    values = {key: (field.default, "default") for key, field in known.items()}
    file_path = config_dir / FILES[section]
    for key, raw in flatten(files_data).items():
        values[key] = (raw, str(file_path))
    for key, raw in flatten(profile_data.get(section) or {}).items():
        values[key] = (raw, profile_origin)
    for key in known:
        if f"ECT_{key}" in env:
            values[key] = (env[f"ECT_{key}"], f"environment variable ECT_{key}")
    for key, raw in overrides.items():
        if key.upper() in known:
            values[key.upper()] = (raw, override_origins.get(key.upper(), "command line"))
    return values


def load_config(
    root: Path | str | None = None,
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] = os.environ,
    override_origins: Mapping[str, str] | None = None,
) -> Config:
    """Reads config/*.yaml under `root`, the profile (argument, else ECT_PROFILE), ECT_* variables and overrides.

    `overrides` maps setting keys (e.g. "INITIAL_EPOCHS", "DATASET_DIR") to values, as given on a command line;
    `override_origins` says where an override came from when not the command line (e.g. "trigger parameter
    'initial_epochs'"), for errors and `ect config --explain`.
    """
    root = Path(root).resolve() if root else project_root(env)
    config_dir = root / "config"
    overrides = dict(overrides or {})
    _check_override_keys(overrides)
    profile = profile or env.get("ECT_PROFILE") or None
    profile_data, profile_origin = _read_profile(config_dir, profile)

    sections, origins = {}, {}
    for section in SECTIONS:
        data = read_yaml(config_dir / FILES[section])
        values = _section_values(section, data, profile_data, profile_origin, env, overrides, config_dir,
                                 override_origins or {})
        sections[section], found = _parse(SECTIONS[section], values, config_dir / FILES[section])
        origins.update({f"{section}.{key}": origin for key, origin in found.items()})
    environments = _load_environments(config_dir / ENVIRONMENTS_FILE)
    base = sections["base"]
    for key in ("DATASET_DIR", "METRICS_DIR", "MODELS_DIR", "OUTPUT_DIR", "FIGURES_DIR"):
        if not origins[f"base.{key}"].startswith(("default", str(config_dir))):
            # Paths from the command line or the environment are relative to the working directory.
            base = replace(base, **{key.lower(): str(Path(getattr(base, key.lower())).resolve())})
    return Config(root, profile, base, sections["experiment"], sections["resources"], environments, origins)


def _check_override_keys(overrides: Mapping[str, Any]) -> None:
    known = {key for cls in SECTIONS.values() for key in keys_of(cls)}
    for key in overrides:
        if key.upper() not in known:
            raise ConfigError(f"command line: unknown setting {quoted(key)}; "
                              f"known settings: {', '.join(sorted(known))}")


def available_profiles(config_dir: Path) -> list[str]:
    return sorted(p.stem for p in (config_dir / "profiles").glob("*.yaml"))


def _read_profile(config_dir: Path, profile: str | None) -> tuple[dict, str]:
    if not profile:
        return {}, ""
    path = config_dir / "profiles" / f"{profile}.yaml"
    if not path.is_file():
        known = ", ".join(available_profiles(config_dir)) or "none"
        raise ConfigError(f"unknown profile {quoted(profile)}: {path} does not exist; available profiles: {known}")
    data = read_yaml(path)
    for section in data:
        if section not in SECTIONS:
            raise ConfigError(f"{path}: unknown section {quoted(section)}; expected {', '.join(SECTIONS)}")
    return data, f"{path} (profile {profile})"


# Environment names whose DAG id (ect_<name>) another DAG of ect has.
RESERVED_ENVIRONMENT_NAMES = {"report": "the cross-environment report DAG's"}


def _load_environments(path: Path) -> dict[str, Environment]:
    data = read_yaml(path) if path.is_file() else DEFAULT_ENVIRONMENTS
    if not data:
        raise ConfigError(f"{path}: defines no training environment; expected at least one, e.g. local:")
    environments = {}
    for name, entry in data.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}", name):
            raise ConfigError(f"{path}: environment name {quoted(name)}: expected letters, digits, '_' or '-', "
                              "starting with a letter or digit")
        if name in RESERVED_ENVIRONMENT_NAMES:
            raise ConfigError(f"{path}: environment name {name!r} is reserved: its DAG id ect_{name} is "
                              f"{RESERVED_ENVIRONMENT_NAMES[name]}; choose another name")
        if not isinstance(entry, dict):
            raise ConfigError(mask(f"{path}: environment {name}: expected a mapping of KEY: value, got {quoted(entry)}",
                                   url_secrets(str(entry))))
        values = {key: (raw, f"{path}: environment {name}") for key, raw in flatten(entry).items()}
        environments[name], _ = _parse(Environment, values, path, extra={"name": name})
    return environments
