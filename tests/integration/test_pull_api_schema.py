"""The pull service against its own OpenAPI contract, fuzzed by Schemathesis over real HTTP.

`agencyml serve` runs in its own process on 127.0.0.1 over two agencies with published batches.
Every operation of the spec the service publishes at /openapi.json gets valid and invalid
requests (Schemathesis' examples, coverage and fuzzing phases), once with an admin token and once
with the `business-aid` agency token, and every response goes through Schemathesis' default
checks: no server error (5xx), a documented status code, content type and headers, a body that
conforms to the response schema, invalid input rejected, and authentication enforced.

Randomly generated batch ids never name a real batch, so a second test fixes the path to the
published batches and fuzzes the rest, which puts the 200 answers (summaries, manifests,
parquet and CSV downloads, lineage) through the same checks.

Hypothesis runs derandomized with a bounded number of examples per operation, so a failure
reproduces exactly and the file stays well within a CI run's time."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from pipelines.paths import StateDir, state_dir
from pipelines.service import access
from pipelines.service.api import create_app

FRAUD = ("business-aid", "fraud-risk")
# who calls: an admin sees every agency, an agency token only its own
CALLERS = ("admin", FRAUD[0])

# The spec the service's code declares; the first test checks the running service publishes
# exactly this at /openapi.json. Schemathesis' pytest integration needs the schema when tests
# are collected, before the service is up, so the fuzzing below parametrizes over this copy.
SPEC = create_app(StateDir(Path("never-read"))).openapi()
# Authorization is sent by the tests with a real token, so Schemathesis does not generate it.
CONFIG = schemathesis.Config.from_dict({"generation": {"with-security-parameters": False}})
SCHEMA = schemathesis.openapi.from_dict(copy.deepcopy(SPEC), config=CONFIG)
OPERATIONS = [(method.upper(), path) for path, item in SPEC["paths"].items() for method in item]

BOUNDED = settings(max_examples=30, deadline=None, derandomize=True, database=None)
TIMEOUT = 60  # seconds for one request; a hung service fails the test instead of stalling it


@pytest.fixture(scope="module")
def service(two_agencies, serve):
    """Both agencies scored once, an admin and an agency token, and the service in its own
    process."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        # the fuzzing sends thousands of requests without a token from one address: the
        # contract is tested here, the limit on them in test_access_log_integrity.py
        patch.setenv("AGENCYML_ANONYMOUS_REQUESTS_PER_MINUTE", "1000000")
        state = state_dir()
        secrets = {
            "admin": access.create_token(state, role="admin", name="ops")[1],
            FRAUD[0]: access.create_token(state, role="agency", agency=FRAUD[0], name="a")[1],
        }
        batches = {agency: result.batch_id for agency, result in two_agencies["batches"].items()}
        with serve(two_agencies["root"] / "serve-schema.log") as running:
            yield {"url": running["url"], "secrets": secrets, "batches": batches}


def bearer(service: dict[str, Any], who: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {service['secrets'][who]}"}


def call(case: schemathesis.Case, service: dict[str, Any], who: str) -> schemathesis.Response:
    """Send the case with the caller's token and run Schemathesis' default checks on the answer
    (they raise with the failing request as a curl command and the response)."""
    response = case.call_and_validate(
        base_url=service["url"], headers=bearer(service, who), timeout=TIMEOUT
    )
    if who != "admin" and response.status_code == 200:
        # an agency token never gets another agency's resources, whatever the request
        assert case.path_parameters["agency"] == who, case.as_curl_command()
    return response


@pytest.fixture(scope="module")
def live_schema(service) -> schemathesis.BaseSchema:
    """The spec as the running service publishes it, loaded over HTTP."""
    return schemathesis.openapi.from_url(
        f"{service['url']}/openapi.json", config=CONFIG, timeout=TIMEOUT
    )


def test_the_service_publishes_the_spec_that_is_fuzzed(service, live_schema) -> None:
    published = httpx.get(f"{service['url']}/openapi.json", timeout=TIMEOUT).json()

    assert published == SPEC
    labels = {result.ok().label for result in live_schema.get_all_operations()}
    assert labels == {f"{method} {path}" for method, path in OPERATIONS}


@pytest.mark.parametrize("who", CALLERS)
@SCHEMA.parametrize()
@BOUNDED
def test_every_operation_answers_within_its_contract(case, who: str, service) -> None:
    call(case, service, who)


@pytest.mark.parametrize("who", CALLERS)
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_published_batches_answer_within_the_contract(
    live_schema, service, method: str, path: str, who: str
) -> None:
    """The path names a real batch of each agency; the rest of the request is generated, valid
    and, where the operation has query parameters, invalid too."""
    operation = live_schema[path][method]
    names = {parameter.name for parameter in operation.path_parameters}
    modes = [GenerationMode.POSITIVE]
    if operation.query:
        modes.append(GenerationMode.NEGATIVE)
    strategy = st.one_of(
        [
            operation.as_strategy(
                generation_mode=mode,
                path_parameters={
                    name: value
                    for name, value in (("agency", agency), ("batch_id", batch_id))
                    if name in names
                },
            )
            for agency, batch_id in service["batches"].items()
            for mode in modes
        ]
    )
    statuses: dict[str, set[int]] = {agency: set() for agency in service["batches"]}

    @BOUNDED
    @given(case=strategy)
    def check(case: schemathesis.Case) -> None:
        response = call(case, service, who)
        statuses[case.path_parameters["agency"]].add(response.status_code)

    check()

    # the real batches were reached: each agency's for an admin, only its own for an agency
    for agency, seen in statuses.items():
        assert (200 in seen) == (who in ("admin", agency)), (agency, seen)
