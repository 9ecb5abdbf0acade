"""What a DAG run does with its prediction (preflight's plan: "forecast", "budget", "duration_alerts_s"): a person's
approval when it is over its energy budget and BUDGET_APPROVAL is on (Airflow's human-in-the-loop ApprovalOperator,
skipped when no approval is needed), and the duration alert of a training task."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from datetime import timedelta

from airflow.providers.standard.operators.hitl import ApprovalOperator, HITLOperator
from airflow.sdk.exceptions import AirflowSkipException

from ect.errors import BudgetExceeded
from ect.runs.forecast import DurationWatch, run_key

log = logging.getLogger(__name__)

# The key of the task context that says why ALERT_CALLBACK is called (the duration alert, a budget approval).
ALERT_REASON = "ect_alert"


def call_alert(env, context, message: str) -> None:
    """Logs `message` as a warning and calls the environment's ALERT_CALLBACK (if any) with the task context, its
    ALERT_REASON key set to the message."""
    log.warning(message)
    callback = env.alert_function()
    if callback is not None:
        context[ALERT_REASON] = message
        callback(context)


class BudgetApproval(ApprovalOperator):
    """Waits for a person to approve a DAG run whose predicted energy is over its budget (BUDGET_APPROVAL), in the
    Airflow UI (Required Actions) or through the REST API's hitlDetails; skipped when preflight found no approval
    needed. Reject stops the DAG run before any training (the task fails with BudgetExceeded, naming who rejected)."""

    def __init__(self, *, environment, timeout_h: float = 0, preflight_task_id: str = "preflight", **kwargs):
        # Unanswered for timeout_h hours (BUDGET_APPROVAL_TIMEOUT_H): the scheduler answers Reject (the defaults).
        super().__init__(subject=f"Energy budget of a DAG run of {environment.name}",
                         response_timeout=timedelta(hours=timeout_h) if timeout_h else None,
                         defaults=[self.REJECT] if timeout_h else None, **kwargs)
        self.ect_environment, self.preflight_task_id, self.timeout_h = environment, preflight_task_id, timeout_h

    def execute(self, context):
        plan = context["ti"].xcom_pull(task_ids=self.preflight_task_id) or {}
        budget = plan.get("budget") or {}
        if not budget.get("approval_needed"):
            raise AirflowSkipException(f"no approval needed: {budget.get('message', 'no energy budget')}")
        self.subject = (f"{self.ect_environment.name}: predicted {budget['upper_kWh']:.4g} kWh is over the energy budget "
                        f"{budget['budget_kWh']:.4g} kWh: approve to train")
        table = (plan.get("forecast") or {}).get("table")
        self.body = (f"{budget['message']}.\n\nApprove: the DAG run trains as planned. Reject: it stops before any "
                     "training." + (f"\n\n```\n{table}\n```" if table else ""))
        call_alert(self.ect_environment, context, f"DAG run {context['run_id']} waits for approval: {budget['message']}")
        return super().execute(context)

    def execute_complete(self, context, event):
        result = HITLOperator.execute_complete(self, context=context, event=event)  # validates the answer
        chosen = result["chosen_options"][0]
        who = (result.get("responded_by_user") or {}).get("name", "someone")
        self.hitl_summary_extra["approved"] = chosen == self.APPROVE
        if chosen != self.APPROVE and event.get("timedout"):
            raise BudgetExceeded(f"no one approved the DAG run over its energy budget within {self.timeout_h:g} h "
                                 "(BUDGET_APPROVAL_TIMEOUT_H): it stops before any training")
        if chosen != self.APPROVE:
            raise BudgetExceeded(f"{who} rejected the DAG run over its energy budget: it stops before any training")
        log.info(f"{who} approved the DAG run over its energy budget: training as planned")
        return result


@contextmanager
def duration_alert(env, context, plan: dict, architecture: str, backend: str, label: str):
    """Guards a training: ALERT_CALLBACK (call_alert) once when it runs past its limit in the plan's
    duration_alerts_s (none: no alert)."""
    limit_s = (plan.get("duration_alerts_s") or {}).get(run_key(architecture, backend))
    with DurationWatch(limit_s, label, lambda message: call_alert(env, context, message)) as watch:
        yield watch
