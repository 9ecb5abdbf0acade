"""An Airflow UI page with ect's latest energy reports: the cross-environment one and one per environment.

Mounted at /ect-reports/ on the API server and linked from the navigation as "Energy reports". Behind Airflow's own
authentication (the auth manager of the rest of the UI): the UI's session cookie or an API token (Authorization:
Bearer); without either, a browser is sent to the login page and any other client gets 401. With RUN_STORE the
reports are read from the run store (credentials: the API server's own AWS_* variables, or the ect_store
connection), else from OUTPUT_DIR. A report folder or file that is a symbolic link is neither listed nor served (its
target could be any file of the API server). FastAPI's API docs (/docs, /redoc, /openapi.json) are off.
"""

from __future__ import annotations

import json
from pathlib import Path

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.core_api.security import bearer_scheme, get_user
from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse

from ect.analysis.report import index_page, list_reports, report_headline
from ect.config import load_config
from ect.raw.atomic import LinkRefused, is_link, read_text
from ect.runners.credentials import use_store_credentials
from ect.store import open_store


async def signed_in(request: Request, credentials=Depends(bearer_scheme)):
    """The caller as Airflow's auth manager knows it (token or the UI's cookie); else the login page or 401.
    (Airflow authenticates its own API routes, not the apps plugins mount.)"""
    try:
        return await get_user(request, None, credentials)
    except HTTPException as error:
        if error.status_code == status.HTTP_401_UNAUTHORIZED and "text/html" in request.headers.get("accept", ""):
            login = get_auth_manager().get_url_login(next_url=str(request.url))
            raise HTTPException(status.HTTP_307_TEMPORARY_REDIRECT, headers={"Location": login}) from None
        raise


# No API docs: FastAPI serves them outside the app's dependencies, i.e. without authentication.
reports_app = FastAPI(title="ect energy reports", dependencies=[Depends(signed_in)], docs_url=None, redoc_url=None,
                      openapi_url=None)


def _not_linked(reports: dict[str, float], folder: Path) -> dict[str, float]:
    """The reports whose folder and report.html under `folder` (OUTPUT_DIR) are not symbolic links."""
    return {name: mtime for name, mtime in reports.items()
            if not is_link(folder / name) and not is_link(folder / name / "report.html")}


def _read_local(folder: Path, name: str, file: str) -> str:
    """A report's file, never through a symbolic link (LinkRefused)."""
    if is_link(folder / name):
        raise LinkRefused(f"{name} is a symbolic link: not read")
    return read_text(folder / name / file)


def _reports():
    """({name: modification time}, a reader of a report's file by name and file name)."""
    use_store_credentials()
    cfg = load_config()
    store = open_store(cfg.run_store())
    if store is not None:  # a folder store lists and reads no link either (ect.store)
        return store.reports(), lambda name, file="report.html": store.read_text(f"reports/{name}/{file}")
    output_dir = cfg.path("OUTPUT_DIR")
    return _not_linked(list_reports(output_dir), output_dir), \
        lambda name, file="report.html": _read_local(output_dir, name, file)


@reports_app.get("/", response_class=HTMLResponse)
def index() -> str:
    reports, read = _reports()
    headlines = {}
    for name in reports:
        try:
            headlines[name] = report_headline(json.loads(read(name, "results.json")))
        except Exception:  # a report without results.json (or unreadable) is still listed
            headlines[name] = "no results.json beside the report"
    return index_page(reports, headlines)


@reports_app.get("/{name}", response_class=HTMLResponse)
def report(name: str) -> str:
    reports, read = _reports()
    if name not in reports:
        raise HTTPException(status_code=404, detail=f"no report {name!r}; reports: {', '.join(reports) or 'none yet'}")
    try:
        return read(name)
    except (LinkRefused, FileNotFoundError):  # became a link (or went away) since the listing
        raise HTTPException(status_code=404, detail=f"no report {name!r}") from None


class EctReportsPlugin(AirflowPlugin):
    name = "ect_reports"
    fastapi_apps = [{"app": reports_app, "url_prefix": "/ect-reports", "name": "ect energy reports"}]
    external_views = [{"name": "Energy reports", "href": "/ect-reports/", "destination": "nav",
                       "url_route": "ect-reports"}]
