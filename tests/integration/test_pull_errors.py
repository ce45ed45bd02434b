"""`agencyml pull` when something is wrong: no service at the address, a host that does not
exist, a service that does not answer, a refused token, a batch that is not there or not the
token's, a malformed request, a bad format or role. Each exits with its code and one sentence
that says what to fix, never a traceback, and leaves nothing under the target's name."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port
from typer.testing import CliRunner

from flows.cli import app
from pipelines.paths import PACKAGE_ROOT, state_dir
from pipelines.service import access
from pipelines.service.pull import FORMATS, PullError, pull_batch

FRAUD = "business-aid"
TRIAGE = "product-safety"
MISSING = "batch-" + "0" * 20


@pytest.fixture(scope="module")
def service(two_agencies, serve):
    """The two scored agencies behind `agencyml serve` in its own process, with an agency
    token, a revoked one and an auditor's without rows."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        state = state_dir()
        revoked, revoked_secret = access.create_token(state, role="agency", agency=FRAUD, name="o")
        access.revoke_token(state, revoked.token_id)
        secrets = {
            "fraud": access.create_token(state, role="agency", agency=FRAUD, name="errors")[1],
            "auditor": access.create_token(state, role="auditor", name="errors audit")[1],
            "revoked": revoked_secret,
        }
        with serve(two_agencies["root"] / "serve-pull-errors.log") as running:
            yield {**running, "secrets": secrets, "batches": two_agencies["batches"]}


