"""Results pushed to a Prometheus Pushgateway (PROMETHEUS_PUSHGATEWAY), for Grafana dashboards and alerts.

After each aggregation, the latest campaign of every environment in the processed dataset, one series per run:
    ect_run_energy_joules, ect_run_duration_seconds, ect_run_gpu_power_watts, ect_run_emissions_grams_co2e
    {environment, architecture, backend, campaign, run}
After each regression check, its verdicts, one series per architecture and backend of the latest campaign:
    ect_regression_verdict{environment, architecture, backend, campaign, verdict} 1 for the verdict, 0 for the others
    ect_regression_change_ratio{environment, architecture, backend, campaign} latest median / baseline median
The backend is the run's Keras backend (tensorflow for runs from before backends were a choice).

Grouping key: job (ect_runs, ect_regression) and environment. Each push is a PUT (push_to_gateway), which replaces
the whole group: an environment's group then holds exactly its latest campaign as the processed dataset has it (a
retried run's values replace the earlier ones; a new campaign replaces the previous one), and the groups of other
environments are left alone. pushadd (POST) would replace only the metric names that have series in the push, so a
metric without any value in the new campaign (GPU power of a CPU-only campaign, a change ratio without baseline)
would keep the previous campaign's series. A group per campaign
is deliberately not used: the Pushgateway keeps every group forever, so the gateway would grow without end and every
query summing over campaigns would count old runs; the history is Prometheus's, which scrapes the gateway and sees
one step per campaign.

A push never fails the step: the results are already in files. A gateway that is down or answers an error is
logged as a warning naming it and the error, and the next aggregation or check pushes again.
"""

from __future__ import annotations

import http.client
import logging

import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from ect.analysis.regression import campaign_order
from ect.analysis.stats import with_backend
from ect.backends import DEFAULT_BACKEND
from ect.masking import mask, masked_url, url_secrets

log = logging.getLogger(__name__)

TIMEOUT_S = 10
RUNS_JOB = "ect_runs"
REGRESSION_JOB = "ect_regression"
VERDICTS = ("regression", "no regression", "inconclusive", "no baseline")
# Gauge name, help, processed column.
RUN_METRICS = (
    ("ect_run_energy_joules", "Energy of the run's measurement window (GPU, CPU and DRAM), in J.", "total_energy_J"),
    ("ect_run_duration_seconds", "Duration of the run's measurement window, in s.", "duration_s"),
    ("ect_run_gpu_power_watts", "Mean GPU power over the run's measurement window, in W.", "gpu_power_mean_W"),
    ("ect_run_emissions_grams_co2e", "Emissions of the run's energy (the environment's PUE and carbon intensity), "
                                     "in gCO2e.", "emissions_gCO2e"),
)
RUN_LABELS = ("environment", "architecture", "backend", "campaign", "run")


def push_latest_campaigns(gateway: str, runs: pd.DataFrame) -> list[str]:
    """Pushes the latest campaign of each environment in `runs` (the processed dataset); returns the environments
    pushed. A value that is missing (e.g. no GPU power on a CPU-only run) is left out, not pushed as NaN."""
    pushed = []
    runs = with_backend(runs)
    for environment in sorted(set(runs["environment"])):
        campaign = campaign_order(runs, environment)[-1]
        latest = runs[(runs["environment"] == environment) & (runs["campaign_id"] == campaign)]
        registry = CollectorRegistry()
        gauges = [(Gauge(name, doc, RUN_LABELS, registry=registry), column) for name, doc, column in RUN_METRICS]
        for row in latest.itertuples(index=False):
            labels = (environment, row.architecture, row.backend, campaign, row.run_id)
            for gauge, column in gauges:
                value = getattr(row, column)
                if pd.notna(value):
                    gauge.labels(*labels).set(float(value))
        what = f"{len(latest)} run(s) of campaign {campaign} of environment {environment}"
        if _push(gateway, RUNS_JOB, environment, registry, what):
            pushed.append(environment)
    return pushed


def push_verdicts(gateway: str, result: dict) -> bool:
    """Pushes the verdicts of a regression check (the result of ect.analysis.regression.check_regressions);
    False when there were none (no aggregated run of the environment yet) or the push failed."""
    environment, campaign = result["environment"], result.get("latest_campaign")
    if campaign is None:
        return False
    registry = CollectorRegistry()
    verdict = Gauge("ect_regression_verdict", "1 for the regression verdict of the architecture on its backend in the "
                    "latest campaign, 0 for the other verdicts.",
                    ("environment", "architecture", "backend", "campaign", "verdict"), registry=registry)
    ratio = Gauge("ect_regression_change_ratio", "Median energy of the latest campaign / median of the baseline "
                  "campaigns' medians (absent without a baseline).",
                  ("environment", "architecture", "backend", "campaign"), registry=registry)
    for key, check in result["architectures"].items():
        # A result keyed by architecture alone (TensorFlow only, or from before backends) names neither field.
        series = (environment, check.get("architecture", key), check.get("backend", DEFAULT_BACKEND), campaign)
        for name in VERDICTS:
            verdict.labels(*series, name).set(1.0 if check["status"] == name else 0.0)
        if check["relative_change"] is not None:
            ratio.labels(*series).set(1 + check["relative_change"])
    what = f"regression verdicts of campaign {campaign} of environment {environment}"
    return _push(gateway, REGRESSION_JOB, environment, registry, what)


def _push(gateway: str, job: str, environment: str, registry: CollectorRegistry, what: str) -> bool:
    shown = masked_url(gateway)
    try:
        push_to_gateway(gateway, job, registry, grouping_key={"environment": environment}, timeout=TIMEOUT_S)
    except (OSError, http.client.HTTPException) as error:
        log.warning(f"Prometheus Pushgateway {shown}: could not push the {what}: {type(error).__name__}: "
                    f"{mask(error, url_secrets(gateway))} (the results are in the files; the next aggregation or "
                    "regression check pushes again)")
        return False
    log.info(f"Prometheus Pushgateway {shown}: pushed the {what}")
    return True
