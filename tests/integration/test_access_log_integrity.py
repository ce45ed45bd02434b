"""The access log fails closed and cannot be rewritten quietly, on a real `agencyml serve`: a
cut or shortened log stops every answer (503, nothing served) until it is restored; a chain
cut back or rewritten without the key is caught by hashlog.read through the head kept in
MLflow (the audit log's too); huge paths are logged cut short; requests without a valid token
are limited per address. The service runs on a copy of the two agencies' state directory."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from pipelines import hashlog
from pipelines.hashlog import LogTamperedError
from pipelines.paths import state_dir
from pipelines.registry.log_heads import EXPERIMENT, MlflowHeads
from pipelines.registry.promotion import audit_path
from pipelines.service import access
from pipelines.service.limits import ANONYMOUS_REQUESTS, LOGGED_PATH_CHARS

FRAUD = "business-aid"


@pytest.fixture(scope="module")
def site(two_agencies, serve, tmp_path_factory):
    root = tmp_path_factory.mktemp("access-log")
    shutil.copytree(
        two_agencies["env"]["AGENCYML_HOME"],
        root / "state",
        symlinks=True,
        ignore=shutil.ignore_patterns("prefect"),
    )
    env = {**two_agencies["env"], "AGENCYML_HOME": str(root / "state")}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        state = state_dir()
        hashlog.keep_heads_in(MlflowHeads(state))  # this process checks MLflow's heads too
        fraud, secret = access.create_token(state, role="agency", agency=FRAUD, name="pull")
        batch_id = two_agencies["batches"][FRAUD].batch_id
        with serve(root / "serve.log") as running:
            yield {
                **running,
                "state": state,
                "log": access.access_log_path(state),
                "fraud": fraud,
                "headers": {"Authorization": f"Bearer {secret}"},
                "data": f"/v1/agencies/{FRAUD}/batches/{batch_id}/data",
                "server_log": root / "serve.log",
            }


def get(site, path: str, *, source: str = "127.0.0.1", **options) -> httpx.Response:
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=site["url"], transport=transport, timeout=60) as client:
        return client.get(path, **options)


def raw_get(site, target: str, *, source: str, user_agent: str) -> int:
    """The status of a GET written by hand on a socket from `source` (0: the server dropped
    the connection)."""
    host, port = site["url"].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60, source_address=(source, 0)) as s:
        reply = b""
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            s.sendall(
                f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {user_agent}\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            while chunk := s.recv(65536):
                reply += chunk
    return int(reply.split(b" ", 2)[1]) if reply else 0


def files_of(log: Path) -> dict[Path, bytes]:
    return {
        path: path.read_bytes()
        for path in (log, hashlog.key_path(log), hashlog.head_path(log))
        if path.exists()
    }


@contextlib.contextmanager
def restored_afterwards(log: Path) -> Iterator[dict[Path, bytes]]:
    """The log, its key and head file as they are now, put back whatever the test does."""
    saved = files_of(log)
    try:
        yield saved
    finally:
        for path in (log, hashlog.key_path(log), hashlog.head_path(log)):
            if path in saved:
                path.write_bytes(saved[path])
            else:
                path.unlink(missing_ok=True)


def cli(*args: str) -> tuple[int, str]:
    from flows.cli import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_a_download_is_logged_with_its_bytes_and_the_head_is_kept_in_mlflow(site) -> None:
    from mlflow.tracking import MlflowClient

    answer = get(site, site["data"], headers=site["headers"])

    assert answer.status_code == 200 and answer.content.startswith(b"PAR1")
    last = access.read_access_log(site["state"])[-1]
    assert (last["path"], last["status"], last["token_id"]) == (
        site["data"],
        200,
        site["fraud"].token_id,
    )
    assert last["bytes"] == len(answer.content) and last["hash"].startswith("hmac-sha256:")
    key = hashlog.key_path(site["log"])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    client = MlflowClient(tracking_uri=site["state"].tracking_uri)
    tags = client.get_experiment_by_name(EXPERIMENT).tags
    kept = json.loads(tags["agencyml.head.access/access.jsonl"])
    assert (kept["count"], kept["last"]) == (last["seq"], last["hash"])
    assert "agencyml.head.registry/audit.jsonl" in tags  # the audit log's head, from training


@pytest.mark.parametrize("damage", ["last line cut", "a line deleted"])
def test_a_damaged_access_log_stops_every_answer_until_it_is_restored(site, damage) -> None:
    get(site, f"/v1/agencies/{FRAUD}/batches", headers=site["headers"])
    log = site["log"]
    with restored_afterwards(log) as saved:
        lines = saved[log].splitlines(keepends=True)
        if damage == "last line cut":
            log.write_bytes(saved[log][:-25])
        else:
            log.write_bytes(b"".join([*lines[:1], *lines[2:]]))
        damaged = log.read_bytes()

        download = get(site, site["data"], headers=site["headers"])
        listing = get(site, f"/v1/agencies/{FRAUD}/batches", headers=site["headers"])

        for answer in (download, listing):
            assert answer.status_code == 503
            assert answer.headers["content-type"] == "application/json"
            assert "access log cannot be written or failed its check" in answer.json()["detail"]
            assert b"PAR1" not in answer.content and FRAUD not in answer.text
        assert log.read_bytes() == damaged  # nothing written to the damaged log
        code, output = cli("access-log")
        assert code == 11 and "edited outside agencyml" in output
        assert "answers 503" in site["server_log"].read_text()

    assert get(site, site["data"], headers=site["headers"]).status_code == 200


def test_a_chain_cut_back_with_its_old_head_file_is_caught_by_the_head_in_mlflow(site) -> None:
    log = site["log"]
    earlier = files_of(log)
    for _ in range(2):
        get(site, f"/v1/agencies/{FRAUD}/batches", headers=site["headers"])
    with restored_afterwards(log):
        log.write_bytes(earlier[log])
        hashlog.head_path(log).write_bytes(earlier[hashlog.head_path(log)])

        with pytest.raises(LogTamperedError, match="the head kept in the tracking store"):
            hashlog.read(log)
        code, output = cli("access-log")
        assert code == 11 and "tracking store" in output


def rechained_without_the_key(records: list[dict], chain: hashlog.Chain) -> bytes:
    """The records chained again with plain sha256, as someone without the key can."""
    lines, previous = [], chain.first_prev
    for seq, record in enumerate(records, start=1):
        body = {k: v for k, v in record.items() if k not in (chain.hash, chain.prev, "seq")}
        rechained = {"seq": seq, **body, chain.prev: previous}
        rechained[chain.hash] = previous = chain.digest(rechained)
        lines.append(json.dumps(rechained, sort_keys=True) + "\n")
    return "".join(lines).encode()


@pytest.mark.parametrize("which", ["access", "audit"])
def test_a_chain_rewritten_without_the_key_is_caught(site, which) -> None:
    log = site["log"] if which == "access" else audit_path(site["state"])
    chain = hashlog.chain_of(log)
    records = hashlog.read(log)
    assert records, f"the {which} log is empty"
    with restored_afterwards(log):
        log.write_bytes(rechained_without_the_key(records[:-1], chain))
        hashlog.key_path(log).unlink()
        hashlog.head_path(log).unlink()

        with pytest.raises(LogTamperedError, match="the head kept in the tracking store"):
            hashlog.read(log)
        if which == "access":
            assert get(site, site["data"], headers=site["headers"]).status_code == 503
        else:
            code, output = cli("history", f"{FRAUD}.fraud-risk")
            assert code == 11 and "tracking store" in output


def test_a_huge_path_and_user_agent_are_logged_cut_short(site) -> None:
    huge = "/v1/" + "x" * 126_000
    before = site["log"].stat().st_size

    statuses = [
        raw_get(site, huge, source="127.0.0.3", user_agent="z"),
        raw_get(site, "/v1/x", source="127.0.0.3", user_agent="y" * 20_000),
    ]

    assert statuses == [404, 404]
    path_entry, agent_entry = access.read_access_log(site["state"])[-2:]
    assert path_entry["client"] == "127.0.0.3" and path_entry["token_id"] is None
    assert path_entry["path"].startswith("/v1/xxx")
    assert len(path_entry["path"]) < LOGGED_PATH_CHARS + 40
    assert path_entry["path"].endswith(f"({len(huge) - LOGGED_PATH_CHARS:,} more characters)")
    assert agent_entry["user_agent"].startswith("yyy") and len(agent_entry["user_agent"]) < 300
    assert site["log"].stat().st_size - before < 3_000


def test_a_valid_token_on_no_route_is_logged_with_its_id(site) -> None:
    answer = get(site, "/v1/no/such/route", headers=site["headers"])

    assert answer.status_code == 404
    entry = access.read_access_log(site["state"])[-1]
    assert (entry["path"], entry["token_id"], entry["agency"]) == (
        "/v1/no/such/route",
        site["fraud"].token_id,
        FRAUD,
    )


def test_repeated_requests_without_a_token_from_one_address_get_429(site) -> None:
    source, listing = "127.0.0.2", f"/v1/agencies/{FRAUD}/batches"
    transport = httpx.HTTPTransport(local_address=source)
    with httpx.Client(base_url=site["url"], transport=transport, timeout=60) as client:
        answers = [client.get(listing).status_code for _ in range(ANONYMOUS_REQUESTS)]
        refused = [client.get(listing) for _ in range(3)]
        with_token = client.get(listing, headers=site["headers"])

    assert set(answers) == {401}
    for answer in refused:
        assert answer.status_code == 429
        assert 1 <= int(answer.headers["Retry-After"]) <= 60
        assert "too many requests without a valid token" in answer.json()["detail"]
    assert with_token.status_code == 200  # a valid token is never held back
    assert get(site, listing).status_code == 401  # nor another address
    mine = [e for e in access.read_access_log(site["state"]) if e["client"] == source]
    assert [e["status"] for e in mine].count(429) == 1  # the first refusal only
    assert [e["status"] for e in mine].count(401) == ANONYMOUS_REQUESTS
