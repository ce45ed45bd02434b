"""The pull service over real HTTP: `agencyml serve` in its own process on 127.0.0.1, two
agencies with published batches, and every role against every endpoint of both agencies."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from pipelines.data.storage import file_sha256
from pipelines.paths import state_dir
from pipelines.service import access
from pipelines.service.pull import PullError, pull_batch

FRAUD = ("business-aid", "fraud-risk")
TRIAGE = ("product-safety", "risk-triage")
ENDPOINTS = ("list", "manifest", "data", "lineage", "report")


@pytest.fixture(scope="module")
def service(two_agencies, serve):
    """Both agencies scored once, tokens for every role, and the service in its own process."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        state = state_dir()
        secrets = {
            "fraud": access.create_token(state, role="agency", agency=FRAUD[0], name="a")[1],
            "triage": access.create_token(state, role="agency", agency=TRIAGE[0], name="b")[1],
            "auditor": access.create_token(state, role="auditor", name="audit")[1],
            "auditor+rows": access.create_token(
                state, role="auditor", name="audit rows", can_read_rows=True
            )[1],
            "admin": access.create_token(state, role="admin", name="ops")[1],
        }
        revoked, secrets["revoked"] = access.create_token(
            state, role="agency", agency=FRAUD[0], name="old"
        )
        access.revoke_token(state, revoked.token_id)
        with serve(two_agencies["root"] / "serve-pull.log") as running:
            yield {
                **running,
                "secrets": secrets,
                "batches": two_agencies["batches"],
                "state": state,
            }


def request(service, who: str | None, path: str, **options) -> httpx.Response:
    headers = {"Authorization": f"Bearer {service['secrets'][who]}"} if who else {}
    return httpx.get(service["url"] + path, headers=headers, timeout=60, **options)


def endpoint(service, name: str, agency: str) -> str:
    batch_id = service["batches"][agency].batch_id
    base = f"/v1/agencies/{agency}/batches"
    return {
        "list": base,
        "manifest": f"{base}/{batch_id}/manifest",
        "data": f"{base}/{batch_id}/data",
        "lineage": f"{base}/{batch_id}/lineage",
        "report": f"{base}/{batch_id}/reports/drift.html",
    }[name]


# who -> (status against its own agency, against the other agency), per endpoint
AGENCY_ONLY = {name: (200, 404) for name in ENDPOINTS}
EXPECTED = {
    "fraud": AGENCY_ONLY,
    "triage": AGENCY_ONLY,
    "auditor": {"list": (200, 200), "manifest": (200, 200), "data": (403, 403),
                "lineage": (200, 200), "report": (200, 200)},
    "auditor+rows": {n: (200, 200) for n in ENDPOINTS},
    "admin": {n: (200, 200) for n in ENDPOINTS},
}  # fmt: skip
OWN = {"fraud": FRAUD[0], "triage": TRIAGE[0]}


@pytest.mark.parametrize("who", list(EXPECTED))
@pytest.mark.parametrize("name", ENDPOINTS)
def test_isolation_matrix(service, who: str, name: str) -> None:
    own = OWN.get(who, FRAUD[0])
    other = TRIAGE[0] if own == FRAUD[0] else FRAUD[0]
    expected_own, expected_other = EXPECTED[who][name]

    for agency, expected in ((own, expected_own), (other, expected_other)):
        response = request(service, who, endpoint(service, name, agency))
        assert response.status_code == expected, (who, name, agency, response.text)
        if expected == 404:
            # indistinguishable from a batch that does not exist
            missing = endpoint(service, name, agency).replace(
                service["batches"][agency].batch_id, "batch-" + "0" * 20
            )
            absent = request(service, who, missing)
            assert (absent.status_code, absent.json()) == (404, response.json())


def test_an_agency_lists_its_own_batches_with_their_manifest_summary(service) -> None:
    listed = request(service, "fraud", f"/v1/agencies/{FRAUD[0]}/batches").json()
    scored = service["batches"][FRAUD[0]]

    assert [b["batch_id"] for b in listed] == [scored.batch_id]
    assert listed[0]["rows"]["scored"] == scored.rows and listed[0]["use_case"] == FRAUD[1]


