"""The agency pages of the pull service over real HTTP: `agencyml serve` in its own process, two
agencies with published batches, sessions from real tokens, CSRF on every form, isolation."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from html import unescape
from urllib.parse import urlsplit

import httpx
import pyarrow.parquet as pq
import pytest
from servers import free_port, stop, wait_until_up

from pipelines.paths import PACKAGE_ROOT, StateDir, state_dir
from pipelines.service import access
from pipelines.service.pages import SESSION_COOKIE, Sessions

FRAUD = "business-aid"
TRIAGE = "product-safety"


@pytest.fixture(scope="module")
def site(two_agencies, serve):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        state = state_dir()
        secrets = {
            "fraud": access.create_token(state, role="agency", agency=FRAUD, name="case worker")[1],
            "triage": access.create_token(state, role="agency", agency=TRIAGE, name="inspector")[1],
        }
        with serve(two_agencies["root"] / "serve-pages.log") as running:
            batches = two_agencies["batches"]
            yield {**running, "state": state, "secrets": secrets, "batches": batches}


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page[:500]
    return found.group(1)


def signed_in(site, secret: str) -> httpx.Client:
    return signed_in_as(site, secret, home="/batches")


def test_sign_in_gives_an_httponly_strict_session_cookie(site) -> None:
    client = httpx.Client(base_url=site["url"], timeout=60)
    form = client.get("/")
    assert form.status_code == 200 and 'type="password"' in form.text

    reply = client.post(
        "/sign-in", data={"csrf": csrf_of(form.text), "token": site["secrets"]["fraud"]}
    )

    cookie = next(
        h for h in reply.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "=")
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS the cookie is Secure
    assert client.get("/batches").status_code == 200


def test_a_wrong_token_or_a_form_without_its_csrf_token_signs_nobody_in(site) -> None:
    client = httpx.Client(base_url=site["url"], timeout=60)
    form = client.get("/")

    wrong = client.post("/sign-in", data={"csrf": csrf_of(form.text), "token": "amlt_" + "x" * 43})
    assert wrong.status_code == 401 and "not valid" in wrong.text
    no_csrf = client.post("/sign-in", data={"token": site["secrets"]["fraud"]})
    assert no_csrf.status_code == 403 and "Nothing was" in no_csrf.text
    assert SESSION_COOKIE not in client.cookies
    # nothing signed in: the pages send the browser to the sign-in form
    assert client.get("/batches").headers["location"] == "/"


def test_an_agency_sees_its_own_batches_and_a_batch_page_with_its_counts(site) -> None:
    client = signed_in(site, site["secrets"]["fraud"])
    own = site["batches"][FRAUD]

    listing = client.get("/batches")
    page = client.get(f"/batches/{own.batch_id}")

    assert listing.status_code == 200 and own.batch_id in listing.text
    assert site["batches"][TRIAGE].batch_id not in listing.text
    assert TRIAGE not in listing.text and "risk-triage" not in listing.text
    assert page.status_code == 200
    manifest = (own.output_dir / "manifest.json").read_text()
    rows = re.search(r'"in": (\d+)', manifest).group(1)
    assert f"<dt>Rows in</dt><dd>{int(rows):,}</dd>" in page.text
    assert "drift report" in page.text and "Scored rows (CSV" in page.text
    decisions = json.loads(manifest)["scores"]["decisions"]
    assert decisions  # the holdout batch has scored rows
    for decision, count in decisions.items():
        assert f'<td>{decision}</td><td class="n">{count:,}</td>' in page.text


def test_filters_and_pages_narrow_the_listing(site) -> None:
    client = signed_in(site, site["secrets"]["fraud"])
    own = site["batches"][FRAUD].batch_id

    assert own in client.get("/batches", params={"use_case": "fraud-risk"}).text
    assert "No batch matches" in client.get("/batches", params={"use_case": "other"}).text
    assert "No batch matches" in client.get("/batches", params={"since": "2999-01-01"}).text
    assert own in client.get("/batches", params={"page": 99}).text  # the last page
    wrong = client.get("/batches", params={"since": "yesterday"}).text
    assert "Give dates as YYYY-MM-DD" in wrong and own in wrong  # said, and nothing hidden
    assert "No batch matches" in client.get("/batches", params={"until": "2000-01-01"}).text


def test_downloads_match_the_manifest_and_the_csv_is_rounded(site) -> None:
    client = signed_in(site, site["secrets"]["fraud"])
    own = site["batches"][FRAUD]
    scored = own.output_dir / "scored.parquet"

    parquet = client.get(f"/batches/{own.batch_id}/scored.parquet")
    spreadsheet = client.get(f"/batches/{own.batch_id}/scored.csv")
    drift = client.get(f"/batches/{own.batch_id}/drift.html")

    assert (
        hashlib.sha256(parquet.content).hexdigest()
        == hashlib.sha256(scored.read_bytes()).hexdigest()
    )
    assert parquet.headers["x-content-sha256"] == hashlib.sha256(parquet.content).hexdigest()
    rows = list(csv.DictReader(io.StringIO(spreadsheet.text)))
    exact = pq.read_table(scored).column("probability").to_pylist()
    assert len(rows) == len(exact)
    assert all(len(r["probability"].split(".")[-1]) <= 4 for r in rows)
    assert [float(r["probability"]) for r in rows] == [round(p, 4) for p in exact]
    assert drift.status_code == 200 and "<html" in drift.text.lower()


@pytest.mark.parametrize("suffix", ["", "/scored.csv", "/scored.parquet", "/drift.html"])
def test_another_agencys_batch_is_the_same_not_found_page_as_none(site, suffix: str) -> None:
    client = signed_in(site, site["secrets"]["fraud"])
    theirs = site["batches"][TRIAGE].batch_id

    other = client.get(f"/batches/{theirs}{suffix}")
    missing = client.get(f"/batches/batch-{'0' * 20}{suffix}")

    assert other.status_code == missing.status_code == 404
    assert other.text == missing.text
    assert TRIAGE not in other.text


def test_sign_out_needs_its_csrf_token(site) -> None:
    client = signed_in(site, site["secrets"]["fraud"])
    page = client.get("/batches")

    refused = client.post("/sign-out", data={"csrf": "not-the-token"})
    assert refused.status_code == 403
    assert client.get("/batches").status_code == 200  # still signed in

    done = client.post("/sign-out", data={"csrf": csrf_of(page.text)})
    assert done.status_code == 303
    assert client.get("/batches").headers["location"] == "/"


def test_a_revoked_tokens_session_ends_at_its_next_request(site) -> None:
    token, secret = access.create_token(site["state"], role="agency", agency=FRAUD, name="temp")
    client = signed_in(site, secret)
    assert client.get("/batches").status_code == 200

    access.revoke_token(site["state"], token.token_id)

    assert client.get("/batches").headers["location"] == "/"


def test_page_views_are_in_the_access_log_with_who_viewed_them(site) -> None:
    client = signed_in(site, site["secrets"]["fraud"])
    own = site["batches"][FRAUD].batch_id
    client.get(f"/batches/{own}")

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        entries = access.read_access_log(site["state"])
        viewed = [e for e in entries if e.get("path") == f"/batches/{own}"]
        if viewed:
            break
        time.sleep(0.2)
    assert viewed and viewed[-1]["agency"] == FRAUD and viewed[-1]["status"] == 200
    assert viewed[-1]["token_id"]


def test_a_session_ends_after_its_idle_time(tmp_path) -> None:
    state = StateDir(tmp_path / "state")
    token, _ = access.create_token(state, role="agency", agency=FRAUD, name="idle")
    sessions = Sessions(state, idle_seconds=0.2)
    session_id, _ = sessions.start(token)

    assert sessions.find(session_id) is not None
    time.sleep(0.3)
    assert sessions.find(session_id) is None
    assert sessions.find("made-up") is None


# --- auditors ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auditor(site) -> httpx.Client:
    _, secret = access.create_token(site["state"], role="auditor", name="national audit")
    return signed_in_as(site, secret, home="/audit")


def signed_in_as(site, secret: str, home: str) -> httpx.Client:
    client = httpx.Client(base_url=site["url"], timeout=120)
    form = client.get("/")
    reply = client.post("/sign-in", data={"csrf": csrf_of(form.text), "token": secret})
    assert reply.status_code == 303 and reply.headers["location"] == home, reply.text
    return client


def test_an_auditor_sees_every_agencys_models_and_their_versions(site, auditor) -> None:
    home = auditor.get("/audit")
    model = auditor.get("/audit/models/business-aid.fraud-risk")
    card = auditor.get("/audit/models/business-aid.fraud-risk/1/card")

    assert "business-aid.fraud-risk" in home.text and "product-safety.risk-triage" in home.text
    assert model.status_code == 200 and "v1" in model.text and "promote" in model.text
    assert card.status_code == 200 and "Model card: business-aid.fraud-risk v1" in card.text
    # the training run's plots, embedded with their titles
    assert "<h2>Plots</h2>" in card.text and 'alt="ROC curve on the holdout rows"' in card.text
    assert card.text.count("data:image/png;base64,") >= 6
    assert auditor.get("/audit/models/no-such.model").status_code == 404
    assert auditor.get("/audit/models/business-aid.fraud-risk/99/card").status_code == 404


def test_the_champion_at_a_moment_comes_from_the_audit_log(site, auditor) -> None:
    before = auditor.get("/audit/models/business-aid.fraud-risk", params={"at": "2000-01-01"})
    now = auditor.get("/audit/models/business-aid.fraud-risk", params={"at": "2999-01-01"})
    wrong = auditor.get("/audit/models/business-aid.fraud-risk", params={"at": "yesterday"})

    assert "Champion at 2000-01-01: none" in before.text
    assert "Champion at 2999-01-01: v1" in now.text
    assert "is not a date or time" in wrong.text


def test_a_batch_is_traced_to_its_model_run_and_data(site, auditor) -> None:
    own = site["batches"][FRAUD]

    page = auditor.get("/audit/lineage", params={"batch_id": own.batch_id})
    unknown = auditor.get("/audit/lineage", params={"batch_id": f"batch-{'0' * 20}"})
    malformed = auditor.get("/audit/lineage", params={"batch_id": "../../etc"})

    assert page.status_code == 200 and "Complete: every link was followed." in page.text
    assert "model card" in page.text and "open in MLflow" in page.text and "md5" in page.text
    assert unknown.status_code == 404 and malformed.status_code == 404


def test_a_version_is_traced_and_its_evidence_links_open_in_a_real_mlflow_ui(
    site, auditor, tmp_path
) -> None:
    page = auditor.get("/audit/lineage", params={"model": "business-aid.fraud-risk", "version": 1})
    unknown = auditor.get(
        "/audit/lineage", params={"model": "business-aid.fraud-risk", "version": 9}
    )
    model_page = auditor.get("/audit/models/business-aid.fraud-risk")

    assert page.status_code == 200 and "Lineage of business-aid.fraud-risk v1" in page.text
    assert "Complete: every link was followed." in page.text
    assert "approval</strong>: not required: the gate promoted it" in page.text
    assert unknown.status_code == 404 and "version" in unknown.text
    assert "/audit/lineage?model=business-aid.fraud-risk&amp;version=1" in model_page.text
    links = [
        unescape(link)
        for link in re.findall(r'href="(http://127\.0\.0\.1:5000/get-artifact[^"]+)"', page.text)
    ]
    assert any("validation%2Ftraining_data.json" in link for link in links), links
    assert any("data_docs%2Findex.html" in link for link in links), links

    port = free_port()  # `agencyml ui` on its own port: the links' paths must open there
    log = tmp_path / "mlflow-ui.log"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    with open(log, "wb") as output:
        ui = subprocess.Popen(
            [sys.executable, "-m", "flows", "ui", "--port", str(port)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_up(f"http://127.0.0.1:{port}/health", ui, log)
        opened = {}
        for link in links:
            parts = urlsplit(link)
            reply = httpx.get(f"http://127.0.0.1:{port}{parts.path}?{parts.query}", timeout=60)
            opened[parts.query] = (reply.status_code, reply.text[:200])
        ui.terminate()  # SIGTERM to `agencyml ui` alone stops MLflow's server and its workers
        ui.wait(timeout=30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and answers(f"http://127.0.0.1:{port}/health"):
            time.sleep(0.5)
        left_running = answers(f"http://127.0.0.1:{port}/health")
    finally:
        stop(ui)
    assert not left_running

    assert all(status == 200 for status, _ in opened.values()), opened
    report = next(text for query, (_, text) in opened.items() if "training_data.json" in query)
    docs = next(text for query, (_, text) in opened.items() if "index.html" in query)
    assert '"result_id"' in report or '"success"' in report
    assert "<html" in docs.lower()


def answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return False
    return True


def test_the_logs_page_verifies_both_hash_chains(site, auditor) -> None:
    page = auditor.get("/audit/logs")

    assert page.text.count("The hash chain verifies") == 2
    assert "/audit/logs" in page.text or "GET /batches" in page.text


def test_agencies_do_not_get_the_audit_pages(site) -> None:
    client = signed_in(site, site["secrets"]["fraud"])

    assert client.get("/audit").status_code == 404
    assert client.get("/audit/models/product-safety.risk-triage").status_code == 404
