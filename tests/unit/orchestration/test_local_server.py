"""The background Prefect server's bookkeeping, with real processes standing in for a server
that does not answer: a record whose process is gone, or garbled, is no server; a server that
exits while starting, or does not answer in time, is an OrchestrationError (exit 14) that says
what to do and shows the end of its log."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.orchestration import local_server
from pipelines.orchestration.prefect_server import OrchestrationError
from pipelines.paths import StateDir


def not_a_server(tmp_path, command: list[str]) -> local_server.LocalServer:
    log = tmp_path / "server.log"
    log.write_text("starting...\nAddress already in use\n")
    process = subprocess.Popen(command, start_new_session=True)
    port = local_server.free_port()  # nothing listens there
    return local_server.LocalServer(f"http://127.0.0.1:{port}/api", process.pid, port, str(log))


def test_a_server_that_exits_while_starting_is_reported_with_its_log(tmp_path):
    server = not_a_server(tmp_path, [sys.executable, "-c", "pass"])

    with pytest.raises(OrchestrationError, match="stopped while starting") as raised:
        local_server.wait_until_healthy(server, timeout=30)
    assert "Address already in use" in str(raised.value)


def test_a_server_that_does_not_answer_in_time_says_what_to_do(tmp_path):
    server = not_a_server(tmp_path, [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(OrchestrationError, match=r"did not answer within 1 s") as raised:
            local_server.wait_until_healthy(server, timeout=1)
        assert "agencyml server" in str(raised.value) and "PREFECT_API_URL" in str(raised.value)
    finally:
        local_server.stop_process(server.pid)
    assert not local_server.process_alive(server.pid)


@pytest.mark.parametrize("record", ["{not json", '{"url": "x"}', None])
def test_a_garbled_or_stale_record_is_no_server(tmp_path, record):
    state = StateDir(tmp_path / "state")
    state.prefect_home.mkdir(parents=True)
    if record is None:  # a record of a process that has gone
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        record = json.dumps(
            {"url": "http://127.0.0.1:9/api", "pid": gone.pid, "port": 9, "log": "x"}
        )
    local_server.record_path(state).write_text(record)

    assert local_server.running(state) is None


def test_stopping_when_none_runs_is_a_no_op(tmp_path):
    assert local_server.stop(StateDir(tmp_path / "state")) is None


def test_stop_leaves_a_process_alone_that_is_not_a_prefect_server(tmp_path):
    state = StateDir(tmp_path / "state")
    state.prefect_home.mkdir(parents=True)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        record = {"url": "http://127.0.0.1:9/api", "pid": other.pid, "port": 9, "log": "x"}
        local_server.record_path(state).write_text(json.dumps(record))

        assert local_server.stop(state) is not None
        assert other.poll() is None  # still running: its pid was only in a stale record
        assert not local_server.record_path(state).exists()
    finally:
        other.kill()
        other.wait()
