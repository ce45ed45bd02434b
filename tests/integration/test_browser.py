"""The agency pages in a real browser: Playwright driving Debian's Chromium headless (never a
downloaded build) against `agencyml serve` on a two-agency project, with axe-core checking each
page's accessibility. Screenshots are kept in .cache/test-artifacts/screenshots/.

.ci/run installs the chromium package and axe-core (npm) when they are missing; elsewhere these
tests are skipped, saying which one is missing."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from browser import AXE, CHROMIUM, chromium, serious_violations, shot

from pipelines.paths import state_dir
from pipelines.service import access

FRAUD = "business-aid"
TRIAGE = "product-safety"
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.is_file(),
        reason=f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)",
    ),
    pytest.mark.skipif(
        not AXE.is_file(),
        reason=f"no axe-core at {AXE}: npm install --prefix .cache/axe axe-core (.ci/run does)",
    ),
]


@pytest.fixture(scope="module")
def site(two_agencies, serve):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        state = state_dir()
        secret = access.create_token(state, role="agency", agency=FRAUD, name="case worker")[1]
        with serve(two_agencies["root"] / "serve-browser.log") as running:
            yield {**running, "secret": secret, "batches": two_agencies["batches"]}


@pytest.fixture(scope="module")
def browser():
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, tmp_path):
    # the pages forbid inline scripts: the test lifts that for its own axe-core injection
    context = browser.new_context(accept_downloads=True, bypass_csp=True)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page, site) -> None:
    page.goto(site["url"] + "/")
    page.get_by_label("Access token").fill(site["secret"])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/batches")


def test_an_agency_signs_in_filters_opens_a_batch_reads_drift_and_downloads(site, page) -> None:
    own = site["batches"][FRAUD]
    manifest = json.loads((own.output_dir / "manifest.json").read_text())
    audited = {}

    page.goto(site["url"] + "/")
    audited["sign-in"] = serious_violations(page)
    shot(page, "agency-1-sign-in")
    sign_in(page, site)
    page.get_by_label("Use case").select_option("fraud-risk")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**use_case=fraud-risk**")
    audited["batches"] = serious_violations(page)
    shot(page, "agency-2-batches")
    page.get_by_role("link", name=own.batch_id).click()
    page.wait_for_url(f"**/batches/{own.batch_id}")
    audited["batch"] = serious_violations(page)
    shot(page, "agency-3-batch")
    assert page.get_by_text(f"{manifest['rows']['in']:,}").first.is_visible()

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Scored rows (parquet, exact)").click()
    downloaded = Path(download_info.value.path())
    assert (
        hashlib.sha256(downloaded.read_bytes()).hexdigest()
        == (manifest["file_sha256"]["scored.parquet"])
    )

    page.get_by_role("link", name="drift report").click()
    page.wait_for_url("**/drift.html")
    shot(page, "agency-4-drift")
    assert "drift" in page.content().lower()

    assert audited == {"sign-in": [], "batches": [], "batch": []}


def test_another_agencys_batch_looks_exactly_like_a_missing_one(site, page) -> None:
    sign_in(page, site)
    theirs = site["batches"][TRIAGE].batch_id

    page.goto(f"{site['url']}/batches/{theirs}")
    other = page.content()
    shot(page, "isolation-other-agency")
    violations = serious_violations(page)
    page.goto(f"{site['url']}/batches/batch-{'0' * 20}")
    missing = page.content()

    assert other == missing and "Not found" in other
    assert TRIAGE not in other and theirs not in other
    assert violations == []


def test_the_pages_need_no_asset_from_outside_the_app(site, page) -> None:
    outside: list[str] = []
    page.on(
        "request",
        lambda request: (
            outside.append(request.url) if not request.url.startswith(site["url"]) else None
        ),
    )
    sign_in(page, site)
    page.goto(f"{site['url']}/batches/{site['batches'][FRAUD].batch_id}")

    assert outside == []
    for viewer in ("/docs", "/redoc"):  # they would load Swagger UI / ReDoc from a CDN
        assert page.goto(site["url"] + viewer).status == 404


def test_an_auditor_traces_a_batch_to_its_model_card_and_data(site, page) -> None:
    own = site["batches"][FRAUD].batch_id
    _, secret = access.create_token(state_dir(), role="auditor", name="national audit")
    audited = {}

    page.goto(site["url"] + "/")
    page.get_by_label("Access token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/audit")
    audited["audit"] = serious_violations(page)
    page.get_by_label("Trace a batch").fill(own)
    page.get_by_role("button", name="Show its lineage").click()  # click 1
    page.wait_for_url("**/audit/lineage?batch_id=**")
    audited["lineage"] = serious_violations(page)
    shot(page, "auditor-1-lineage")
    text = page.content()
    assert "Complete: every link was followed." in text and "md5" in text
    page.get_by_role("link", name="model card").first.click()  # click 2
    page.wait_for_url("**/card")
    shot(page, "auditor-2-card")
    assert "Model card: business-aid.fraud-risk" in page.content()
    page.goto(site["url"] + "/audit/models/business-aid.fraud-risk")
    audited["model"] = serious_violations(page)
    page.goto(site["url"] + "/audit/logs")
    audited["logs"] = serious_violations(page)

    assert audited == {"audit": [], "lineage": [], "model": [], "logs": []}


@pytest.mark.parametrize(
    ("width", "name"), [(390, "phone"), (640, "200-percent-zoom")]
)  # a 1280-pixel window at 200% zoom lays the page out 640 CSS pixels wide
def test_the_agency_pages_fit_a_phone_and_200_percent_zoom(site, browser, width, name) -> None:
    context = browser.new_context(viewport={"width": width, "height": 800}, bypass_csp=True)
    page = context.new_page()
    own = site["batches"][FRAUD].batch_id
    overflowing = {}
    try:
        sign_in(page, site)
        for label, path in (("batches", "/batches"), ("batch", f"/batches/{own}")):
            page.goto(site["url"] + path)
            shot(page, f"{name}-{label}")
            overflowing[label] = page.evaluate(
                "() => document.documentElement.scrollWidth > window.innerWidth"
            )
    finally:
        context.close()

    assert overflowing == {"batches": False, "batch": False}  # wide tables scroll in place


def test_a_form_without_its_csrf_token_is_refused_in_the_browser(site, page) -> None:
    sign_in(page, site)
    page.evaluate("() => document.querySelector('form[action=\"/sign-out\"] [name=csrf]').remove()")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    refused = page.locator("main").inner_text()
    violations = serious_violations(page)
    shot(page, "isolation-csrf-refused")
    page.goto(site["url"] + "/batches")  # still signed in: nothing was changed

    assert "Refused" in refused and "Nothing was changed" in refused
    assert page.url.endswith("/batches") and "Sign out" in page.content()
    assert violations == []


def test_a_revoked_tokens_browser_session_ends_at_its_next_request(site, page) -> None:
    token, secret = access.create_token(
        state_dir(), role="agency", agency=FRAUD, name="leaving soon"
    )
    page.goto(site["url"] + "/")
    page.get_by_label("Access token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/batches")

    access.revoke_token(state_dir(), token.token_id)
    page.goto(f"{site['url']}/batches/{site['batches'][FRAUD].batch_id}")
    shot(page, "isolation-revoked")

    assert page.get_by_label("Access token").is_visible()
    assert site["batches"][FRAUD].batch_id not in page.locator("main").inner_text()


def test_the_remaining_pages_have_no_serious_accessibility_violation(site, page) -> None:
    """The pages the journeys above do not check: a version's lineage and card, the drift
    report, and a refused sign-in."""
    own = site["batches"][FRAUD].batch_id
    _, secret = access.create_token(state_dir(), role="auditor", name="accessibility audit")
    found = {}

    page.goto(site["url"] + "/")
    page.get_by_label("Access token").fill("aml_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    found["sign-in refused"] = serious_violations(page)
    sign_in(page, site)
    page.goto(f"{site['url']}/batches/{own}/drift.html")
    found["drift report"] = serious_violations(page)
    page.goto(site["url"] + "/")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_load_state()
    page.get_by_label("Access token").fill(secret)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/audit")
    for name, path in (
        ("version lineage", "/audit/lineage?model=business-aid.fraud-risk&version=1"),
        ("model card", "/audit/models/business-aid.fraud-risk/1/card"),
        ("unknown version", "/audit/lineage?model=business-aid.fraud-risk&version=99"),
    ):
        page.goto(site["url"] + path)
        shot(page, f"axe-{name.replace(' ', '-')}")
        found[name] = serious_violations(page)

    assert found == {name: [] for name in found}
