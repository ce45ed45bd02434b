"""The access gate on a real app in this process: an answer is sent only once its entry is in
the log, a log that cannot be written or fails its check gets 503, and an address without a
token is held back past its limit with only its first refusal logged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from pipelines import hashlog
from pipelines.paths import StateDir
from pipelines.service import access
from pipelines.service.access_gate import UNAVAILABLE, guard
from pipelines.service.api import create_app
from pipelines.service.limits import AnonymousLimit


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


def test_an_answer_is_logged_with_its_length(state: StateDir) -> None:
    answer = TestClient(create_app(state)).get("/openapi.json")

    assert answer.status_code == 200
    entry = access.read_access_log(state)[-1]
    assert (entry["path"], entry["status"], entry["bytes"]) == (
        "/openapi.json",
        200,
        len(answer.content),
    )
    assert entry["user_agent"] == "testclient"


def test_a_log_that_cannot_be_written_gets_503_and_nothing_is_served(state: StateDir) -> None:
    client = TestClient(create_app(state))
    client.get("/openapi.json")
    log = access.access_log_path(state)
    # the head file cannot be replaced: a folder sits where its new copy is written
    blocker = log.parent / f".{hashlog.head_path(log).name}.{os.getpid()}.partial"
    blocker.mkdir()

    answer = client.get("/openapi.json")

    assert answer.status_code == 503 and answer.json() == {"detail": UNAVAILABLE}
    assert "openapi" not in answer.text
    blocker.rmdir()
    assert client.get("/openapi.json").status_code == 200
    # the refused request's line was written before its head could be: the log may say more
    # was answered than was, never less
    assert [e["path"] for e in access.read_access_log(state)] == ["/openapi.json"] * 3


def test_a_log_that_fails_its_check_runs_nothing(state: StateDir) -> None:
    client = TestClient(create_app(state))
    client.get("/openapi.json")
    log = access.access_log_path(state)
    log.write_bytes(log.read_bytes()[:-1])

    assert client.get("/openapi.json").status_code == 503
    assert client.get("/v1/agencies/business-aid/batches").status_code == 503
    assert len(log.read_bytes().splitlines()) == 1


def test_past_its_limit_an_address_without_a_token_gets_429_and_one_line(
    state: StateDir,
) -> None:
    app = FastAPI()
    guard(app, state, AnonymousLimit(requests=2, seconds=60))

    @app.get("/ping")
    def ping() -> dict[str, str]:
        return {"ping": "pong"}

    client = TestClient(app)
    answers = [client.get("/ping") for _ in range(5)]

    assert [a.status_code for a in answers] == [200, 200, 429, 429, 429]
    assert 1 <= int(answers[2].headers["Retry-After"]) <= 60
    assert [e["status"] for e in access.read_access_log(state)] == [200, 200, 429]


def test_the_limit_comes_from_its_setting(state: StateDir, monkeypatch) -> None:
    monkeypatch.setenv("AGENCYML_ANONYMOUS_REQUESTS_PER_MINUTE", "3")
    client = TestClient(create_app(state))

    answers = [client.get("/openapi.json").status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]


def test_a_limit_below_one_is_refused_as_a_setting(state: StateDir, monkeypatch) -> None:
    from pipelines.settings import SettingsError

    monkeypatch.setenv("AGENCYML_ANONYMOUS_REQUESTS_PER_MINUTE", "0")
    with pytest.raises(SettingsError, match="AGENCYML_ANONYMOUS_REQUESTS_PER_MINUTE"):
        create_app(state)
