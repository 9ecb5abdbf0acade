"""The budget's approval task and the duration alert's callback (ect.runners.budget), without a running Airflow."""

from datetime import datetime, timezone

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from ect.config import load_config
from ect.errors import BudgetExceeded
from ect.runners.budget import ALERT_REASON, BudgetApproval, call_alert, duration_alert


class FakeTaskInstance:
    def __init__(self, plan):
        self.plan = plan

    def xcom_pull(self, task_ids):
        assert task_ids == "preflight"
        return self.plan


def approval(project, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    return BudgetApproval(task_id="budget_approval", environment=load_config(project).environment("local"))


def test_the_approval_is_skipped_when_preflight_found_none_needed(project, monkeypatch):
    task = approval(project, monkeypatch)
    for plan in ({"budget": {"approval_needed": False, "message": "the planned runs' ... is within the budget"}},
                 {}):
        with pytest.raises(AirflowSkipException, match="no approval needed"):
            task.execute({"ti": FakeTaskInstance(plan), "run_id": "manual__1"})


def answer(option):
    return {"chosen_options": [option], "params_input": {}, "responded_at": datetime.now(timezone.utc),
            "responded_by_user": {"id": "1", "name": "alice"}}


def test_approve_proceeds_and_reject_stops_the_run_naming_who(project, monkeypatch):
    task = approval(project, monkeypatch)
    assert task.execute_complete({}, answer("Approve"))["chosen_options"] == ["Approve"]
    with pytest.raises(BudgetExceeded, match="alice rejected the DAG run over its energy budget"):
        task.execute_complete({}, answer("Reject"))


def test_an_alert_calls_the_environments_callback_with_the_reason_in_the_context(project, monkeypatch):
    (project / "ect_test_budget_alerts.py").write_text("calls = []\n\ndef page(context):\n    calls.append(dict(context))\n")
    monkeypatch.syspath_prepend(str(project))
    (project / "config" / "environments.yaml").write_text(
        "local:\n  RUNNER: process\n  ALERT_CALLBACK: ect_test_budget_alerts.page\n")
    env = load_config(project).environment("local")
    import ect_test_budget_alerts

    call_alert(env, {"task_id": "train"}, "vgg16 · tensorflow · rep 0 is still running")
    assert ect_test_budget_alerts.calls == [{"task_id": "train", ALERT_REASON: "vgg16 · tensorflow · rep 0 is still "
                                                                              "running"}]
    with duration_alert(env, {}, {"duration_alerts_s": {"vgg16/tensorflow": 3600}}, "vgg16", "tensorflow",
                        "vgg16 · tensorflow · rep 0") as watch:
        assert watch.limit_s == 3600
    with duration_alert(env, {}, {}, "vgg16", "tensorflow", "vgg16 · tensorflow · rep 0") as watch:
        assert watch.limit_s is None  # no prediction: no alert


def test_an_approval_unanswered_for_its_timeout_stops_the_run_as_rejected(project, monkeypatch):
    monkeypatch.setenv("ECT_HOME", str(project))
    env = load_config(project).environment("local")
    task = BudgetApproval(task_id="budget_approval", environment=env, timeout_h=24)
    assert task.response_timeout.total_seconds() == 24 * 3600 and task.defaults == ["Reject"]
    # what Airflow's scheduler resumes the task with when the timeout passes: the defaults, answered by no one
    timed_out = {**answer("Reject"), "responded_by_user": None, "timedout": True}
    with pytest.raises(BudgetExceeded, match="no one approved the DAG run over its energy budget within 24 h"):
        task.execute_complete({}, timed_out)
    untimed = BudgetApproval(task_id="budget_approval", environment=env, timeout_h=0)
    assert untimed.response_timeout is None and untimed.defaults is None
