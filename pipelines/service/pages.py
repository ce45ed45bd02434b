"""Web pages on the pull service, for agencies' case workers who do not use the API.

Sign-in takes an existing token (`agencyml tokens create`) once and gives a session cookie
(HttpOnly, SameSite=Strict, Secure over TLS). Sessions live in the service's memory: they end
after AGENCYML_SESSION_IDLE_MINUTES without a request (default 30), at sign-out, when the token
is revoked, or when the service restarts. Every form carries a CSRF token. Pages are rendered
from the Jinja2 templates beside this module; every asset comes from the app itself. An agency
sees its own batches only: another agency's batch gets the same "not found" page as a batch
that does not exist. Page views and actions go to the access log like API calls."""

from __future__ import annotations

import hmac
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipelines.data import storage
from pipelines.paths import StateDir
from pipelines.service import access
from pipelines.service.api import (
    BATCH_PATTERN,
    cached_file,
    create_app,
    download_file,
    filter_batches,
    find_batch,
    published_batches,
    report_file,
    scored_parts,
)
from pipelines.service.files import batch_file
from pipelines.settings import settings

TEMPLATES = Path(__file__).with_name("templates")
SESSION_COOKIE = "agencyml_session"
SIGN_IN_COOKIE = "agencyml_sign_in"  # the sign-in form's CSRF token, before any session
PAGE_SIZE = 20
MAX_FORM_BYTES = 4096


def idle_minutes() -> float:
    """AGENCYML_SESSION_IDLE_MINUTES (default 30); a malformed value stops the service at
    start with a SettingsError rather than silently using the default."""
    return settings().session_idle_minutes


@dataclass
class Session:
    token: access.Token
    csrf: str
    last_seen: float


class Sessions:
    """Signed-in sessions by their random id, in this process's memory."""

    def __init__(self, state: StateDir, idle_seconds: float) -> None:
        self.state, self.idle_seconds = state, idle_seconds
        self.sessions: dict[str, Session] = {}
        self.lock = threading.Lock()

    def start(self, token: access.Token) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(token, secrets.token_urlsafe(32), time.monotonic())
        with self.lock:
            self.sessions[session_id] = session
        return session_id, session

    def find(self, session_id: str | None) -> Session | None:
        """The live session, or None: unknown, idle too long, or its token revoked since."""
        if not session_id:
            return None
        with self.lock:
            session = self.sessions.get(session_id)
            if session is None:
                return None
            now = time.monotonic()
            if now - session.last_seen > self.idle_seconds or self.revoked(session.token):
                del self.sessions[session_id]
                return None
            session.last_seen = now
            return session

    def end(self, session_id: str | None) -> None:
        with self.lock:
            self.sessions.pop(session_id or "", None)

    def revoked(self, token: access.Token) -> bool:
        current = {t.token_id: t for t in access.list_tokens(self.state)}.get(token.token_id)
        return current is None or current.revoked


class PageNotFound(Exception):
    """Answered with the one "not found" page, whatever was missing or not the caller's."""


class SignInNeeded(Exception):
    """No live session: back to the sign-in page."""


def create_service(state: StateDir) -> FastAPI:
    """The pull service as `agencyml serve` runs it: the API and these pages on one app."""
    app = create_app(state)
    add_pages(app, state)
    return app