def test_the_listing_filters_by_use_case_and_day_and_pages(service) -> None:
    base = f"/v1/agencies/{FRAUD[0]}/batches"
    own = service["batches"][FRAUD[0]].batch_id
    day = json.loads((service["batches"][FRAUD[0]].output_dir / "manifest.json").read_text())[
        "created_at"
    ][:10]

    def listed(**params) -> tuple[list[str], str]:
        reply = request(service, "fraud", base, params=params)
        assert reply.status_code == 200, reply.text
        return [b["batch_id"] for b in reply.json()], reply.headers["X-Total-Count"]

    assert listed() == ([own], "1")
    assert listed(use_case=FRAUD[1], since=day, until=day) == ([own], "1")
    assert listed(use_case="other-use-case") == ([], "0")
    assert listed(since="2999-01-01") == ([], "0")
    assert listed(until="2000-01-01") == ([], "0")
    assert listed(limit=1, offset=1) == ([], "1")  # past the end: none, and how many match
    for bad in ({"since": "yesterday"}, {"limit": 0}, {"offset": -1}, {"use_case": "../x"}):
        reply = request(service, "fraud", base, params=bad)
        assert reply.status_code == 422, (bad, reply.text)


def test_the_drift_report_and_its_plot_are_served_as_the_manifest_lists_them(service) -> None:
    scored = service["batches"][FRAUD[0]]
    base = f"/v1/agencies/{FRAUD[0]}/batches/{scored.batch_id}/reports"

    page = request(service, "fraud", f"{base}/drift.html")
    plot = request(service, "fraud", f"{base}/drift.png")
    other = request(service, "fraud", f"{base}/manifest.json")

    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.content == (scored.output_dir / "drift.html").read_bytes()
    assert plot.status_code == 200 and plot.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert other.status_code == 422  # only the listed report names exist


@pytest.mark.parametrize("who", [None, "revoked"])
def test_no_token_or_a_revoked_one_gets_401(service, who) -> None:
    response = request(service, who, endpoint(service, "list", FRAUD[0]))
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header", ["Bearer", "Bearer aml_not-a-token", "Basic YWxhZGRpbjpvcGVu", "aml_x", ""]
)
def test_malformed_tokens_get_401(service, header: str) -> None:
    response = httpx.get(
        service["url"] + endpoint(service, "list", FRAUD[0]),
        headers={"Authorization": header},
        timeout=30,
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "path",
    [
        "/v1/agencies/../batches",
        "/v1/agencies/%2e%2e/batches",
        "/v1/agencies/%2e%2e%2fproduct-safety/batches",
        "/v1/agencies/business-aid%2f..%2fproduct-safety/batches",
        "/v1/agencies/%2fetc%2fpasswd/batches",
        "/v1/agencies/business-aid/batches/..%2f..%2fproduct-safety/manifest",
        "/v1/agencies/business-aid/batches/batch-%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e/data",
        "/v1/agencies/business-aid/batches/%2fetc%2fpasswd/manifest",
    ],
)
def test_path_traversal_is_refused(service, path: str) -> None:
    response = request(service, "admin", path)
    assert response.status_code in (404, 422), response.text
    assert "root:" not in response.text


def test_a_symlinked_batch_is_never_listed_or_served(service) -> None:
    state = service["state"]
    other = service["batches"][TRIAGE[0]]
    link = state.output_dir(*FRAUD) / ("batch-" + "f" * 20)
    link.symlink_to(other.output_dir, target_is_directory=True)
    try:
        listed = request(service, "fraud", f"/v1/agencies/{FRAUD[0]}/batches").json()
        assert link.name not in [b["batch_id"] for b in listed]
        response = request(service, "fraud", f"/v1/agencies/{FRAUD[0]}/batches/{link.name}/data")
        assert response.status_code == 404
    finally:
        link.unlink()


