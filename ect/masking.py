"""Secrets out of every message: one masker for errors, log lines and the files ect writes.

mask(text, secrets) replaces with ***
- the user-info of every URL in the text ("scheme://user:password@host" -> "scheme://***@host"), taken as everything
  between "://" and the last "@" before the URL ends, so that a password holding "/", "@" or ":" is masked whole;
- the value of every query or fragment parameter whose name says it is a credential (token, api_key, password,
  X-Amz-Signature, X-Amz-Credential, sig, ...: SECRET_PARAMETER_PARTS, case-insensitive), also in a bare path
  ("/api?token=...") or in "NAME=value" text;
- every given secret and every value of SECRET_VARIABLES in this process's environment, wherever it appears: as it
  is, percent-encoded, percent-decoded and JSON-escaped. Values shorter than MIN_SECRET_LENGTH are left to the two
  rules above (replacing them everywhere would hide those letters in every word).

url_secrets(url) gives the credentials of one configured URL, taken leniently (spaces included), for mask();
url_problem(url) says why a configured URL cannot be trusted to be parsed as its user meant (a password with an
unencoded "/", "@", "#", "?", space or non-ASCII character), so that the setting is refused instead of half-masked.
This module imports nothing of ect: every floor may use it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Iterable
from urllib.parse import quote, quote_plus, unquote, unquote_plus, urlsplit

MASK = "***"
# A query or fragment parameter holds a credential when its name, lower-cased, contains one of these: token,
# access_token, api_key, apikey, key, password, passwd, pwd, secret, signature, sig, credential, auth, session...
SECRET_PARAMETER_PARTS = ("token", "key", "pass", "pwd", "secret", "sig", "credential", "auth", "session")
# Variables of this process whose values are credentials wherever they appear (the MLflow client's, the S3 store's),
# and variables holding URLs whose credentials are.
SECRET_VARIABLES = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
URL_VARIABLES = ("MLFLOW_TRACKING_URI", "ECT_RUN_STORE", "ECT_PROMETHEUS_PUSHGATEWAY")
MIN_SECRET_LENGTH = 3
PERCENT_ENCODING_HINT = ("percent-encode the special characters of the user name and password: '/' as %2F, '@' as "
                         "%40, ':' as %3A, '#' as %23, '?' as %3F, '%' as %25, a space as %20, and non-ASCII "
                         "characters as their UTF-8 bytes (urllib.parse.quote(password, safe=''))")

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
_URL_END = re.compile(r"[\s\"'<>`]")
# NAME=value after "?", "&", ";", "#", a space, "(", "," or at the start: a parameter of a URL or of a message.
_PARAMETER = re.compile(r"(?<![^?&;#\s(,])([^=?&;#\s\"'<>()]+)=([^&;#\s\"'<>]*)")


def secret_parameter(name: str) -> bool:
    """Whether a query parameter (or NAME=value) with this name holds a credential."""
    name = unquote(name).lower()
    return any(part in name for part in SECRET_PARAMETER_PARTS)


def url_userinfo(url: str) -> str | None:
    """The user-info of the first URL in the text ("user:password"), as its authority defines it: everything between
    "://" and the last "@" before the URL ends (a space, a quote, <, >); None without one."""
    match = _SCHEME.search(url or "")
    if match is None:
        return None
    end = _URL_END.search(url, match.end())
    token = url[match.end():end.start() if end else len(url)]
    at = token.rfind("@")
    return token[:at] if at > 0 else None


def url_secrets(url: str | None) -> list[str]:
    """The credentials of one configured URL, read leniently so that a malformed one is covered too: its user-info
    (everything between "://" and the last "@", spaces included), the password in it (after the first ":") and
    the values of its secret query and fragment parameters (up to the next "&", ";" or "#")."""
    url = str(url or "").strip()
    found = []
    scheme = _SCHEME.match(url)
    if scheme:
        at = url.rfind("@", scheme.end())
        if at > scheme.end():
            userinfo = url[scheme.end():at]
            found += [userinfo, userinfo.partition(":")[2]]
            url = url[:scheme.end()] + url[at:]
    for part in re.split(r"[?#]", url)[1:]:
        for item in re.split(r"[&;]", part):
            name, sep, value = item.partition("=")
            if sep and secret_parameter(name):
                found.append(value)
    return [value for value in found if value]


def url_problem(url: str) -> str | None:
    """Why a configured URL cannot be parsed as its user meant, or None when it can (or when it is not a URL: a path).
    The reason never quotes the URL."""
    if "://" not in url:
        return None
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        return "it holds a space or a control character"
    try:
        parts = urlsplit(url)
        parts.port  # a port that is not a number raises: typically the rest of a password with "/" or "#"
    except ValueError:
        return ("its host or port does not parse (a port is a number from 0 to 65535; a '/', '#' or '?' in the "
                "password ends the host early)")
    userinfo, at, _ = parts.netloc.rpartition("@")
    after_host = url[url.index("://") + 3 + len(parts.netloc):]
    if "@" in userinfo or "@" in after_host:
        return "an '@' follows the host (an unencoded '@', '/', '#' or '?' in the password)"
    if re.search(r"%(?![0-9A-Fa-f]{2})", url):
        return "a '%' is not followed by two hexadecimal digits"
    if any(ord(character) > 127 for character in userinfo):
        return "its user name or password holds non-ASCII characters"
    return None


def secret_forms(value: str) -> set[str]:
    """A secret as it may appear in a text: as it is and percent-decoded (a password of a URL), each of them also
    percent-encoded (both ways) and JSON-escaped."""
    forms = set()
    for plain in {value, unquote(value), unquote_plus(value)}:
        forms |= {plain, quote(plain, safe=""), quote(plain), quote_plus(plain), json.dumps(plain)[1:-1]}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def environment_secrets(env=None) -> list[str]:
    """The credentials in this process's environment: SECRET_VARIABLES and those of the URLs of URL_VARIABLES."""
    env = os.environ if env is None else env
    found = [env.get(name) or "" for name in SECRET_VARIABLES]
    for name in URL_VARIABLES:
        found += url_secrets(env.get(name))
    return [value for value in found if value]


def _mask_parameters(text: str) -> str:
    return _PARAMETER.sub(lambda m: f"{m.group(1)}={MASK}" if m.group(2) and secret_parameter(m.group(1))
                          else m.group(0), text)


def mask(text, secrets: Iterable[str | None] = ()) -> str:
    """The text with every URL's user-info, every secret parameter's value, the given secrets and the environment's
    (environment_secrets) replaced by *** (see the module's docstring)."""
    text = "" if text is None else str(text)
    known = set()
    for secret in [*secrets, *environment_secrets()]:
        if secret:
            known |= secret_forms(str(secret))
    for secret in sorted(known, key=len, reverse=True):  # longest first: a secret may hold another
        text = text.replace(secret, MASK)
    out, position = [], 0
    for match in _SCHEME.finditer(text):
        if match.start() < position:
            continue
        userinfo = url_userinfo(text[match.start():])
        if userinfo:
            out.append(text[position:match.end()] + MASK)
            position = match.end() + len(userinfo)
    return _mask_parameters("".join(out) + text[position:])


def masked_url(url: str | None) -> str:
    """One configured URL fit to show: its whole user-info and its secret parameters' values masked, also when it
    does not parse (a password with a space or an unencoded "/" or "@": everything up to the last "@" goes)."""
    return mask(url, url_secrets(url))
