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

from ect.config.loader import project_root, read_yaml
from ect.errors import ConfigError
from ect.masking import PERCENT_ENCODING_HINT, mask, masked_url, url_problem, url_secrets, url_userinfo

__all__ = ["MlflowSecrets", "known_secrets", "load_secrets", "mask_url", "url_userinfo"]


@dataclass(frozen=True)
class MlflowSecrets:
    url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    source: str = "none"
    url_source: str = "MLFLOW_TRACKING_URI"  # where the URL came from, for errors

    def require_url(self) -> str:
        if not self.url:
            raise ConfigError(
                "MLFLOW_ENABLED is true but no tracking server is configured: set MLFLOW: URL in secrets.yaml "
                "at the project root or the MLFLOW_TRACKING_URI environment variable"
            )
        problem = url_problem(str(self.url))
        if problem:
            raise ConfigError(
                f"{self.url_source}: the MLflow tracking URL {masked_url(str(self.url))!r} cannot be used: {problem}; "
                f"{PERCENT_ENCODING_HINT}"
            )
        return self.url

    def secret_values(self) -> list[str]:
        """What must never be shown: the password (alone and as user:password) and the URL's credentials."""
        values = url_secrets(self.url)
        if self.password:
            values += [str(self.password), f"{self.username}:{self.password}" if self.username else ""]
        return [value for value in values if value]


def load_secrets(root: Path, env: Mapping[str, str] = os.environ) -> MlflowSecrets:
    path = Path(env.get("ECT_SECRETS_FILE") or root / "secrets.yaml")
    try:
        data = read_yaml(path)
    except ConfigError as error:  # YAML's message quotes the line at fault, which may hold the password
        if "not valid YAML" not in str(error):
            raise
        where = re.search(r"line \d+, column \d+", str(error))
        raise ConfigError(f"{path}: not a valid secrets file{f' (at {where.group(0)})' if where else ''}; expected "
                          "MLFLOW: with URL, USERNAME and PASSWORD (see README)") from None
    section = data.get("MLFLOW") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: MLFLOW: expected a mapping with URL, USERNAME and PASSWORD")
    values = {key: section.get(key) or None for key in ("URL", "USERNAME", "PASSWORD")}
    source = str(path) if any(values.values()) else "none"
    url_source = f"{path}: MLFLOW: URL"
    for key, variable in (("URL", "MLFLOW_TRACKING_URI"), ("USERNAME", "MLFLOW_TRACKING_USERNAME"),
                          ("PASSWORD", "MLFLOW_TRACKING_PASSWORD")):
        if env.get(variable):
            values[key], source = env[variable], "environment"
            url_source = f"environment variable {variable}" if key == "URL" else url_source
    return MlflowSecrets(values["URL"], values["USERNAME"], values["PASSWORD"], source, url_source)


def mask_url(text: str | None, secrets: "MlflowSecrets | None" = None) -> str:
    """The text masked (ect.masking.mask): every URL's user-info and secret parameters, and with the configured
    secrets also their password and user-info wherever they appear (a password with a space cuts a URL short in free
    text); a user name alone is never replaced (it would hide those letters everywhere)."""
    return mask(text, secrets.secret_values() if secrets is not None else ())


def known_secrets(root: Path | None = None, env: Mapping[str, str] = os.environ) -> list[str]:
    """The configured secrets of this process (secrets.yaml or MLFLOW_TRACKING_*), for masking what it prints; never
    raises (a secrets file that cannot be read gives none: its own error is reported where it is needed)."""
    try:
        return load_secrets(root or project_root(env), env).secret_values()
    except Exception:
        return []
