"""Alerts where people look: what went wrong (or waits for a person) as Prefect events. The
automations that post them to each agency's webhook are alert_automations.py's.

Events carry counts, check descriptions, ids and paths, never row data. Emitting never fails a
run: without a Prefect API the alert is logged and the run carries on."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipelines import config
from pipelines.data import storage
from pipelines.registry.records import ScoreResult, TrainResult
from pipelines.validation.gate import BatchRejectedError

log = logging.getLogger(__name__)

BATCH_REJECTED = "agencyml.batch.rejected"
QUARANTINE_HIGH = "agencyml.batch.quarantine-high"
DRIFT_ALERT = "agencyml.batch.drift-alert"
AWAITING_APPROVAL = "agencyml.model.awaiting-approval"
RUN_CRASHED = "prefect.flow-run.Crashed"  # Prefect's own, for runs of agencyml's deployments
EVENTS = {
    BATCH_REJECTED: "batch rejected",
    QUARANTINE_HIGH: "many rows quarantined",
    DRIFT_ALERT: "drift alert",
    AWAITING_APPROVAL: "version awaiting approval",
    RUN_CRASHED: "run crashed",
}
MAX_REASONS = 10


@dataclass(frozen=True)
class Alert:
    """One event about one use case: its name, a readable subject and message, and details."""

    event: str
    agency: str
    use_case: str
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)  # counts, reasons, paths; no rows
    batch_id: str | None = None
    model_version: str | None = None

    def resource(self) -> dict[str, str]:
        return {
            "prefect.resource.id": use_case_resource(self.agency, self.use_case),
            "prefect.resource.name": f"{self.agency}/{self.use_case}",
            "agencyml.agency": self.agency,
            "agencyml.use-case": self.use_case,
        }

    def related(self) -> list[dict[str, str]]:
        related = []
        if self.batch_id:
            related.append(
                {
                    "prefect.resource.id": f"agencyml.batch.{self.batch_id}",
                    "prefect.resource.role": "batch",
                }
            )
        if self.model_version:
            model = f"{self.agency}.{self.use_case}"
            related.append(
                {
                    "prefect.resource.id": f"agencyml.model.{model}.{self.model_version}",
                    "prefect.resource.role": "model-version",
                    "prefect.resource.name": f"{model} v{self.model_version}",
                }
            )
        return related

    def payload(self) -> dict[str, Any]:
        return {
            "agency": self.agency,
            "use_case": self.use_case,
            "batch_id": self.batch_id,
            "model_version": self.model_version,
            **self.details,
            "subject": self.subject,
            "message": self.message,
        }


def use_case_resource(agency: str, use_case: str) -> str:
    return f"agencyml.use-case.{agency}.{use_case}"


def failed_checks(report: dict[str, Any]) -> list[str]:
    """The checks a gate report failed, in the params' words, with their row counts."""
    reasons = []
    for check in report.get("checks", []):
        if not check.get("success", True):
            count = check.get("unexpected_count") or 0
            rows = f" ({count:,} rows failed)" if count else ""
            reasons.append(f"expected {check['expectation']}{rows}")
    return reasons[:MAX_REASONS]


def rejected_batch_alert(
    agency: str, use_case: str, input_name: str, quarantine_dir: Path, report: dict[str, Any]
) -> Alert:
    """A batch the gate rejected as a whole; `report` is its quarantine report.json."""
    batch_id = report.get("batch_id")
    reasons = failed_checks(report) or ["the file could not be read as a table"]
    where = f"batch {batch_id} ({input_name})" if batch_id else f"the file {input_name}"
    message = (
        f"The validation gate rejected {where} of {agency}/{use_case}: nothing was scored or "
        f"published. {'; '.join(reasons)}. The input and the full report are in "
        f"{quarantine_dir}."
    )
    return Alert(
        BATCH_REJECTED,
        agency,
        use_case,
        subject=f"agencyml: batch rejected for {agency}/{use_case}",
        message=message,
        details={
            "input": input_name,
            "rows": report.get("rows"),
            "reasons": reasons,
            "quarantine_dir": str(quarantine_dir),
        },
        batch_id=batch_id,
    )


