"""API tokens and the access log: secrets are never stored, tokens are checked and revoked as
promised, concurrent writers lose nothing, and the access log cannot be edited unseen."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipelines.hashlog import LogTamperedError
from pipelines.paths import PACKAGE_ROOT, StateDir
from pipelines.service.access import (
    ROLES,
    AccessError,
    Token,
    access_log_path,
    authenticate,
    create_token,
    list_tokens,
    log_access,
    read_access_log,
    revoke_token,
    tokens_path,
)


@pytest.fixture
def state(tmp_path: Path, small_project: Path) -> StateDir:
    """An empty state directory in a project whose agencies are business-aid and product-safety."""
    return StateDir(tmp_path / "state")


def every_file_under(state: StateDir) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in state.root.rglob("*") if path.is_file()}


# --- tokens --------------------------------------------------------------------------------


def test_the_secret_is_returned_once_and_only_its_hash_is_stored(state: StateDir) -> None:
    token, secret = create_token(state, role="agency", name="nightly pull", agency="business-aid")

    assert secret.startswith("aml_") and len(secret) == 4 + 43
    assert len(token.token_id) == 12 and int(token.token_id, 16) >= 0
    files = every_file_under(state)
    assert files, "the token was not written anywhere"
    assert not [path for path, content in files.items() if secret.encode() in content]
    stored = json.loads(tokens_path(state).read_text())["tokens"]
    assert stored[0]["secret_sha256"] == hashlib.sha256(secret.encode()).hexdigest()
    assert "secret" not in stored[0]


def test_tokens_are_listed_in_the_order_they_were_made(state: StateDir) -> None:
    assert list_tokens(state) == []
    first, _ = create_token(state, role="admin", name="ops")
    second, _ = create_token(state, role="agency", name="pull", agency="product-safety")

    assert list_tokens(state) == [first, second]
    assert second == Token(
        token_id=second.token_id,
        agency="product-safety",
        role="agency",
        name="pull",
        created_at=second.created_at,
        revoked_at=None,
        can_read_rows=True,
    )


@pytest.mark.parametrize(
    ("role", "agency", "granted", "can_read_rows"),
    [
        ("agency", "business-aid", None, True),
        ("admin", None, None, True),
        ("auditor", None, None, False),
        ("auditor", None, True, True),
        ("agency", "business-aid", False, False),
    ],
)
def test_only_auditors_read_no_rows_unless_granted(
    state: StateDir, role: str, agency: str | None, granted: bool | None, can_read_rows: bool
) -> None:
    token, _ = create_token(state, role=role, name="t", agency=agency, can_read_rows=granted)

    assert token.can_read_rows is can_read_rows
    assert list_tokens(state)[0].can_read_rows is can_read_rows


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            {"role": "owner", "name": "t"},
            "unknown role 'owner'; use one of: agency, auditor, admin, approver",
        ),
        ({"role": "agency", "name": "t"}, "an agency token needs the agency"),
        ({"role": "admin", "name": "t", "agency": "business-aid"}, "take no agency"),
        ({"role": "auditor", "name": "t", "agency": "business-aid"}, "take no agency"),
        ({"role": "admin", "name": "  "}, "give the token a name"),
        (
            {"role": "agency", "name": "t", "agency": "tax"},
            "unknown agency 'tax'; known agencies: business-aid, product-safety",
        ),
        (
            {"role": "approver", "name": "t", "agency": "tax"},
            "unknown agency 'tax'.*without an agency approves for every agency",
        ),
    ],
)
def test_bad_token_requests_say_what_to_change(
    state: StateDir, request_: dict, message: str
) -> None:
    with pytest.raises(AccessError, match=message):
        create_token(state, **request_)
    assert not tokens_path(state).exists()


def test_roles_are_the_four_the_service_knows() -> None:
    assert ROLES == ("agency", "auditor", "admin", "approver")


@pytest.mark.parametrize("agency", ["business-aid", None])
def test_an_approver_decides_for_one_agency_or_all_and_reads_no_rows(
    state: StateDir, agency: str | None
) -> None:
    token, _ = create_token(state, role="approver", name="head of unit", agency=agency)

    assert (token.role, token.agency, token.can_read_rows) == ("approver", agency, False)


# --- authentication and revocation ---------------------------------------------------------


def test_a_live_secret_authenticates_as_its_token(state: StateDir) -> None:
    create_token(state, role="admin", name="ops")
    token, secret = create_token(state, role="agency", name="pull", agency="business-aid")

    assert authenticate(state, secret) == token


@pytest.mark.parametrize(
    "presented",
    [
        None,
        "",
        "aml_",
        "aml_short",
        "Bearer aml_" + "a" * 43,
        "aml_" + "a" * 42 + "!",
        "aml_" + "é" * 43,
        "aml_" + "a" * 44,
    ],
)
def test_missing_or_malformed_secrets_authenticate_as_nobody(
    state: StateDir, presented: str | None
) -> None:
    create_token(state, role="admin", name="ops")

    assert authenticate(state, presented) is None


def test_a_well_formed_but_unknown_secret_authenticates_as_nobody(state: StateDir) -> None:
    _, secret = create_token(state, role="admin", name="ops")
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")

    assert authenticate(state, wrong) is None
    assert authenticate(StateDir(state.root / "empty"), secret) is None


def test_a_revoked_token_stops_working_and_cannot_be_revoked_twice(state: StateDir) -> None:
    token, secret = create_token(state, role="auditor", name="annual review")
    other, other_secret = create_token(state, role="admin", name="ops")

    revoked = revoke_token(state, token.token_id)

    assert revoked.revoked_at is not None and revoked.token_id == token.token_id
    assert authenticate(state, secret) is None
    assert authenticate(state, other_secret) == other
    assert list_tokens(state)[0] == revoked
    with pytest.raises(AccessError, match="was already revoked at"):
        revoke_token(state, token.token_id)


def test_revoking_an_unknown_id_lists_the_known_ones(state: StateDir) -> None:
    token, _ = create_token(state, role="admin", name="ops")

    with pytest.raises(AccessError, match=f"no token with id 'abc'.*known ids: {token.token_id}"):
        revoke_token(state, "abc")


MAKER = """
import sys
from pathlib import Path
from pipelines.service.access import create_token
from pipelines.paths import StateDir
for n in range(int(sys.argv[3])):
    token, _ = create_token(StateDir(Path(sys.argv[1])), role="admin", name=f"{sys.argv[2]}-{n}")
    print(token.token_id)
