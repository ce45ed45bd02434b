"""Where alerts are posted: one Prefect webhook block per agency (its params' alerts.webhook_url)
and one automation per event kind, filtered to that agency's use cases. `agencyml deploy`
registers them; they are written from the params, never edited by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pipelines import config
from pipelines.orchestration.alerts import EVENTS, RUN_CRASHED

AUTOMATION_PREFIX = "agencyml alert: "  # every automation named so is register_automations'


def block_name(agency: str) -> str:
    return f"agencyml-alerts-{agency}"


def automation_name(agency: str, event: str) -> str:
    return f"{AUTOMATION_PREFIX}{agency}: {EVENTS[event]}"


CRASH_BODY = (
    "The run {{ flow_run.name }} of {{ flow_run.parameters.agency }}/"
    "{{ flow_run.parameters.use_case }} crashed: {{ flow_run.state.message }}"
    "{% if flow_run.parameters.input %} (input {{ flow_run.parameters.input }}){% endif %}. "
    "Flow run {{ flow_run.id }}: {{ flow_run|ui_url }}. Retrying it is safe: a batch is "
    "published once."
)


def automation_for(agency: str, event: str, block_id: Any) -> Any:
    """The automation that posts one kind of event about the agency's use cases to its
    webhook block. A crash is Prefect's own event, for runs of the agency's deployments
    (tagged with 'agencyml' and the agency)."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    if event == RUN_CRASHED:
        match: dict[str, Any] = {"prefect.resource.id": "prefect.flow-run.*"}
        related = [
            {"prefect.resource.role": "tag", "prefect.resource.id": f"prefect.tag.{tag}"}
            for tag in ("agencyml", agency)
        ]
        subject = f"agencyml: a run of {agency} crashed: {{{{ flow_run.name }}}}"
        body = CRASH_BODY
    else:
        match = {
            "prefect.resource.id": f"agencyml.use-case.{agency}.*",
            "agencyml.agency": agency,
        }
        related = []
        subject, body = "{{ event.payload.subject }}", "{{ event.payload.message }}"
    return AutomationCore(
        name=automation_name(agency, event),
        description=f"Posts {event} events of {agency} to the webhook in params/{agency}.yaml "
        "(alerts.webhook_url). Written by `agencyml deploy`: edit the params, not this.",
        trigger=EventTrigger(
            expect={event},
            match=match,
            match_related=related,
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[SendNotification(block_document_id=block_id, subject=subject, body=body)],
    )


def webhook_block(agency: str, url: str) -> Any:
    """Prefect's custom webhook block posting {'subject', 'text'} as JSON. The URL is kept as
    one of the block's secrets (webhook URLs often carry a token), masked in the UI and API."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    return CustomWebhookNotificationBlock(
        name=f"agencyml alerts for {agency}",
        url="{{webhook_url}}",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
        secrets={"webhook_url": url},
    )


def register_automations(agencies: list[config.AgencyParams]) -> dict[str, list[str]]:
    """Create or update, by name, each agency's webhook block and its automations; remove
    agencyml's alert automations (and blocks) that the params no longer ask for. Returns the
    automations per agency that has a webhook."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    wanted: dict[str, list[str]] = {}
    with get_client(sync_client=True) as client:
        for agency in agencies:
            url = agency.alerts.webhook_url
            if url is None:
                try:
                    found = client.read_block_document_by_name(
                        block_name(agency.agency), block_type_slug="custom-webhook"
                    )
                    client.delete_block_document(found.id)
                except ObjectNotFound:
                    pass
                continue
            block_id = webhook_block(agency.agency, url).save(
                block_name(agency.agency), overwrite=True
            )
            wanted[agency.agency] = []
            for event in EVENTS:
                automation = automation_for(agency.agency, event, block_id)
                existing = client.read_automations_by_name(automation.name)
                if existing:
                    client.update_automation(existing[0].id, automation)
                    for duplicate in existing[1:]:
                        client.delete_automation(duplicate.id)
                else:
                    client.create_automation(automation)
                wanted[agency.agency].append(automation.name)
        names = {name for names in wanted.values() for name in names}
        for automation in client.read_automations():
            if automation.name.startswith(AUTOMATION_PREFIX) and automation.name not in names:
                client.delete_automation(automation.id)
    return wanted
