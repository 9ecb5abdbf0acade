"""An Airflow UI page with ect's latest energy reports: the cross-environment one and one per environment.

Mounted at /ect-reports/ on the API server and linked from the navigation as "Energy reports". With RUN_STORE the
reports are read from the run store (credentials: the API server's own AWS_* variables, or the ect_store
connection), else from OUTPUT_DIR.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from ect.analysis.report import index_page, list_reports
from ect.config import load_config
from ect.runners.credentials import use_store_credentials
from ect.store import open_store

reports_app = FastAPI(title="ect energy reports")


def _reports():
    """({name: modification time}, a reader of a report's HTML by name)."""
    use_store_credentials()
    cfg = load_config()
    store = open_store(cfg.run_store())
    if store is not None:
        return store.reports(), lambda name: store.read_text(f"reports/{name}/report.html")
    output_dir = cfg.path("OUTPUT_DIR")
    return list_reports(output_dir), lambda name: (output_dir / name / "report.html").read_text()


@reports_app.get("/", response_class=HTMLResponse)
def index() -> str:
    return index_page(_reports()[0])


@reports_app.get("/{name}", response_class=HTMLResponse)
def report(name: str) -> str:
    reports, read = _reports()
    if name not in reports:
        raise HTTPException(status_code=404, detail=f"no report {name!r}; reports: {', '.join(reports) or 'none yet'}")
    return read(name)


class EctReportsPlugin(AirflowPlugin):
    name = "ect_reports"
    fastapi_apps = [{"app": reports_app, "url_prefix": "/ect-reports", "name": "ect energy reports"}]
    external_views = [{"name": "Energy reports", "href": "/ect-reports/", "destination": "nav",
                       "url_route": "ect-reports"}]
