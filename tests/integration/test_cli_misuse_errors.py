"""Commands run the wrong way, as a new user would: each stops with one plain sentence, the
README's exit code and no traceback, before any work that its mistake would waste or leave
half-done (a model registered for a --model-out that cannot be written)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from flows.cli import app
from flows.cli.app import friendly_errors, interruptible
from flows.errors import INTERRUPTED, explained

runner = CliRunner()
DEAD = "http://127.0.0.1:9"  # the discard port: nothing answers there


def invoke(*args: str, **env: str) -> Any:
    result = runner.invoke(app, list(args), env=env or None)
    assert "Traceback" not in result.output + result.stderr
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    return result


def said(result: Any) -> str:
    return " ".join(result.stderr.split())


@pytest.fixture(scope="module")
def project(tmp_path_factory, make_small_project) -> Any:
    """A small project, nothing trained, with agencyml pointed at it."""
    root = tmp_path_factory.mktemp("cli-misuse")
    with pytest.MonkeyPatch.context() as patch:
        project = make_small_project(root / "project", rasff_rows=300, generated_rows=300)
        patch.setenv("AGENCYML_PROJECT_ROOT", str(project))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        patch.chdir(root)
        yield {"root": root, "project": project, "state": root / "state"}


def registered_versions(state: Path) -> list[tuple[str, str]]:
    database = state / "mlflow" / "mlflow.db"
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        return connection.execute("select name, version from model_versions").fetchall()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["train", "-a", "business-aid", "-u", "fraud-risk", "--model-out", "{root}"], "a folder"),
        (
            ["evaluate", "-a", "business-aid", "-u", "fraud-risk", "--metrics-out", "{root}"],
            "a folder",
        ),
        (
            ["evaluate", "-a", "business-aid", "-u", "fraud-risk", "--plots-out", "{file}/plots"],
            "is a file, not a folder",
        ),
        (["card", "business-aid.fraud-risk", "1", "-o", "{file}"], "is a file, not a folder"),
        (["compose", "-o", "{root}"], "folder"),
    ],
)
def test_an_output_that_cannot_be_written_is_refused_before_any_work(project, args, expected):
    a_file = project["root"] / "a-file.txt"
    a_file.write_text("x", encoding="utf-8")
    filled = [arg.format(root=project["root"], file=a_file) for arg in args]
    result = invoke(*filled)
    assert result.exit_code == 2, result.stderr
    assert expected in said(result) and result.stdout == ""
    assert registered_versions(project["state"]) == []  # nothing trained, nothing registered
    assert not (project["state"] / "outputs").exists()


def test_a_tracking_server_that_does_not_answer_stops_the_command_at_once(project):
    result = invoke("history", "business-aid.fraud-risk", "--json", AGENCYML_TRACKING_URI=DEAD)
    assert result.exit_code == 15
    assert json.loads(result.stdout)["error"]["kind"] == "TrackingServerError"
    assert f"MLflow tracking server at {DEAD}" in said(result)
    assert "AGENCYML_TRACKING_URI" in said(result)
    # commands that do not use MLflow are not stopped by it
    assert invoke("agencies", AGENCYML_TRACKING_URI=DEAD).exit_code == 0


def test_unknown_names_and_broken_params_are_named(project):
    result = invoke("train", "-a", "business-ad", "-u", "fraud-risk")
    assert result.exit_code == 2 and "Known agencies: business-aid" in said(result)
    result = invoke("train", "-a", "business-aid", "-u", "fraud-rsk")
    assert result.exit_code == 2 and "fraud-risk" in said(result)
    broken = project["project"] / "params" / "broken.yaml"
    broken.write_text("agency: broken\nuse_cases: [\n", encoding="utf-8")
    try:
        result = invoke("agencies")
        assert result.exit_code == 2 and "broken.yaml: not valid YAML" in said(result)
    finally:
        broken.unlink()


def test_outside_a_project_every_command_says_to_init(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENCYML_PROJECT_ROOT", raising=False)
    monkeypatch.delenv("AGENCYML_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    for args in (["train", "-a", "x", "-u", "y"], ["lineage", "batch-1"], ["history", "a.b"]):
        result = invoke(*args)
        assert result.exit_code == 2 and "agencyml init DIR" in said(result)


def test_a_prefect_server_that_does_not_answer_is_exit_14_with_nothing_scored(project):
    batch = project["root"] / "batch.csv"
    batch.write_text("application_id\n1\n", encoding="utf-8")
    env = {**os.environ, "PREFECT_API_URL": f"{DEAD}/api"}
    agencyml = Path(sys.executable).parent / "agencyml"
    done = subprocess.run(
        [agencyml, "score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 14, done.stderr
    assert "no Prefect server answers" in done.stderr and "PREFECT_API_URL" in done.stderr
    assert "Traceback" not in done.stderr
    said = json.loads(done.stdout)["error"]  # --json: the error as one document on stdout
    assert said["code"] == 14 and said["kind"] == "PrefectUnreachableError"
    assert said["message"].startswith("no Prefect server answers at")
    assert not (project["state"] / "outputs").exists()


@pytest.mark.parametrize(
    ("raised", "code", "words"),
    [
        (IsADirectoryError(21, "Is a directory", "/x/out.json"), 16, "refused /x/out.json"),
        (ValueError("something odd"), 1, "agencyml --verbose"),
        # a network error is an OSError too, but not the file system's fault
        (ConnectionRefusedError(111, "Connection refused"), 1, "unexpected failure"),
        (KeyboardInterrupt(), INTERRUPTED, "interrupted"),
        (RuntimeError(f"Failed to reach API at {DEAD}/api/"), 14, "PREFECT_API_URL"),
    ],
)
def test_every_failure_is_one_line_and_an_exit_code(capsys, raised, code, words):
    with pytest.raises(typer.Exit) as stopped, friendly_errors():
        raise raised
    assert stopped.value.exit_code == code
    message = " ".join(capsys.readouterr().err.split())
    assert words in message and "Traceback" not in message


def test_a_ctrl_c_that_python_dropped_is_delivered_again():
    class DropsTheInterrupt:
        def __del__(self) -> None:
            raise KeyboardInterrupt  # as in a garbage collector's callback: printed, dropped

    # as in a command started from a shell; pytest-xdist's workers ignore SIGINT, and
    # interrupt_main does nothing where SIGINT is ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), interruptible():
            DropsTheInterrupt()
            give_up = time.monotonic() + 60
            while time.monotonic() < give_up:  # the interrupt, delivered again, stops this
                pass
    finally:
        signal.signal(signal.SIGINT, previous)
    assert explained(ValueError("x")).args == ("x",)


def test_ctrl_c_stops_a_real_command_with_130_and_says_so(tmp_path):
    script = textwrap.dedent(
        """
        import time, typer
        from flows.cli.app import friendly_errors

        def work() -> None:
            with friendly_errors():
                print("working", flush=True)
                while True:
                    time.sleep(0.05)

        typer.run(work)
        """
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        # a shell starts commands with SIGINT's default; pytest-xdist's workers ignore it, and
        # a Python started with SIGINT ignored never sees a Ctrl-C
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None and process.stdout.readline() == "working\n"
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == INTERRUPTED, err
    assert "interrupted:" in err and "Run it again" in " ".join(err.split())
    assert "Traceback" not in err


def test_a_command_s_own_exit_and_usage_errors_keep_their_codes(project, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine", encoding="utf-8")
    result = invoke("init", str(tmp_path / "taken"))
    assert result.exit_code == 2 and "not an empty folder" in said(result)
    assert "unexpected" not in said(result)
    assert (tmp_path / "taken" / "notes.txt").read_text(encoding="utf-8") == "mine"
    result = invoke("lineage")
    assert result.exit_code == 2 and "give a BATCH_ID" in said(result)


def test_a_state_directory_that_cannot_be_made_is_named(project):
    a_file = project["root"] / "not-a-folder"
    a_file.write_text("x", encoding="utf-8")
    result = invoke("agencies", AGENCYML_HOME=str(a_file / "state"))
    assert result.exit_code == 2, result.stderr
    assert f"state directory {a_file / 'state'} cannot be made" in said(result)
    assert "AGENCYML_HOME" in said(result) and result.stdout == ""


def test_json_errors_are_one_document_on_stdout(project, tmp_path):
    result = invoke("card", "business-aid.fraud-risk", "1", "--json")
    said = json.loads(result.stdout)["error"]
    assert result.exit_code == 6 and said["code"] == 6 and said["kind"] == "ModelNotFoundError"
    assert said["message"].startswith("no model 'business-aid.fraud-risk'")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine", encoding="utf-8")
    result = invoke("init", str(tmp_path / "taken"), "--json")
    assert result.exit_code == 2 and json.loads(result.stdout)["error"]["code"] == 2
    result = invoke("card", "business-aid.fraud-risk", "1")  # without --json: stderr only
    assert result.exit_code == 6 and result.stdout == ""


def test_history_of_a_misspelt_model_names_the_known_ones(project):
    result = invoke("history", "business-aid.fraud-rsk")
    assert result.exit_code == 2 and "business-aid.fraud-risk" in said(result)
    result = invoke("history", "business-aid.fraud-risk")  # known, nothing promoted yet
    assert result.exit_code == 0 and "No alias changes" in result.stdout


def test_a_tracking_uri_that_is_not_a_uri_is_named(project):
    result = invoke("history", "business-aid.fraud-risk", AGENCYML_TRACKING_URI="mlflow-server")
    assert result.exit_code == 2
    assert "AGENCYML_TRACKING_URI='mlflow-server': not a URI" in said(result)


def test_a_wrong_input_or_model_ref_is_exit_3_before_any_work(project):
    result = invoke("score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(project["root"]))
    assert result.exit_code == 3 and "is not a file" in said(result)
    result = invoke("score", "-a", "business-aid", "-u", "fraud-risk", "-i", "missing.csv")
    assert result.exit_code == 3 and "input file not found" in said(result)
    reference = project["root"] / "ref.json"
    reference.write_text("{}", encoding="utf-8")
    result = invoke(
        "evaluate", "-a", "business-aid", "-u", "fraud-risk", "--model-ref", str(reference)
    )
    assert result.exit_code == 3 and "names no model_version" in said(result)
    assert registered_versions(project["state"]) == []
    assert not (project["state"] / "outputs").exists()


def test_an_unexpected_failure_is_one_line_and_its_traceback_only_with_verbose():
    tiny = typer.Typer()

    @tiny.callback()
    def options(verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
        pass

    @tiny.command()
    def odd() -> None:
        with friendly_errors():
            raise LookupError("[odd] a bracketed message")

    quiet = runner.invoke(tiny, ["odd"])
    assert quiet.exit_code == 1 and not isinstance(quiet.exception, LookupError)
    assert "unexpected failure (LookupError: [odd] a bracketed message)" in said(quiet)
    loud = runner.invoke(tiny, ["-v", "odd"])
    assert isinstance(loud.exception, LookupError)  # raised: the terminal shows its traceback
