"""Alerts: the params that route them, what each event says (counts, checks, ids; never a row's
values), the automations that post them, and that an alert can never fail a run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.config import AgencyParams, ParamsError, UseCaseSpec, load_params
from pipelines.orchestration import alert_automations, alerts
from pipelines.registry.records import ScoreResult, TrainResult

SECRET_VALUE = "Jane Doe, 12 Row Street"  # a cell value: must never leave in an alert


def params(**use_case: Any) -> dict[str, Any]:
    return {
        "agency": "demo",
        "datasets": {"cases": {"kind": "file", "path": "data/demo.csv"}},
        "use_cases": {
            "triage": {
                "dataset": "cases",
                "id_column": "case_id",
                "target": "outcome",
                "task": "binary",
                "positive_class": "bad",
                "features": {"numeric": ["amount"], "categorical": ["region"]},
                "split": {"method": "random"},
                "decision": {"kind": "threshold", "threshold": 0.5},
                **use_case,
            }
        },
    }


def load(tmp_path: Path, raw: dict[str, Any]) -> AgencyParams:
    (tmp_path / "demo.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    return load_params("demo", directory=tmp_path)


def error_of(tmp_path: Path, raw: dict[str, Any]) -> str:
    with pytest.raises(ParamsError) as caught:
        load(tmp_path, raw)
    return str(caught.value)


def spec(**use_case: Any) -> UseCaseSpec:
    return AgencyParams.model_validate(params(**use_case)).use_case("triage")


# --- params ---------------------------------------------------------------------------------------


def test_alerts_are_optional_and_default_to_no_webhook_and_one_percent(tmp_path):
    loaded = load(tmp_path, params())

    assert loaded.alerts.webhook_url is None
    assert loaded.use_cases["triage"].alerts.quarantined_fraction_above == 0.01


def test_a_webhook_and_a_threshold_load(tmp_path):
    raw = params(alerts={"quarantined_fraction_above": 0.02})
    raw["alerts"] = {"webhook_url": "https://hooks.example.org/services/T0/B0"}

    loaded = load(tmp_path, raw)

    assert loaded.alerts.webhook_url == "https://hooks.example.org/services/T0/B0"
    assert loaded.use_cases["triage"].alerts.quarantined_fraction_above == 0.02


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.org/x", "hooks.example.org/services", "https://", "mailto:a@b"]
)
def test_a_webhook_that_is_not_an_http_url_is_named(tmp_path, url):
    raw = params()
    raw["alerts"] = {"webhook_url": url}

    text = error_of(tmp_path, raw)

    assert "  - alerts.webhook_url: " in text and "is not an http(s) URL" in text


@pytest.mark.parametrize(
    ("use_case_level", "section", "key"),
    [
        (False, {"webhok_url": "https://x.org"}, "alerts.webhok_url"),
        (True, {"quarantine": 0.1}, "use_cases.triage.alerts.quarantine"),
        (True, {"quarantined_fraction_above": 1}, "use_cases.triage.alerts.quarantined_"),
        (True, {"quarantined_fraction_above": -0.1}, "use_cases.triage.alerts.quarantined_"),
    ],
)
def test_unknown_or_out_of_range_alert_keys_are_named(tmp_path, use_case_level, section, key):
    raw = params(alerts=section) if use_case_level else {**params(), "alerts": section}

    text = error_of(tmp_path, raw)

    assert f"  - {key}" in text


def test_a_quarantine_alert_that_could_never_fire_is_refused(tmp_path):
    raw = params(
        alerts={"quarantined_fraction_above": 0.1},
        expectations={"max_quarantine_fraction": 0.05},
    )

    text = error_of(tmp_path, raw)

    assert "use_cases.triage: " in text
    assert "alerts.quarantined_fraction_above (0.1) must be below" in text
    assert "expectations.max_quarantine_fraction (0.05)" in text


def test_the_default_threshold_never_makes_a_strict_rejection_limit_invalid(tmp_path):
    loaded = load(tmp_path, params(expectations={"max_quarantine_fraction": 0.0}))

    assert loaded.use_cases["triage"].expectations.max_quarantine_fraction == 0.0


# --- what the events say --------------------------------------------------------------------------


def gate_report(batch_id: str | None = "abc123") -> dict[str, Any]:
    return {
        "batch_id": batch_id,
        "rows": 500,
        "checks": [
            {"expectation": "column 'amount' is present", "success": True, "unexpected_count": 0},
            {
                "expectation": "column 'region' is present",
                "success": False,
                "unexpected_count": 0,
                "problem": f"expected column 'region', found '{SECRET_VALUE}'",
            },
            {
                "expectation": "amount is at least 0",
                "success": False,
                "unexpected_count": 12,
                "problem": f"e.g. {SECRET_VALUE}",
            },
        ],
        "rejected": [f"column region: cannot read {SECRET_VALUE!r} as a number"],
    }


def test_a_rejected_batch_names_the_use_case_batch_and_failed_checks_only():
    alert = alerts.rejected_batch_alert(
        "demo", "triage", "claims.csv", Path("/q/demo/triage/abc123"), gate_report()
    )

    assert alert.event == "agencyml.batch.rejected"
    assert alert.batch_id == "abc123"
    assert "rejected batch abc123 (claims.csv) of demo/triage" in alert.message
    assert "expected column 'region' is present; expected amount is at least 0 (12 rows " in (
        alert.message
    )
    assert "/q/demo/triage/abc123" in alert.message
    payload = alert.payload()
    assert payload["reasons"] == [
        "expected column 'region' is present",
        "expected amount is at least 0 (12 rows failed)",
    ]
    assert (payload["agency"], payload["use_case"], payload["rows"]) == ("demo", "triage", 500)
    assert SECRET_VALUE not in json.dumps(payload)


def test_an_unreadable_file_is_alerted_without_a_batch_id():
    report = {"input": {"path": "/in/x.bin"}, "rejected": [f"cannot read {SECRET_VALUE}"]}

    alert = alerts.rejected_batch_alert("demo", "triage", "x.bin", Path("/q/u-1"), report)

    assert alert.batch_id is None and alert.related() == []
    assert "rejected the file x.bin of demo/triage" in alert.message
    assert alert.payload()["reasons"] == ["the file could not be read as a table"]
    assert SECRET_VALUE not in json.dumps(alert.payload())


def scored(**changes: Any) -> ScoreResult:
    result = ScoreResult(
        batch_id="b42",
        output_dir=Path("/out/demo/triage/b42"),
        rows=970,
        model_name="demo.triage",
        model_version="3",
        newly_published=True,
        run_id="r1",
        decisions={"flag": 10, "pass": 960},
        rows_quarantined=30,
        quarantine_dir=Path("/q/demo/triage/b42"),
        drift_level="ok",
    )
    return replace(result, **changes)


@pytest.mark.parametrize(
    ("quarantined", "limit", "alerted"),
    [(30, 0.01, True), (10, 0.01, False), (30, 0.03, False), (0, 0.0, False), (1, 0.0, True)],
)
def test_quarantine_alerts_only_above_the_use_cases_limit(quarantined, limit, alerted):
    use_case = spec(alerts={"quarantined_fraction_above": limit})
    result = scored(rows=1000 - quarantined, rows_quarantined=quarantined)

    found = alerts.published_batch_alerts(use_case, result, gate_report("b42"))

    assert [alert.event for alert in found] == (
        ["agencyml.batch.quarantine-high"] if alerted else []
    )


def test_the_quarantine_alert_gives_counts_the_limit_and_the_folder():
    (alert,) = alerts.published_batch_alerts(spec(), scored(), gate_report("b42"))

    assert alert.message.startswith(
        "Batch b42 of demo/triage (model demo.triage v3) was published with 30 of 1,000 rows "
        "quarantined (3.0%), above the alert limit of 1.0% (alerts.quarantined_fraction_above)."
    )
    payload = alert.payload()
    assert payload["rows_quarantined"] == 30 and payload["quarantined_fraction"] == 0.03
    assert payload["quarantine_dir"] == "/q/demo/triage/b42"
    assert {r["prefect.resource.role"] for r in alert.related()} == {"batch", "model-version"}
    assert SECRET_VALUE not in json.dumps(payload)


def test_drift_at_the_alert_level_names_the_columns_and_the_report():
    result = scored(rows_quarantined=0, drift_level="alert", drifted=["amount", "score"])

    (alert,) = alerts.published_batch_alerts(spec(), result, None)

    assert alert.event == "agencyml.batch.drift-alert"
    assert "PSI at or above 0.25 (drift.alert) for amount, score" in alert.message
    assert alert.payload()["report"] == "/out/demo/triage/b42/drift.html"
    assert alert.resource()["prefect.resource.id"] == "agencyml.use-case.demo.triage"


@pytest.mark.parametrize("level", ["ok", "warn", "too few rows", None])
def test_drift_below_the_alert_level_is_quiet(level):
    assert (
        alerts.published_batch_alerts(spec(), scored(rows_quarantined=0, drift_level=level), None)
        == []
    )


def test_a_batch_published_before_is_not_alerted_again():
    result = scored(newly_published=False, drift_level="alert", drifted=["amount"])

    assert alerts.published_batch_alerts(spec(), result, gate_report()) == []


def trained(decision: str) -> TrainResult:
    return TrainResult(
        agency="demo",
        use_case="triage",
        model_name="demo.triage",
        model_version="7",
        run_id="r7",
        aliases=["challenger"],
        best_iteration=40,
        model_sha256="0" * 64,
        metrics={"roc_auc": 0.91},
        gate={
            "decision": decision,
            "primary_metric": "roc_auc",
            "challenger": {"roc_auc": 0.91, "pr_auc": 0.6},
            "champion_version": "6",
            "reason": "passed the gate (roc_auc 0.9100 beats 0.9000)",
        },
    )


def test_a_version_awaiting_approval_says_how_to_approve_it():
    alert = alerts.approval_alert(trained("await-approval"))

    assert alert is not None and alert.event == "agencyml.model.awaiting-approval"
    assert "Version 7 of demo.triage passed the promotion gate and awaits approval" in alert.message
    assert "agencyml approve demo.triage 7 --by NAME --reason WHY" in alert.message
    assert alert.payload()["metrics"] == {"roc_auc": 0.91, "pr_auc": 0.6}
    assert alert.related()[0]["prefect.resource.id"] == "agencyml.model.demo.triage.7"


@pytest.mark.parametrize("decision", ["promote", "hold"])
def test_a_promoted_or_held_version_is_not_alerted(decision):
    assert alerts.approval_alert(trained(decision)) is None


# --- never failing a run --------------------------------------------------------------------------


def test_emitting_without_a_working_prefect_api_logs_and_returns_false(monkeypatch, caplog):
    def unreachable(**_: Any) -> None:
        raise ConnectionError("no Prefect API at http://127.0.0.1:9/api")

    monkeypatch.setattr("prefect.events.emit_event", unreachable)
    alert = alerts.approval_alert(trained("await-approval"))

    assert alerts.emit(alert) is False
    assert "could not emit agencyml.model.awaiting-approval" in caplog.text


class FailingState:
    def result(self, raise_on_failure: bool = True) -> Any:
        raise RuntimeError("the result was not kept")


class Run:
    def __init__(self) -> None:
        self.name = "score-demo-triage"
        self.parameters = {"agency": "demo", "use_case": "triage", "input": "/in/b.csv"}


@pytest.mark.parametrize(
    "hook", [alerts.on_scored_batch, alerts.on_failed_scoring, alerts.on_trained_model]
)
def test_a_hook_that_cannot_build_its_alert_logs_instead_of_raising(hook, caplog):
    hook(None, Run(), FailingState())

    assert "the result was not kept" in caplog.text


# --- the automations ------------------------------------------------------------------------------


BLOCK_ID = "5b0f5a2e-0000-4000-8000-000000000001"


def test_each_event_kind_gets_an_automation_filtered_to_the_agency():
    automation = alert_automations.automation_for("demo", alerts.DRIFT_ALERT, BLOCK_ID)

    assert automation.name == "agencyml alert: demo: drift alert"
    assert automation.trigger.expect == {"agencyml.batch.drift-alert"}
    assert automation.trigger.match.get("prefect.resource.id") == ["agencyml.use-case.demo.*"]
    assert automation.trigger.match.get("agencyml.agency") == ["demo"]
    assert automation.trigger.threshold == 1
    (action,) = automation.actions
    assert str(action.block_document_id) == BLOCK_ID
    assert action.body == "{{ event.payload.message }}"


def test_crashes_are_prefects_own_event_for_runs_tagged_with_the_agency():
    automation = alert_automations.automation_for("demo", alerts.RUN_CRASHED, BLOCK_ID)

    assert automation.trigger.expect == {"prefect.flow-run.Crashed"}
    tags = [spec.get("prefect.resource.id") for spec in automation.trigger.match_related]
    assert tags == [["prefect.tag.agencyml"], ["prefect.tag.demo"]]
    assert "{{ flow_run.parameters.use_case }}" in automation.actions[0].body


def test_one_automation_per_event_kind_with_distinct_names():
    names = {alert_automations.automation_name("demo", event) for event in alerts.EVENTS}

    assert len(names) == 5
    assert all(name.startswith(alert_automations.AUTOMATION_PREFIX) for name in names)


def test_the_webhook_block_keeps_the_url_secret_and_posts_subject_and_text():
    block = alert_automations.webhook_block("demo", "https://hooks.example.org/T0/B0/token")

    assert "token" not in block.url
    request = block._build_request_args(body="the message", subject="the subject")
    assert request["url"] == "https://hooks.example.org/T0/B0/token"
    assert request["json"] == {"subject": "the subject", "text": "the message"}