@pytest.fixture
def client_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No service and no pull settings: only the command's own options count."""
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(PACKAGE_ROOT))
    monkeypatch.setenv("AGENCYML_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("AGENCYML_URL", raising=False)
    monkeypatch.delenv("AGENCYML_TOKEN", raising=False)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose socket takes connections (the kernel's backlog) but never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def pull(target: Path, *args: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(app, ["pull", "-o", str(target), *args])
    return result.exit_code, " ".join(result.output.split()), result.exception


def assert_one_clear_sentence(
    code: int, output: str, raised: BaseException | None, expected_code: int, *words: str
) -> None:
    assert code == expected_code, output
    # a typed exit, not an exception the runner caught (which a terminal shows as a traceback)
    assert isinstance(raised, SystemExit), raised
    assert "Traceback" not in output and "httpx" not in output, output
    if expected_code == 13:
        assert output.startswith("error: ") and output.count("error:") == 1, output
        assert ". " not in output.removeprefix("error: "), f"more than one sentence: {output}"
    for word in words:
        assert word in output, (word, output)


def assert_nothing_written(folder: Path) -> None:
    assert not folder.exists() or list(folder.iterdir()) == [], list(folder.iterdir())


# --- no answer from a service -------------------------------------------------------------


@pytest.mark.parametrize("which", [("--latest",), ("--batch", MISSING)])
def test_no_service_at_the_address_says_to_start_one(client_only, tmp_path, which) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    target = tmp_path / "pulled" / "batch.parquet"

    outcome = pull(target, "-a", FRAUD, *which, "--url", url, "--token", "aml_any")

    assert_one_clear_sentence(
        *outcome, 13, f"no pull service answers at {url}", "agencyml serve", "AGENCYML_URL"
    )
    assert "interrupted" not in outcome[1]
    assert_nothing_written(tmp_path / "pulled")


def test_the_address_and_token_come_from_the_settings(client_only, tmp_path, monkeypatch) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("AGENCYML_URL", url)
    monkeypatch.setenv("AGENCYML_TOKEN", "aml_from-the-environment")

    outcome = pull(tmp_path / "pulled" / "batch.parquet", "-a", FRAUD, "--latest")

    assert_one_clear_sentence(*outcome, 13, f"no pull service answers at {url}")
    assert_nothing_written(tmp_path / "pulled")


def test_without_a_token_it_says_where_to_put_one(client_only, tmp_path) -> None:
    outcome = pull(tmp_path / "pulled" / "b.parquet", "-a", FRAUD, "--latest")

    assert_one_clear_sentence(*outcome, 13, "no token", "--token", "AGENCYML_TOKEN")
    assert_nothing_written(tmp_path / "pulled")


def test_an_unknown_host_says_to_check_the_address(client_only, tmp_path) -> None:
    url = "http://agencyml-no-such-host.invalid:8765"
    outcome = pull(
        tmp_path / "pulled" / "b.parquet", "-a", FRAUD, "--latest", "--url", url,
        "--token", "aml_any",
    )  # fmt: skip

    assert_one_clear_sentence(*outcome, 13, f"the host of {url} cannot be found", "AGENCYML_URL")
    assert_nothing_written(tmp_path / "pulled")


@pytest.mark.parametrize("url", ["127.0.0.1:8765", "ftp://127.0.0.1:8765"])
def test_an_address_that_is_not_http_says_what_one_looks_like(client_only, tmp_path, url) -> None:
    outcome = pull(
        tmp_path / "pulled" / "b.parquet", "-a", FRAUD, "--latest", "--url", url,
        "--token", "aml_any",
    )  # fmt: skip

    assert_one_clear_sentence(
        *outcome, 13, f"'{url}' is not a pull service address", "http://127.0.0.1:8765"
    )
    assert_nothing_written(tmp_path / "pulled")


@pytest.mark.parametrize("which", [("--latest",), ("--batch", MISSING)])
def test_a_service_that_does_not_answer_in_time(client_only, tmp_path, silent_port, which) -> None:
    url = f"http://127.0.0.1:{silent_port}"
    outcome = pull(
        tmp_path / "pulled" / "b.parquet", "-a", FRAUD, *which, "--url", url,
        "--token", "aml_any", "--timeout", "0.5",
    )  # fmt: skip

    assert_one_clear_sentence(
        *outcome, 13, f"the pull service at {url} did not answer within 0.5 s", "--timeout"
    )
    assert_nothing_written(tmp_path / "pulled")


def test_the_real_command_prints_one_line_and_no_traceback(client_only, tmp_path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    target = tmp_path / "pulled" / "batch.parquet"
    done = subprocess.run(
        [sys.executable, "-m", "flows", "pull", "-a", FRAUD, "--batch", MISSING,
         "-o", str(target), "--url", url],
        env={**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "AGENCYML_TOKEN": "aml_any"},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip

    assert done.returncode == 13, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr
    message = " ".join(done.stderr.split())
    assert message == (
        f"error: no pull service answers at {url}: start it with `agencyml serve` or set "
        "AGENCYML_URL / --url"
    )
    assert_nothing_written(tmp_path / "pulled")


# --- what the command refuses before asking -----------------------------------------------


def test_a_bad_format_is_a_usage_error_listing_the_formats(client_only, tmp_path) -> None:
    outcome = pull(
        tmp_path / "pulled" / "b.xlsx", "-a", FRAUD, "--latest", "--format", "xlsx",
        "--token", "aml_any",
    )  # fmt: skip

    assert_one_clear_sentence(*outcome, 2, "--format", "'xlsx'", "'parquet'", "'csv'")
    assert "pydantic" not in outcome[1] and "literal_error" not in outcome[1]
    assert_nothing_written(tmp_path / "pulled")


def test_pull_batch_refuses_a_bad_format_before_any_request(tmp_path) -> None:
    port = free_port()  # nothing listens: had it asked, the message would say so
    with pytest.raises(PullError, match=r"unknown format 'xlsx': use one of parquet, csv"):
        pull_batch(f"http://127.0.0.1:{port}", "aml_any", FRAUD, tmp_path / "b.xlsx", format="xlsx")
    assert list(tmp_path.iterdir()) == []


def test_the_help_lists_the_formats_and_the_roles(client_only) -> None:
    runner = CliRunner()
    pull_help = " ".join(runner.invoke(app, ["pull", "--help"]).output.split())
    create_help = runner.invoke(app, ["tokens", "create", "--help"]).output

    assert "|".join(FORMATS) in pull_help
    assert all(role in create_help for role in access.ROLES)


def test_an_unknown_role_is_a_usage_error_listing_the_roles(client_only) -> None:
    result = CliRunner().invoke(app, ["tokens", "create", "--role", "boss", "--name", "x"])
    output = " ".join(result.output.split())

    assert_one_clear_sentence(
        result.exit_code, output, result.exception, 2, "--role", "'boss'",
        *(f"'{role}'" for role in access.ROLES),
    )  # fmt: skip
    assert access.list_tokens(state_dir()) == []


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--latest", "--token", "aml_two words"), ("the token holds spaces", "AGENCYML_TOKEN")),
        (
            ("--batch", MISSING, "-u", "fraud-risk", "--token", "aml_any"),
            ("--use-case", "--latest"),
        ),
        (("--token", "aml_any"), ("--batch ID or --latest",)),
        (("--batch", MISSING, "--latest", "--token", "aml_any"), ("--batch ID or --latest",)),
    ],
)
def test_what_the_command_refuses_before_asking(client_only, tmp_path, args, words) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: had it asked, it would say so

    outcome = pull(tmp_path / "pulled" / "b.parquet", "-a", FRAUD, *args, "--url", url)

    assert_one_clear_sentence(*outcome, 13, *words)
    assert "no pull service answers" not in outcome[1]
    assert_nothing_written(tmp_path / "pulled")


# --- what a running service refuses -------------------------------------------------------


def pull_from(
    service, tmp_path: Path, who: str, *args: str
) -> tuple[int, str, BaseException | None]:
    return pull(
        tmp_path / "pulled" / "b.parquet", *args, "--url", service["url"],
        "--token", service["secrets"].get(who, who),
    )  # fmt: skip


@pytest.mark.parametrize("who", ["aml_wrong", "revoked"])
@pytest.mark.parametrize("which", ["--latest", "--batch"])
def test_a_refused_token_says_to_check_it(service, tmp_path, who, which) -> None:
    batch = ("--batch", service["batches"][FRAUD].batch_id) if which == "--batch" else (which,)

    outcome = pull_from(service, tmp_path, who, "-a", FRAUD, *batch)

    assert_one_clear_sentence(
        *outcome, 13, "refused the token (HTTP 401)", "revoked", "AGENCYML_TOKEN", "--token"
    )
    assert_nothing_written(tmp_path / "pulled")


@pytest.mark.parametrize("which", ["other agency's", "missing"])
def test_a_batch_that_is_not_there_or_not_yours(service, tmp_path, which) -> None:
    agency, batch_id = (
        (TRIAGE, service["batches"][TRIAGE].batch_id) if which == "other agency's"
        else (FRAUD, MISSING)
    )  # fmt: skip
    target = tmp_path / "pulled" / "b.parquet"
    target.parent.mkdir()
    target.write_bytes(b"an earlier pull")  # what the agency already had survives

    outcome = pull_from(service, tmp_path, "fraud", "-a", agency, "--batch", batch_id)

    assert_one_clear_sentence(
        *outcome, 13, f"batch {batch_id} of {agency} is not there or not yours (HTTP 404)",
        "--latest",
    )  # fmt: skip
    assert target.read_bytes() == b"an earlier pull"
    assert [p.name for p in target.parent.iterdir()] == ["b.parquet"]


def test_another_agencys_latest_is_not_there_or_not_yours(service, tmp_path) -> None:
    outcome = pull_from(service, tmp_path, "fraud", "-a", TRIAGE, "--latest")

    assert_one_clear_sentence(
        *outcome, 13, f"the batches of {TRIAGE} are not there or not yours (HTTP 404)", "--agency"
    )
    assert_nothing_written(tmp_path / "pulled")


def test_a_use_case_without_batches_says_so(service, tmp_path) -> None:
    outcome = pull_from(service, tmp_path, "fraud", "-a", FRAUD, "--latest", "-u", "no-such-use")

    assert_one_clear_sentence(*outcome, 13, f"{FRAUD} has no published batch for no-such-use")
    assert_nothing_written(tmp_path / "pulled")


@pytest.mark.parametrize(
    ("args", "field"),
    [(("--batch", "not-a-batch"), "batch_id"), (("--latest", "-u", "Fraud Risk"), "use_case")],
)
def test_a_malformed_request_names_the_field(service, tmp_path, args, field) -> None:
    outcome = pull_from(service, tmp_path, "fraud", "-a", FRAUD, *args)

    assert_one_clear_sentence(*outcome, 13, "malformed (HTTP 422", f"{field}: String should")
    assert "'loc'" not in outcome[1] and "[{" not in outcome[1]
    assert_nothing_written(tmp_path / "pulled")


def test_a_token_that_may_not_read_rows(service, tmp_path) -> None:
    batch_id = service["batches"][FRAUD].batch_id
    outcome = pull_from(service, tmp_path, "auditor", "-a", FRAUD, "--batch", batch_id)

    assert_one_clear_sentence(*outcome, 13, "may not read", "(HTTP 403", "--read-rows")
    assert_nothing_written(tmp_path / "pulled")


def test_the_same_command_with_the_right_token_pulls(service, tmp_path) -> None:
    outcome = pull_from(service, tmp_path, "fraud", "-a", FRAUD, "--latest", "--format", "csv")

    assert outcome[0] == 0 and "verified" in outcome[1], outcome[1]
    assert [p.name for p in (tmp_path / "pulled").iterdir()] == ["b.parquet"]
