"""Approvers' pages on the pull service, end to end: a use case that requires approval trains a
version, the approver sees it in the queue with the gate's verdict, and approving it through
the page goes through the registry's rules and audit log (the CLI's `history` shows it), over
HTTP and in Debian's Chromium."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import httpx
import pytest
import yaml
from browser import AXE, CHROMIUM, chromium, serious_violations, shot
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from pipelines.config import load_use_case
from pipelines.paths import state_dir
from pipelines.registry import promotion
from pipelines.registry.promotion import read_events
from pipelines.scoring.batches import write_holdout_batch
from pipelines.service import access

MODEL = "business-aid.fraud-risk"


def require_approval(project: Path) -> None:
    path = project / "params" / "business-aid.yaml"
    params = yaml.safe_load(path.read_text())
    use_case = params["use_cases"]["fraud-risk"]
    use_case["promotion"] = {**use_case.get("promotion", {}), "require_approval": True}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def site(prefect_server, tmp_path_factory, make_small_project, serve):
    """Two versions of fraud-risk awaiting approval, tokens, and the service in its process."""
    from flows.train import train

    root = tmp_path_factory.mktemp("approvals")
    project = make_small_project(root / "project")
    require_approval(project)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENCYML_PROJECT_ROOT", str(project))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        first = train(*MODEL.split("."))
        assert first.gate["decision"] == "await-approval", first.gate["reason"]
        state = state_dir()
        secrets = {
            "approver": access.create_token(
                state, role="approver", agency="business-aid", name="head of unit"
            )[1],
            "other approver": access.create_token(
                state, role="approver", agency="product-safety", name="elsewhere"
            )[1],
            "agency": access.create_token(state, role="agency", agency="business-aid", name="cw")[
                1
            ],
        }
        with serve(root / "serve-approvals.log") as running:
            yield {
                **running,
                "project": project,
                "state": state,
                "secrets": secrets,
                "version": first.model_version,
            }


def signed_in(site, who: str) -> httpx.Client:
    client = httpx.Client(base_url=site["url"], timeout=120)
    form = client.get("/")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    reply = client.post("/sign-in", data={"csrf": csrf, "token": site["secrets"][who]})
    assert reply.status_code == 303, reply.text
    return client


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_the_queue_shows_the_waiting_version_with_the_gates_verdict(site) -> None:
    client = signed_in(site, "approver")

    page = client.get("/approvals")

    assert page.status_code == 200
    assert f"{MODEL} v{site['version']}" in page.text
    assert "awaiting approval" in page.text and "pr_auc" in page.text
    assert "The gate&#39;s checks" in page.text or "gate's checks" in page.text


def test_a_decision_needs_a_reason_and_its_csrf_token_and_stays_in_scope(site) -> None:
    client = signed_in(site, "approver")
    page = client.get("/approvals").text
    target = f"/approvals/{MODEL}/{site['version']}"

    no_reason = client.post(target, data={"csrf": csrf_of(page), "action": "approve"})
    no_csrf = client.post(target, data={"action": "approve", "reason": "fine"})
    elsewhere = signed_in(site, "other approver")
    their_csrf = csrf_of(elsewhere.get("/approvals").text)
    out_of_scope = elsewhere.post(
        target, data={"csrf": their_csrf, "action": "approve", "reason": "-"}
    )
    agency = signed_in(site, "agency")

    assert no_reason.status_code == 409 and "Say why you approve" in no_reason.text
    assert no_csrf.status_code == 403
    assert out_of_scope.status_code == 404 and MODEL not in out_of_scope.text
    assert "No version is waiting" in elsewhere.get("/approvals").text
    assert agency.get("/approvals").status_code == 404
    aliases = MlflowClient().get_registered_model(MODEL).aliases  # nothing moved
    assert "champion" not in aliases


def needs_a_browser() -> None:
    pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")


def test_an_approver_approves_in_the_browser_and_the_cli_history_shows_it(site, tmp_path) -> None:
    needs_a_browser()
    with chromium() as browser:
        # the pages forbid inline scripts: lifted for the test's own axe-core injection
        page = browser.new_context(bypass_csp=True).new_page()
        page.goto(site["url"] + "/")
        page.get_by_label("Access token").fill(site["secrets"]["approver"])
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/approvals")
        violations = serious_violations(page) if AXE.is_file() else []
        shot(page, "approver-queue")
        page.get_by_label(re.compile("Your reason")).fill("reviewed the slices and the baselines")
        page.get_by_role("button", name=f"Approve {MODEL} v{site['version']}").click()
        page.wait_for_url("**/approvals?done=**")
        shown = page.content()

    assert violations == []
    assert f"{MODEL} v{site['version']} approved" in shown
    version = MlflowClient().get_model_version(MODEL, site["version"])
    assert "champion" in version.aliases
    assert version.tags["agencyml.approval.by"] == "head of unit"
    assert "- Approval: head of unit at " in version.description
    history = CliRunner().invoke(app, ["history", MODEL])
    assert history.exit_code == 0, history.output
    [line] = [row for row in history.output.splitlines() if " approve " in row]
    assert "head of" in line  # the table wraps the name in a narrow terminal
    [event] = [e for e in read_events(site["state"], MODEL) if e["action"] == "approve"]
    assert event["by"] == "head of unit"
    assert event["reason"] == "reviewed the slices and the baselines"


def test_an_auditor_reads_the_approvers_reason_and_the_data_md5_one_click_from_a_batch_id(
    site,
) -> None:
    needs_a_browser()
    reason = "reviewed the slices and the baselines"
    version = MlflowClient().get_model_version(MODEL, site["version"])
    if "champion" not in version.aliases:  # when run alone, without the approver's test
        promotion.approve(MODEL, site["version"], "head of unit", reason, site["state"])
    from flows.score import score

    use_case = load_use_case(*MODEL.split("."))
    batch = score(*MODEL.split("."), str(write_holdout_batch(use_case, site["state"])))
    data = site["project"] / "data" / "ingested" / "business-aid" / "applications.parquet"
    md5 = hashlib.md5(data.read_bytes(), usedforsecurity=False).hexdigest()
    secret = access.create_token(site["state"], role="auditor", name="national audit")[1]

    with chromium() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        page.goto(site["url"] + "/")
        page.get_by_label("Access token").fill(secret)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/audit")
        page.get_by_label("Trace a batch").fill(batch.batch_id)
        page.get_by_role("button", name="Show its lineage").click()  # the one click
        page.wait_for_url("**/audit/lineage?batch_id=**")
        shot(page, "auditor-approval-and-data")
        shown = page.locator("main").inner_text()
        violations = serious_violations(page) if AXE.is_file() else []

    assert "Complete: every link was followed." in shown
    assert "approval: approved by head of unit" in shown
    assert reason in shown
    assert md5 in shown
    assert violations == []
