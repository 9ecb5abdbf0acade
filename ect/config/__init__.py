"""Typed, validated configuration: config/*.yaml, profiles, ECT_* variables, command-line overrides, secrets."""

from ect.config.loader import Config, available_profiles, load_config, project_root
from ect.config.secrets import MlflowSecrets, load_secrets
from ect.config.settings import Base, Environment, Experiment, Resources

__all__ = [
    "Base", "Config", "Environment", "Experiment", "MlflowSecrets", "Resources",
    "available_profiles", "load_config", "load_secrets", "project_root",
]
