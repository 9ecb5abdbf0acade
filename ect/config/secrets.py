"""MLflow credentials: secrets.yaml at the project root (the original's format) or MLflow's own variables.

secrets.yaml:
    MLFLOW:
      URL: https://tracking.example.org
      USERNAME: user
      PASSWORD: pass
MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD override the file.
A missing file is not an error: only a run that needs a tracking server asks for it (require_url).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ect.config.loader import read_yaml
from ect.errors import ConfigError


@dataclass(frozen=True)
class MlflowSecrets:
    url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "none"

    def require_url(self) -> str:
        if not self.url:
            raise ConfigError(
                "MLFLOW_ENABLED is true but no tracking server is configured: set MLFLOW: URL in secrets.yaml "
                "at the project root or the MLFLOW_TRACKING_URI environment variable"
            )
        return self.url


def load_secrets(root: Path, env: Mapping[str, str] = os.environ) -> MlflowSecrets:
    path = Path(env.get("ECT_SECRETS_FILE") or root / "secrets.yaml")
    section = read_yaml(path).get("MLFLOW") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: MLFLOW: expected a mapping with URL, USERNAME and PASSWORD")
    values = {key: section.get(key) or None for key in ("URL", "USERNAME", "PASSWORD")}
    source = str(path) if any(values.values()) else "none"
    for key, variable in (("URL", "MLFLOW_TRACKING_URI"), ("USERNAME", "MLFLOW_TRACKING_USERNAME"),
                          ("PASSWORD", "MLFLOW_TRACKING_PASSWORD")):
        if env.get(variable):
            values[key], source = env[variable], "environment"
    return MlflowSecrets(values["URL"], values["USERNAME"], values["PASSWORD"], source)


def mask_url(text: str | None) -> str:
    """The text with the user:password@ part of every URL in it replaced by ***@."""
    return re.sub(r"(?<=://)[^/@\s]*@", "***@", text or "")
