"""An Airflow UI page with ect's latest energy reports: the cross-environment one and one per environment.

Mounted at /ect-reports/ on the API server and linked from the navigation as "Energy reports".
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse

from ect.analysis.report import index_page, list_reports

reports_app = FastAPI(title="ect energy reports")


@reports_app.get("/", response_class=HTMLResponse)
def index() -> str:
    return index_page(list_reports())


@reports_app.get("/{name}", response_class=HTMLResponse)
def report(name: str) -> str:
    reports = list_reports()
    if name not in reports:
        raise HTTPException(status_code=404, detail=f"no report {name!r}; reports: {', '.join(reports) or 'none yet'}")
    return reports[name].read_text()


class EctReportsPlugin(AirflowPlugin):
    name = "ect_reports"
    fastapi_apps = [{"app": reports_app, "url_prefix": "/ect-reports", "name": "ect energy reports"}]
    external_views = [{"name": "Energy reports", "href": "/ect-reports/", "destination": "nav",
                       "url_route": "ect-reports"}]