def test_staging_folders_are_never_listed(service) -> None:
    state = service["state"]
    hidden = state.output_dir(*FRAUD) / f".batch-{'e' * 20}.x.staging"
    hidden.mkdir()
    try:
        listed = request(service, "admin", f"/v1/agencies/{FRAUD[0]}/batches").json()
        assert len(listed) == 1
    finally:
        hidden.rmdir()


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_a_pull_checks_the_content_hash_and_the_auditor_finds_the_lineage(
    service, tmp_path: Path, format: str
) -> None:
    target = tmp_path / f"latest.{format}"
    pulled = pull_batch(
        service["url"], service["secrets"]["fraud"], FRAUD[0], target, format=format
    )

    assert pulled.batch_id == service["batches"][FRAUD[0]].batch_id
    assert file_sha256(target) == pulled.sha256 and target.stat().st_size == pulled.bytes
    assert list(tmp_path.glob(".*partial")) == []
    if format == "parquet":
        assert pulled.sha256 == file_sha256(
            service["batches"][FRAUD[0]].output_dir / "scored.parquet"
        )
    # from the pulled file's batch id to its lineage, as an auditor
    lineage = request(service, "auditor", endpoint(service, "lineage", FRAUD[0])).json()
    assert lineage["batch_id"] == pulled.batch_id
    kinds = {node["kind"] for node in walk(lineage["tree"])}
    assert {"scored batch", "model version", "training run"} <= kinds


def walk(node: dict) -> list[dict]:
    return [node, *(n for child in node.get("children", []) for n in walk(child))]


def test_a_pull_with_a_bad_token_or_batch_fails_cleanly(service, tmp_path: Path) -> None:
    target = tmp_path / "out.parquet"
    with pytest.raises(PullError, match="HTTP 401"):
        pull_batch(service["url"], "aml_wrong", FRAUD[0], target)
    with pytest.raises(PullError, match="HTTP 404"):
        pull_batch(
            service["url"], service["secrets"]["fraud"], TRIAGE[0], target,
            batch_id=service["batches"][TRIAGE[0]].batch_id,
        )  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def logged(state, before: int, requests: list[tuple[str, str | None]], seconds: float = 30):
    """The log's entry for each (path, role), among those after the first `before`, once all
    are there. A request is logged when its body has been sent: that can be just after the
    client has it all, and after a later request's entry (a previous test's too)."""
    deadline = time.monotonic() + seconds
    while True:
        entries = access.read_access_log(state)[before:]
        found = [
            next((e for e in entries if (e["path"], e["role"]) == wanted), None)
            for wanted in requests
        ]
        if all(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_every_request_is_in_the_access_log(service) -> None:
    before = len(access.read_access_log(service["state"]))
    data_path = endpoint(service, "data", FRAUD[0])
    data = request(service, "admin", data_path)
    request(service, "fraud", endpoint(service, "list", TRIAGE[0]))
    request(service, None, endpoint(service, "list", FRAUD[0]))

    entries = logged(
        service["state"],
        before,
        [
            (data_path, "admin"),
            (endpoint(service, "list", TRIAGE[0]), "agency"),
            (endpoint(service, "list", FRAUD[0]), None),
        ],
    )
    assert all(entries), entries
    assert [(e["role"], e["status"]) for e in entries] == [
        ("admin", 200),
        ("agency", 404),
        (None, 401),
    ]
    assert entries[0]["bytes"] == len(data.content) and entries[0]["method"] == "GET"
    assert entries[1]["path"] == endpoint(service, "list", TRIAGE[0])
    # the API has no way to change the log: no endpoint but GET, and the chain verifies
    methods = {
        m for p in request(service, None, "/openapi.json").json()["paths"].values() for m in p
    }
    assert methods == {"get"}


@pytest.fixture(scope="module")
def broken_service():
    """A real HTTP server that misbehaves the two ways a download can go wrong: a body that
    does not match its hash, and a connection that drops in the middle."""
    import threading

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    app = FastAPI()
    body = b"x" * 300_000

    @app.get("/v1/agencies/{agency}/batches/{batch_id}/data")
    def data(batch_id: str) -> StreamingResponse:
        if batch_id == "batch-altered":
            return StreamingResponse(iter([body]), headers={"X-Content-SHA256": "0" * 64})

        def dropped():
            yield body[:100_000]
            raise ConnectionResetError("the connection dropped")

        return StreamingResponse(
            dropped(), headers={"X-Content-SHA256": "0" * 64, "Content-Length": str(len(body))}
        )

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


@pytest.mark.parametrize(
    ("batch_id", "problem"),
    [("batch-altered", "arrived with sha256"), ("batch-dropped", "interrupted")],
)
def test_an_altered_or_interrupted_download_leaves_nothing_under_the_final_name(
    broken_service, tmp_path: Path, batch_id: str, problem: str
) -> None:
    target = tmp_path / "batch.parquet"
    target.write_bytes(b"an earlier pull")  # what the agency already had survives

    with pytest.raises(PullError, match=problem):
        pull_batch(broken_service, "aml_any", "business-aid", target, batch_id=batch_id)

    assert target.read_bytes() == b"an earlier pull"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch.parquet"]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
        / 1024
    )