def add_pages(app: FastAPI, state: StateDir) -> None:
    """The pages, on the pull service's app."""
    sessions = Sessions(state, idle_minutes() * 60)
    templates = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"])
    )
    templates.filters["number"] = lambda value: f"{value:,}" if isinstance(value, int) else value
    templates.filters["metric"] = metric_text

    def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = templates.get_template(name).render(**context)
        response = HTMLResponse(html, status_code=status)
        response.headers["Content-Security-Policy"] = (
            "default-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'"
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    def session_token(request: Request) -> access.Token | None:
        session = sessions.find(request.cookies.get(SESSION_COOKIE))
        return session.token if session else None

    # a signed-in person's request is logged with the token, even one that matches no page
    app.state.access_gate.identifiers.append(session_token)

    def signed_in(request: Request) -> Session:
        session = sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise SignInNeeded
        request.state.token = session.token  # the access log names who viewed the page
        return session

    def agency_of(session: Session) -> str:
        if session.token.role != "agency" or not session.token.agency:
            raise PageNotFound  # auditors' and approvers' pages are not built yet
        return session.token.agency

    async def form_of(request: Request) -> dict[str, str]:
        body = await request.body()
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
        return {key: values[0] for key, values in fields.items()}

    def same(presented: str | None, expected: str | None) -> bool:
        return bool(presented and expected) and hmac.compare_digest(
            str(presented).encode(), str(expected).encode()
        )

    @app.exception_handler(PageNotFound)
    async def not_found_page(request: Request, error: PageNotFound) -> HTMLResponse:
        session = sessions.find(request.cookies.get(SESSION_COOKIE))
        return render("not_found.html", status=404, session=session)

    @app.exception_handler(SignInNeeded)
    async def to_sign_in(request: Request, error: SignInNeeded) -> RedirectResponse:
        return RedirectResponse("/", status_code=303)

    @app.get("/", include_in_schema=False)
    def home(request: Request) -> Response:
        session = sessions.find(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            return RedirectResponse(home_of(session.token), status_code=303)
        csrf = secrets.token_urlsafe(32)
        response = render("sign_in.html", csrf=csrf, problem=None, idle=idle_minutes())
        set_cookie(request, response, SIGN_IN_COOKIE, csrf)
        return response

    @app.post("/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await form_of(request)
        if not same(form.get("csrf"), request.cookies.get(SIGN_IN_COOKIE)):
            return render("refused.html", status=403, session=None)
        token = access.authenticate(state, form.get("token", "").strip())
        if token is None:
            csrf = secrets.token_urlsafe(32)
            response = render(
                "sign_in.html",
                status=401,
                csrf=csrf,
                idle=idle_minutes(),
                problem="That token is not valid: it may be mistyped or revoked. Ask your "
                "platform team for a token (agencyml tokens create).",
            )
            set_cookie(request, response, SIGN_IN_COOKIE, csrf)
            return response
        request.state.token = token
        session_id, _ = sessions.start(token)
        response = RedirectResponse(home_of(token), status_code=303)
        set_cookie(request, response, SESSION_COOKIE, session_id)
        response.delete_cookie(SIGN_IN_COOKIE, path="/")
        return response

    @app.post("/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        session = signed_in(request)
        form = await form_of(request)
        if not same(form.get("csrf"), session.csrf):
            return render("refused.html", status=403, session=session)
        sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.get("/batches", include_in_schema=False)
    def batches_page(
        request: Request, use_case: str = "", since: str = "", until: str = "", page: int = 1
    ) -> HTMLResponse:
        session = signed_in(request)
        agency = agency_of(session)
        everything = [manifest for _, manifest in published_batches(state, agency)]
        use_cases = sorted({str(m.get("use_case")) for m in everything})
        days, problem = filter_days(since.strip(), until.strip())
        shown = filter_batches(everything, use_case=use_case or None, **days)
        pages = max(1, math.ceil(len(shown) / PAGE_SIZE))
        page = min(max(page, 1), pages)
        rows = [batch_row(m) for m in shown[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]]
        query = {"use_case": use_case, "since": since, "until": until}

        def link(number: int) -> str:
            return "/batches?" + urlencode({**query, "page": number})

        return render(
            "batches.html",
            session=session,
            agency=agency,
            rows=rows,
            use_cases=use_cases,
            use_case=use_case,
            since=since,
            until=until,
            problem=problem,
            page=page,
            pages=pages,
            total=len(shown),
            previous=link(page - 1) if page > 1 else None,
            next=link(page + 1) if page < pages else None,
        )

    def own_batch(session: Session, batch_id: str) -> tuple[Path, dict[str, Any]]:
        agency = agency_of(session)
        if not BATCH_ID.fullmatch(batch_id):
            raise PageNotFound
        try:
            return find_batch(state, agency, batch_id)
        except HTTPException:
            raise PageNotFound from None

    @app.get("/batches/{batch_id}", include_in_schema=False)
    def batch_page(request: Request, batch_id: str) -> HTMLResponse:
        session = signed_in(request)
        folder, manifest = own_batch(session, batch_id)
        return render(
            "batch.html",
            session=session,
            batch=batch_details(state, folder, manifest),
        )

    @app.get("/batches/{batch_id}/scored.{kind}", include_in_schema=False)
    def scored_rows(request: Request, batch_id: str, kind: str) -> Response:
        session = signed_in(request)
        folder, manifest = own_batch(session, batch_id)
        try:
            if kind == "parquet":
                path, digest = download_file(state, folder, manifest, "parquet")
            elif kind == "csv":
                path, digest = friendly_csv(state, folder, manifest)
            else:
                raise PageNotFound
        except HTTPException:
            raise PageNotFound from None
        return FileResponse(
            path,
            filename=f"{batch_id}.{kind}",
            headers={"X-Content-SHA256": digest},
        )

    @app.get("/batches/{batch_id}/drift.html", include_in_schema=False)
    def drift_report(request: Request, batch_id: str) -> Response:
        session = signed_in(request)
        folder, manifest = own_batch(session, batch_id)
        try:
            report = report_file(folder, manifest, "drift.html")
        except HTTPException:
            raise PageNotFound from None
        return FileResponse(report, media_type="text/html")

    @app.get("/batches/{batch_id}/quarantined.csv", include_in_schema=False)
    def quarantined_rows(request: Request, batch_id: str) -> Response:
        session = signed_in(request)
        folder, _ = own_batch(session, batch_id)
        rows = quarantine_file(state, folder, "rows.csv")
        if rows is None:
            raise PageNotFound
        return FileResponse(rows, filename=f"{batch_id}-quarantined.csv")

    def approver(session: Session) -> str | None:
        """The agency an approver decides for (None: every agency); others get not-found."""
        if session.token.role != "approver":
            raise PageNotFound
        return session.token.agency

    @app.get("/approvals", include_in_schema=False)
    def approvals_page(request: Request, done: str = "") -> HTMLResponse:
        session = signed_in(request)
        return render(
            "approvals.html",
            session=session,
            queue=[queue_item(item) for item in promotion_queue(state, approver(session))],
            done=done[:200],
            problem=None,
        )

    @app.post("/approvals/{model}/{version}", include_in_schema=False)
    async def decide(request: Request, model: str, version: str) -> Response:
        session = signed_in(request)
        scope = approver(session)
        if not MODEL_NAME.fullmatch(model) or not version.isdigit():
            raise PageNotFound
        if scope is not None and not model.startswith(f"{scope}."):
            raise PageNotFound
        form = await form_of(request)
        if not same(form.get("csrf"), session.csrf):
            return render("refused.html", status=403, session=session)
        action, reason = form.get("action"), form.get("reason", "").strip()
        problem = None
        if action not in ("approve", "reject"):
            problem = "Choose approve or reject."
        elif not reason:
            problem = f"Say why you {action} {model} v{version}: the reason is recorded."
        else:
            problem = record_decision(state, model, version, action, session.token.name, reason)
        if problem is None:
            verb = "approved" if action == "approve" else "rejected"
            return RedirectResponse(
                "/approvals?" + urlencode({"done": f"{model} v{version} {verb}"}),
                status_code=303,
            )
        queue = [queue_item(item) for item in promotion_queue(state, scope)]
        return render(
            "approvals.html", status=409, session=session, queue=queue, done="", problem=problem
        )

    def auditor(session: Session) -> None:
        """Auditors (and admins) read every agency; everyone else gets not-found."""
        if session.token.role not in ("auditor", "admin"):
            raise PageNotFound

    @app.get("/audit", include_in_schema=False)
    def audit_home(request: Request) -> HTMLResponse:
        session = signed_in(request)
        auditor(session)
        return render("audit.html", session=session, models=registered_models(state))

    @app.get("/audit/models/{model}", include_in_schema=False)
    def audit_model(request: Request, model: str, at: str = "") -> HTMLResponse:
        session = signed_in(request)
        auditor(session)
        if not MODEL_NAME.fullmatch(model):
            raise PageNotFound
        details = model_details(state, model, at.strip())
        if details is None:
            raise PageNotFound
        return render("audit_model.html", session=session, model=details, at=at.strip())

    @app.get("/audit/models/{model}/{version}/card", include_in_schema=False)
    def audit_card(request: Request, model: str, version: str) -> Response:
        session = signed_in(request)
        auditor(session)
        if not MODEL_NAME.fullmatch(model) or not version.isdigit():
            raise PageNotFound
        card = model_card_html(state, model, version)
        if card is None:
            raise PageNotFound
        response = HTMLResponse(card)  # self-contained: its own inline CSS, no script
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
        )
        return response

    @app.get("/audit/lineage", include_in_schema=False)
    def audit_lineage(
        request: Request, batch_id: str = "", model: str = "", version: str = ""
    ) -> HTMLResponse:
        session = signed_in(request)
        auditor(session)
        batch_id, model, version = batch_id.strip(), model.strip(), version.strip()
        asked = bool(batch_id or model or version)
        if batch_id and BATCH_ID.fullmatch(batch_id):
            tree, problem = lineage_of(state, batch_id=batch_id)
        elif not batch_id and MODEL_NAME.fullmatch(model) and version.isdigit():
            tree, problem = lineage_of(state, model=model, version=version)
        else:
            tree = None
            problem = (
                "Give a batch id such as batch-0123456789abcdef0123, or a model such as "
                "business-aid.fraud-risk and a version number."
                if asked
                else ""
            )
        return render(
            "audit_lineage.html",
            status=404 if asked and tree is None else 200,
            session=session,
            batch_id=batch_id,
            model=model,
            version=version,
            tree=tree,
            problem=problem,
            mlflow_ui=mlflow_ui_url(),
        )

    @app.get("/audit/logs", include_in_schema=False)
    def audit_logs(request: Request) -> HTMLResponse:
        session = signed_in(request)
        auditor(session)
        return render("audit_logs.html", session=session, **logs_of(state))

    @app.get("/static/site.css", include_in_schema=False)
    def stylesheet() -> FileResponse:
        return FileResponse(TEMPLATES / "site.css", media_type="text/css")


BATCH_ID = re.compile(BATCH_PATTERN)
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}\.[a-z0-9][a-z0-9-]{0,63}$")


def filter_days(since: str, until: str) -> tuple[dict[str, date | None], str]:
    """The listing's date filter from its form fields (YYYY-MM-DD, either may be empty), or
    no filter and what is wrong with them."""
    try:
        days = {
            key: date.fromisoformat(value) if value else None
            for key, value in (("since", since), ("until", until))
        }
    except ValueError:
        return {}, "Give dates as YYYY-MM-DD, e.g. 2026-11-30. Showing every date."
    if days["since"] and days["until"] and days["since"] > days["until"]:
        return days, "The first date is after the second, so no batch can match."
    return days, ""


def metric_text(value: Any) -> str:
    """A metric for the page: counts whole, rates to 4 places, 'none' when not measured."""
    if not isinstance(value, int | float) or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if float(value).is_integer() and abs(value) >= 2:
        return f"{int(value):,}"
    return f"{value:.4f}"


def home_of(token: access.Token) -> str:
    return {"approver": "/approvals", "auditor": "/audit", "admin": "/audit"}.get(
        token.role, "/batches"
    )


def mlflow_ui_url() -> str:
    from pipelines.registry.trace import mlflow_ui_url as configured

    return configured()


def registered_models(state: StateDir) -> list[dict[str, Any]]:
    """Every registered model of every agency, with its aliases."""
    from mlflow.tracking import MlflowClient

    from pipelines.registry import tracking

    tracking.configure(state)
    models = MlflowClient().search_registered_models(max_results=1000)
    return sorted(
        (
            {
                "name": m.name,
                "agency": m.name.partition(".")[0],
                "aliases": {alias: str(v) for alias, v in (m.aliases or {}).items()},
            }
            for m in models
        ),
        key=lambda m: m["name"],
    )


def model_details(state: StateDir, model: str, at: str) -> dict[str, Any] | None:
    """A model's versions with their status, its champion history, and the champion at `at`."""
    from pipelines.registry import promotion, tracking
    from pipelines.registry.model_card import registry_facts

    if model not in {m["name"] for m in registered_models(state)}:
        return None
    versions = sorted(
        (entry for entry in tracking.versions_tagged_any(state, model)),
        key=lambda e: int(e.version),
        reverse=True,
    )
    events = promotion.read_events(state, model)
    answer = problem = None
    if at:
        try:
            answer = promotion.champion_at(events, promotion.parse_moment(at)) or "none"
        except promotion.RegistryError as error:
            problem = str(error)
    return {
        "name": model,
        "versions": [
            {
                "version": e.version,
                "aliases": ", ".join(e.aliases) or "-",
                "registered": datetime_text(e.registered_ms),
                **registry_facts(e.tags),
            }
            for e in versions
        ],
        "events": events,
        "champion_at": answer,
        "problem": problem,
    }


def datetime_text(milliseconds: int) -> str:
    from datetime import UTC, datetime

    if not milliseconds:
        return "not recorded"
    moment = datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    return moment.isoformat(timespec="seconds")


def model_card_html(state: StateDir, model: str, version: str) -> str | None:
    from pipelines.registry import model_card, tracking
    from pipelines.registry.tracking import ModelNotFoundError

    try:
        facts = model_card.collect_card_facts(model, version, state)
    except ModelNotFoundError:
        return None
    return model_card.render_html(facts, tracking.run_plots(facts["model"].get("run_id"), state))


def lineage_of(
    state: StateDir, *, batch_id: str = "", model: str = "", version: str = ""
) -> tuple[dict[str, Any] | None, str]:
    """A batch's or a model version's lineage as a tree of plain values, or why there is
    none."""
    from pipelines.registry.trace import (
        BatchNotFoundError,
        ModelNotFoundError,
        trace_batch,
        trace_model,
    )

    try:
        tree = trace_batch(batch_id, state) if batch_id else trace_model(model, version, state)
    except (BatchNotFoundError, ModelNotFoundError) as error:
        return None, str(error)
    return {"complete": tree.complete(), "root": tree.for_people().to_dict()}, ""


def logs_of(state: StateDir) -> dict[str, Any]:
    """The registry's audit log and the newest access-log entries, each chain verified."""
    from pipelines.hashlog import LogAnchorError, LogTamperedError
    from pipelines.registry import promotion

    found: dict[str, Any] = {}
    for name, read in (
        ("audit", lambda: promotion.read_events(state)),
        ("access", lambda: access.read_access_log(state)),
    ):
        try:
            records = read()
            found[name] = {"records": records[-100:][::-1], "total": len(records), "problem": ""}
        except (LogTamperedError, LogAnchorError) as error:
            found[name] = {"records": [], "total": 0, "problem": str(error)}
    return found


def promotion_queue(state: StateDir, agency: str | None) -> list[dict[str, Any]]:
    from pipelines.registry import promotion

    return promotion.approval_queue(state, agency)


def record_decision(
    state: StateDir, model: str, version: str, action: str, by: str, reason: str
) -> str | None:
    """Approve or reject through the registry's own rules and audit log, as the CLI does, and
    refresh the version's card and description; the registry's refusal, if any, in words."""
    from pipelines.registry import promotion, records
    from pipelines.registry.tracking import ModelNotFoundError

    try:
        decide = promotion.approve if action == "approve" else promotion.reject
        event = decide(model, version, by, reason, state)
    except (promotion.RegistryError, ModelNotFoundError) as error:
        return str(error)
    for touched in {event.get("from_version"), event.get("to_version"), version} - {None}:
        records.refresh_model_card(model, str(touched), state)
    return None


def queue_item(item: dict[str, Any]) -> dict[str, Any]:
    """A version awaiting approval, as the page shows it: the gate's checks and the metrics of
    challenger and champion side by side (the same holdout rows)."""
    gate = item.get("gate") or {}
    challenger, champion = gate.get("challenger") or {}, gate.get("champion") or {}
    metrics = [
        {
            "name": name,
            "challenger": challenger.get(name),
            "champion": champion.get(name),
        }
        for name in sorted(challenger)
        if isinstance(challenger.get(name), int | float) and not name.startswith("slice.")
    ]  # per-slice figures are on the card; the gate's slice check sums them up here
    return {
        **item,
        "primary_metric": gate.get("primary_metric"),
        "champion_version": gate.get("champion_version"),
        "checks": [c for c in gate.get("checks") or [] if isinstance(c, dict)],
        "metrics": metrics,
    }


def set_cookie(request: Request, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def batch_row(manifest: dict[str, Any]) -> dict[str, Any]:
    rows, model = manifest.get("rows") or {}, manifest.get("model") or {}
    return {
        "batch_id": manifest.get("batch_id"),
        "use_case": manifest.get("use_case"),
        "created_at": str(manifest.get("created_at", ""))[:19].replace("T", " "),
        "rows_in": rows.get("in"),
        "scored": rows.get("scored"),
        "quarantined": rows.get("quarantined"),
        "drift": (manifest.get("drift") or {}).get("level") or "not measured",
        "model": f"{model.get('name')} v{model.get('version')}",
    }


def batch_details(state: StateDir, folder: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    """What the batch page shows, from the manifest and the quarantine's report."""
    scores = manifest.get("scores") or {}
    drift = manifest.get("drift") or {}
    report = quarantine_file(state, folder, "report.json")
    checks = storage.read_json_file(report).get("checks", []) if report else []
    failures = {
        str(check.get("expectation")): int(check.get("unexpected_count") or 0)
        for check in checks
        if isinstance(check, dict) and not check.get("success") and check.get("level") == "row"
    }
    return {
        **batch_row(manifest),
        "decisions": scores.get("decisions") or {},
        "drift_report": "drift.html" in (manifest.get("files") or [])
        and batch_file(folder, "drift.html") is not None,
        "drift_columns": drift.get("columns") or {},
        "quarantine_reasons": failures,
        "quarantine_rows": quarantine_file(state, folder, "rows.csv") is not None,
        "sha256": (manifest.get("file_sha256") or {}),
    }


def quarantine_file(state: StateDir, folder: Path, name: str) -> Path | None:
    """A file of the batch's published quarantine, if it is a regular file there. The agency,
    use case and batch id come from the batch folder's own place, not from its manifest."""
    use_case, agency = folder.parent.name, folder.parent.parent.name
    return batch_file(state.quarantine_dir, f"{agency}/{use_case}/{folder.name}/{name}")


def friendly_csv(state: StateDir, folder: Path, manifest: dict[str, Any]) -> tuple[Path, str]:
    """The scored rows as CSV for a spreadsheet: probabilities rounded to 4 places (the parquet
    keeps them whole), made once in the download cache, chunk by chunk."""
    parts = scored_parts(folder, manifest)

    def rounded(frame: pd.DataFrame) -> pd.DataFrame:
        for column in frame.columns:
            if column == "probability" or column.startswith("proba_"):
                frame[column] = np.round(frame[column].to_numpy(dtype=float), 4)
        return frame

    return cached_file(state, manifest, parts, "rounded.csv", rounded, storage.write_csv_stream)
