"""API tokens and the access log of the pull service, where agencies fetch their scored batches.

Tokens live in `<state>/access/tokens.json`, which holds only the sha256 of each secret: the
secret is shown once, when the token is made, and cannot be recovered from the state directory.
Every request the service answers is a line in `<state>/access/access.jsonl`, a keyed hash-chained
log (pipelines.hashlog) whose head is kept apart from it, so an auditor can trust who fetched what
and when."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipelines import config, hashlog
from pipelines.data import storage
from pipelines.durable import file_lock
from pipelines.paths import StateDir
from pipelines.service.limits import LOGGED_HEADER_CHARS, LOGGED_PATH_CHARS, capped

ROLES = ("agency", "auditor", "admin", "approver")
SECRET_PREFIX = "aml_"
# "aml_" and secrets.token_urlsafe(32): 43 characters of URL-safe base64.
SECRET_PATTERN = re.compile(r"aml_[A-Za-z0-9_-]{43}")


class AccessError(ValueError):
    """A token request that cannot be met; the message says what to change."""


@dataclass(frozen=True)
class Token:
    """One API token as the service sees it; the secret itself is never part of it."""

    token_id: str
    agency: str | None
    role: str
    name: str
    created_at: str
    revoked_at: str | None
    can_read_rows: bool

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def access_dir(state: StateDir) -> Path:
    return state.root / "access"


def tokens_path(state: StateDir) -> Path:
    return access_dir(state) / "tokens.json"


def access_log_path(state: StateDir) -> Path:
    return access_dir(state) / "access.jsonl"


def _tokens_lock(state: StateDir) -> Path:
    return access_dir(state) / "tokens.lock"


# --- tokens --------------------------------------------------------------------------------


def create_token(
    state: StateDir,
    *,
    role: str,
    name: str,
    agency: str | None = None,
    can_read_rows: bool | None = None,
) -> tuple[Token, str]:
    """Make a token and return it with its secret, which is shown this once and never stored.

    Auditor tokens read no row data unless `can_read_rows=True` grants it."""
    _check_request(role, name, agency)
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with file_lock(_tokens_lock(state)):
        records = _read_records(state)
        taken = {record["token_id"] for record in records}
        token = Token(
            token_id=_new_token_id(taken),
            agency=agency,
            role=role,
            name=name.strip(),
            created_at=_now(),
            revoked_at=None,
            can_read_rows=role in ("agency", "admin") if can_read_rows is None else can_read_rows,
        )
        records.append({**asdict(token), "secret_sha256": _secret_hash(secret)})
        _write_records(state, records)
    return token, secret


def list_tokens(state: StateDir) -> list[Token]:
    """Every token, revoked ones included, in the order they were made."""
    return [_token(state, record) for record in _read_records(state)]


def revoke_token(state: StateDir, token_id: str) -> Token:
    """Revoke a token for good; its secret stops working at the next request."""
    with file_lock(_tokens_lock(state)):
        records = _read_records(state)
        record = next((r for r in records if r["token_id"] == token_id), None)
        if record is None:
            known = ", ".join(r["token_id"] for r in records) or "none yet"
            raise AccessError(
                f"no token with id '{token_id}' in {tokens_path(state)}; known ids: {known}"
            )
        if record["revoked_at"] is not None:
            raise AccessError(
                f"token '{token_id}' ({record['name']}) was already revoked at "
                f"{record['revoked_at']}; there is nothing more to do"
            )
        record["revoked_at"] = _now()
        _write_records(state, records)
    return _token(state, record)


def authenticate(state: StateDir, secret: str | None) -> Token | None:
    """The live token a secret belongs to, or None (missing, malformed, unknown or revoked).

    Every stored hash is compared in constant time, without stopping at a match, so the time a
    request takes does not tell which tokens exist."""
    if not isinstance(secret, str) or not SECRET_PATTERN.fullmatch(secret):
        return None
    presented = _secret_hash(secret).encode()
    found = None
    for record in _read_records(state):
        if hmac.compare_digest(presented, str(record.get("secret_sha256", "")).encode()):
            found = record
    if found is None or found["revoked_at"] is not None:
        return None
    return _token(state, found)


def _check_request(role: str, name: str, agency: str | None) -> None:
    if role not in ROLES:
        raise AccessError(f"unknown role '{role}'; use one of: {', '.join(ROLES)}")
    if not name or not name.strip():
        raise AccessError(
            "give the token a name that says who holds it, e.g. 'business-aid nightly pull'"
        )
    if role == "agency":
        if not agency:
            raise AccessError(
                "an agency token needs the agency whose batches it may fetch; pass agency"
            )
        known = config.list_agencies()
        if agency not in known:
            raise AccessError(
                f"unknown agency '{agency}'; known agencies: {', '.join(known) or 'none'} "
                "(one per params/<agency>.yaml)"
            )
    elif role == "approver":
        known = config.list_agencies()
        if agency is not None and agency not in known:
            raise AccessError(
                f"unknown agency '{agency}'; known agencies: {', '.join(known) or 'none'} "
                "(an approver token without an agency approves for every agency)"
            )
    elif agency is not None:
        raise AccessError(
            f"{role} tokens cover every agency, so they take no agency (got '{agency}'); "
            "leave agency out, or make an agency token instead"
        )


def _new_token_id(taken: set[str]) -> str:
    while (token_id := uuid.uuid4().hex[:12]) in taken:
        continue
    return token_id


def _secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _read_records(state: StateDir) -> list[dict[str, Any]]:
    path = tokens_path(state)
    if not path.is_file():
        return []
    tokens = storage.read_json_file(path).get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, dict) for t in tokens):
        raise storage.InputFileError(
            f"{path}: expected {{'tokens': [...]}} with one object per token; the file was "
            "edited by hand. Restore it from a backup, or delete it and make new tokens"
        )
    return tokens


def _write_records(state: StateDir, records: list[dict[str, Any]]) -> None:
    storage.write_json(tokens_path(state), {"tokens": records})


def _token(state: StateDir, record: dict[str, Any]) -> Token:
    try:
        return Token(**{name: record[name] for name in Token.__dataclass_fields__})
    except KeyError as error:
        raise storage.InputFileError(
            f"{tokens_path(state)}: token {record.get('token_id', '?')} has no {error}; the "
            "file was edited by hand. Restore it from a backup, or revoke and remake the token"
        ) from error


# --- the access log ------------------------------------------------------------------------


def log_access(
    state: StateDir,
    *,
    token_id: str | None,
    agency: str | None,
    role: str | None,
    method: str,
    path: str,
    status: int,
    bytes_sent: int,
    client: str,
    user_agent: str = "",
) -> dict[str, Any]:
    """Record one answered request in the chained access log; returns the stored line. The
    path, client and user agent are cut to pipelines.service.limits' lengths, so a request
    cannot make its line large."""
    return hashlog.append(
        access_log_path(state),
        {
            "at": _now(),
            "token_id": token_id,
            "agency": agency,
            "role": role,
            "method": capped(method, 16),
            "path": capped(path, LOGGED_PATH_CHARS),
            "status": status,
            "bytes": bytes_sent,
            "client": capped(client, LOGGED_HEADER_CHARS),
            "user_agent": capped(user_agent, LOGGED_HEADER_CHARS),
        },
    )


def check_access_log(state: StateDir) -> None:
    """The cheap check made before each request is served: the log's end against its head
    (hashlog.check_end). Raises hashlog.LogTamperedError."""
    hashlog.check_end(access_log_path(state))


def read_access_log(
    state: StateDir, *, agency: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """The access log after checking its whole chain, optionally of one agency and from a
    moment on (a moment without a time zone is UTC). Raises hashlog.LogTamperedError."""
    records = hashlog.read(access_log_path(state))
    if agency is not None:
        records = [r for r in records if r.get("agency") == agency]
    if since is not None:
        moment = since if since.tzinfo else since.replace(tzinfo=UTC)
        records = [r for r in records if datetime.fromisoformat(r["at"]) >= moment]
    return records


def _now() -> str:
    return datetime.now(UTC).isoformat()