def published_batch_alerts(
    spec: config.UseCaseSpec, result: ScoreResult, quarantine_report: dict[str, Any] | None
) -> list[Alert]:
    """A newly published batch that quarantined more rows than the use case's alert limit, or
    whose data drifted to the alert level."""
    if not result.newly_published:
        return []
    agency, use_case = spec.agency, spec.name
    model = f"{result.model_name} v{result.model_version}"
    ids = {"batch_id": result.batch_id, "model_version": result.model_version}
    alerts = []
    rows_in = result.rows + result.rows_quarantined
    fraction = result.rows_quarantined / rows_in if rows_in else 0.0
    limit = spec.params.alerts.quarantined_fraction_above
    if fraction > limit:
        reasons = failed_checks(quarantine_report or {})
        message = (
            f"Batch {result.batch_id} of {agency}/{use_case} (model {model}) was published with "
            f"{result.rows_quarantined:,} of {rows_in:,} rows quarantined ({fraction:.1%}), "
            f"above the alert limit of {limit:.1%} (alerts.quarantined_fraction_above). "
            + (f"{'; '.join(reasons)}. " if reasons else "")
            + f"The rows and their reasons are in {result.quarantine_dir}."
        )
        details = {
            "rows_in": rows_in,
            "rows_quarantined": result.rows_quarantined,
            "quarantined_fraction": round(fraction, 6),
            "limit": limit,
            "reasons": reasons,
            "quarantine_dir": str(result.quarantine_dir),
        }
        subject = f"agencyml: many rows quarantined for {agency}/{use_case}"
        alerts.append(Alert(QUARANTINE_HIGH, agency, use_case, subject, message, details, **ids))
    if result.drift_level == "alert":
        threshold = spec.params.drift.alert
        drifted = ", ".join(result.drifted) or "the batch"
        message = (
            f"Batch {result.batch_id} of {agency}/{use_case} (model {model}, {result.rows:,} "
            f"rows scored) drifted from the training data: PSI at or above {threshold:g} "
            f"(drift.alert) for {drifted}. The report is {result.output_dir / 'drift.html'}."
        )
        details = {
            "rows": result.rows,
            "drifted": list(result.drifted),
            "psi_alert": threshold,
            "report": str(result.output_dir / "drift.html"),
        }
        subject = f"agencyml: drift alert for {agency}/{use_case}"
        alerts.append(Alert(DRIFT_ALERT, agency, use_case, subject, message, details, **ids))
    return alerts


def approval_alert(result: TrainResult) -> Alert | None:
    """A new version that passed the promotion gate and waits for a person's approval."""
    if result.gate.get("decision") != "await-approval":
        return None
    model, version = result.model_name, result.model_version
    message = (
        f"Version {version} of {model} passed the promotion gate and awaits approval: "
        f"{result.gate.get('reason', '')}. Approve it with `agencyml approve {model} {version} "
        "--by NAME --reason WHY` (or reject it with `agencyml reject`)."
    )
    return Alert(
        AWAITING_APPROVAL,
        result.agency,
        result.use_case,
        subject=f"agencyml: {model} v{version} awaits approval",
        message=message,
        details={
            "primary_metric": result.gate.get("primary_metric"),
            "metrics": {
                name: value
                for name, value in (result.gate.get("challenger") or {}).items()
                if isinstance(value, int | float)
            },
            "champion_version": result.gate.get("champion_version"),
        },
        model_version=version,
    )


def emit(alert: Alert) -> bool:
    """Send the alert as a Prefect event; False, with a log line, if that is not possible."""
    try:
        from prefect.events import emit_event

        sent = emit_event(
            event=alert.event,
            resource=alert.resource(),
            related=alert.related(),
            payload=alert.payload(),
        )
    except Exception as error:  # an alert must never fail the run that raised it
        log.warning("could not emit %s for %s: %s", alert.event, alert.resource(), error)
        return False
    if sent is None:
        log.warning("no Prefect API to emit %s to: %s", alert.event, alert.message)
        return False
    return True


# Prefect flow hooks: flows/score.py and flows/train.py run them when a run ends.


def on_scored_batch(flow: Any, flow_run: Any, state: Any) -> None:
    """After a completed scoring run: alert on quarantined rows and drift."""
    try:
        result: ScoreResult = state.result()
        spec = config.load_use_case(flow_run.parameters["agency"], flow_run.parameters["use_case"])
        report = None
        if result.quarantine_dir is not None and result.newly_published:
            report = storage.read_json_file(result.quarantine_dir / "report.json")
        for alert in published_batch_alerts(spec, result, report):
            emit(alert)
    except Exception as error:
        log.warning("could not check scoring run %s for alerts: %s", flow_run.name, error)


def on_failed_scoring(flow: Any, flow_run: Any, state: Any) -> None:
    """After a failed scoring run: alert when the gate rejected the batch."""
    try:
        error = state.result(raise_on_failure=False)
        if not isinstance(error, BatchRejectedError) or error.quarantine_dir is None:
            return
        folder = Path(error.quarantine_dir)
        report = storage.read_json_file(folder / "report.json")
        name = Path(str(flow_run.parameters.get("input", ""))).name
        params = flow_run.parameters
        emit(rejected_batch_alert(params["agency"], params["use_case"], name, folder, report))
    except Exception as error:
        log.warning("could not alert on scoring run %s: %s", flow_run.name, error)


def on_trained_model(flow: Any, flow_run: Any, state: Any) -> None:
    """After a completed training run: alert when the new version awaits approval."""
    try:
        alert = approval_alert(state.result())
        if alert is not None:
            emit(alert)
    except Exception as error:
        log.warning("could not check training run %s for alerts: %s", flow_run.name, error)