def test_a_large_download_streams_in_bounded_server_memory(service, tmp_path: Path) -> None:
    """A 160 MB batch (incompressible text) goes out in blocks: the server's peak memory
    barely moves, and the client gets every byte, verified."""
    import json

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    batch_id = "batch-" + "b" * 20
    folder = service["state"].outputs_dir / "bulk-agency" / "bulk" / batch_id
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    with pq.ParquetWriter(folder / "scored.parquet", pa.schema([("blob", pa.string())])) as out:
        for _ in range(40):
            blobs = [rng.bytes(2_000).hex() for _ in range(1_000)]  # 4 MB per row group
            out.write_table(pa.table({"blob": blobs}), row_group_size=1_000)
    manifest = {
        "batch_id": batch_id, "agency": "bulk-agency", "use_case": "bulk",
        "created_at": "2026-01-01T00:00:00+00:00", "model": {"name": "m", "version": "1"},
        "rows": {"in": 40_000, "scored": 40_000, "quarantined": 0}, "files": ["scored.parquet"],
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    size = (folder / "scored.parquet").stat().st_size
    assert size > 150 * 2**20
    server = service["pid"]
    request(service, "admin", "/v1/agencies/bulk-agency/batches")  # warm up
    before = peak_rss_mb(server)

    pulled = pull_batch(
        service["url"], service["secrets"]["admin"], "bulk-agency", tmp_path / "bulk.parquet",
        batch_id=batch_id,
    )  # fmt: skip

    assert pulled.bytes == size and pulled.sha256 == file_sha256(folder / "scored.parquet")
    assert peak_rss_mb(server) - before < 48, "the server held the file in memory"


def test_the_commands_create_list_revoke_pull_and_show_the_log(service, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()

    def invoke(*args: str) -> tuple[int, str]:
        result = runner.invoke(app, list(args))
        return result.exit_code, result.output

    code, output = invoke("tokens", "create", "--agency", FRAUD[0], "--name", "cli test")
    assert code == 0, output
    secret = output.split()[-1]
    assert secret.startswith("aml_")
    token_id = output.split()[1]

    code, output = invoke("tokens", "list")
    assert code == 0 and token_id in output and secret not in output

    target = tmp_path / "latest.csv"
    code, output = invoke(
        "pull", "-a", FRAUD[0], "--latest", "--format", "csv", "-o", str(target),
        "--url", service["url"], "--token", secret,
    )  # fmt: skip
    assert code == 0, output
    assert "verified" in output and target.stat().st_size > 0

    code, output = invoke("tokens", "revoke", token_id)
    assert code == 0 and "Revoked" in output
    code, output = invoke(
        "pull", "-a", FRAUD[0], "--latest", "-o", str(tmp_path / "again.parquet"),
        "--url", service["url"], "--token", secret,
    )  # fmt: skip
    assert code == 13 and "HTTP 401" in " ".join(output.split())
    assert not (tmp_path / "again.parquet").exists()

    code, output = invoke("pull", "-a", FRAUD[0], "-o", str(target))
    assert code == 13 and "--batch ID or --latest" in output
    code, output = invoke("tokens", "create", "--agency", "tax", "--name", "x")
    assert code == 2 and "business-aid" in output

    code, output = invoke("access-log", "--agency", FRAUD[0])
    assert code == 0 and "Access log" in output
    code, output = invoke("access-log", "--json")
    document = json.loads(output)  # one document, like every --json
    entries = document["entries"]
    assert document["count"] == len(entries)
    assert entries[-1]["path"] == "/v1/agencies/business-aid/batches"
    assert entries[-1]["status"] == 401 and entries[-1]["token_id"] is None
    assert any(e["token_id"] == token_id and e["bytes"] > 0 for e in entries)
