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


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_END = re.compile(r"[\s\"'<>]")


def url_userinfo(url: str) -> str | None:
    """The user-info of a URL ("user:password"), parsed as its authority defines it: everything between "://" and
    the last "@" before the URL ends, so that a password holding "/", "@" or ":" is taken whole; None without."""
    match = _SCHEME.search(url or "")
    if match is None:
        return None
    end = _URL_END.search(url, match.end())
    token = url[match.end():end.start() if end else len(url)]
    at = token.rfind("@")
    return token[:at] if at > 0 else None


def mask_url(text: str | None, secrets: "MlflowSecrets | None" = None) -> str:
    """The text with the user-info of every URL in it replaced by ***, each URL parsed (url_userinfo). With the
    configured secrets, also their user-info and password wherever they appear whole (a password with a space cuts a
    URL short in free text); a user name alone is never replaced (it would hide those letters everywhere)."""
    text = text or ""
    for known in _known_secrets(secrets):
        text = text.replace(known, "***")
    out, position = [], 0
    for match in _SCHEME.finditer(text):
        if match.start() < position:
            continue
        userinfo = url_userinfo(text[match.start():])
        if userinfo:
            out.append(text[position:match.end()] + "***")
            position = match.end() + len(userinfo)
    return "".join(out) + text[position:]


def _known_secrets(secrets) -> list[str]:
    if secrets is None:
        return []
    userinfo = url_userinfo(secrets.url or "")
    known = [userinfo] if userinfo else []
    if secrets.password:
        from urllib.parse import quote

        known += [secrets.password, quote(secrets.password, safe="")]
        if secrets.username:
            known.append(f"{secrets.username}:{secrets.password}")
    return sorted({k for k in known if k}, key=len, reverse=True)  # longest first