"""


def test_tokens_made_by_four_processes_at_once_are_all_kept(state: StateDir) -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT)}
    makers = [
        subprocess.Popen(
            [sys.executable, "-c", MAKER, str(state.root), str(m), "5"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for m in range(4)
    ]
    outputs = [maker.communicate(timeout=120) for maker in makers]
    assert [maker.returncode for maker in makers] == [0, 0, 0, 0]

    made = {line for stdout, _ in outputs for line in stdout.split()}
    tokens = list_tokens(state)

    assert len(made) == 20
    assert {token.token_id for token in tokens} == made
    assert sorted(token.name for token in tokens) == sorted(
        f"{m}-{n}" for m in range(4) for n in range(5)
    )


# --- the access log ------------------------------------------------------------------------


def log_three(state: StateDir) -> list[dict]:
    requests = [
        ("t1", "business-aid", "agency", "/batches", 200, 512),
        ("t2", "product-safety", "agency", "/batches/b1/rows", 200, 4096),
        (None, None, None, "/batches", 401, 0),
    ]
    return [
        log_access(
            state,
            token_id=token_id,
            agency=agency,
            role=role,
            method="GET",
            path=path,
            status=status,
            bytes_sent=size,
            client="10.0.0.7",
        )
        for token_id, agency, role, path, status, size in requests
    ]


def test_each_request_is_a_line_in_a_verified_chain(state: StateDir) -> None:
    written = log_three(state)

    records = read_access_log(state)

    assert records == written
    assert [r["seq"] for r in records] == [1, 2, 3]
    assert records[1]["prev"] == records[0]["hash"]
    assert {k: records[1][k] for k in ("token_id", "agency", "role", "method", "path")} == {
        "token_id": "t2",
        "agency": "product-safety",
        "role": "agency",
        "method": "GET",
        "path": "/batches/b1/rows",
    }
    assert (records[1]["status"], records[1]["bytes"], records[1]["client"]) == (
        200,
        4096,
        "10.0.0.7",
    )
    assert datetime.fromisoformat(records[0]["at"]).tzinfo is not None


def test_an_edited_access_line_is_named(state: StateDir) -> None:
    log_three(state)
    path = access_log_path(state)
    path.write_text(path.read_text().replace('"status": 401', '"status": 200'))

    with pytest.raises(LogTamperedError, match=r"access\.jsonl, line 3: .*edited outside agencyml"):
        read_access_log(state)


def test_the_log_is_filtered_by_agency_and_by_moment(state: StateDir) -> None:
    written = log_three(state)
    last_at = datetime.fromisoformat(written[-1]["at"])

    assert read_access_log(state, agency="product-safety") == [written[1]]
    assert read_access_log(state, agency="tax") == []
    assert read_access_log(state, since=last_at - timedelta(hours=1)) == written
    assert read_access_log(state, since=last_at)[-1] == written[-1]
    assert read_access_log(state, since=last_at + timedelta(seconds=1)) == []
    naive_before = (last_at - timedelta(hours=1)).astimezone(UTC).replace(tzinfo=None)
    assert read_access_log(state, agency="business-aid", since=naive_before) == [written[0]]


def test_an_empty_state_has_an_empty_access_log(state: StateDir) -> None:
    assert read_access_log(state) == []
