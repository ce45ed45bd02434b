"""The pull service serves only regular files inside the batch folder, whatever a manifest
says, and shows an agency no path of the server. Each damaged batch is a copy of a published
one under a new batch id in the same agency's outputs, removed afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pipelines.paths import project_root, state_dir
from pipelines.service import access
from pipelines.service.pull import pull_batch

FRAUD = ("business-aid", "fraud-risk")
TRIAGE = ("product-safety", "risk-triage")


@pytest.fixture(scope="module")
def service(two_agencies, serve):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        state = state_dir()
        secrets = {
            "fraud": access.create_token(state, role="agency", agency=FRAUD[0], name="f")[1],
            "auditor": access.create_token(state, role="auditor", name="audit")[1],
            "admin": access.create_token(state, role="admin", name="ops")[1],
        }
        with serve(two_agencies["root"] / "serve-files.log") as running:
            yield {
                **running,
                "secrets": secrets,
                "state": state,
                "project": project_root(),
                "batches": two_agencies["batches"],
            }


@pytest.fixture
def copy_batch(service) -> Iterator[Callable[..., Path]]:
    """A copy of business-aid's published batch under a new id; removed afterwards, with
    anything the service cached for it."""
    made: list[Path] = []
    source = service["batches"][FRAUD[0]].output_dir

    def copy(**manifest_changes) -> Path:
        batch_id = f"batch-{len(made) + 1:04d}{'c' * 16}"
        folder = source.parent / batch_id
        shutil.copytree(source, folder, symlinks=True)
        made.append(folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest.update(batch_id=batch_id, **manifest_changes)
        (folder / "manifest.json").write_text(json.dumps(manifest))
        return folder

    yield copy
    cache = service["state"].root / "cache" / "downloads" / FRAUD[0]
    for folder in made:
        shutil.rmtree(folder)
        for cached in cache.glob(f"{folder.name}.*"):
            cached.unlink()


def get(service, who: str, path: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {service['secrets'][who]}"}
    return httpx.get(service["url"] + path, headers=headers, timeout=30)


def data(service, folder: Path, format: str = "parquet", who: str = "fraud") -> httpx.Response:
    return get(service, who, f"/v1/agencies/{FRAUD[0]}/batches/{folder.name}/data?format={format}")


def assert_not_found(response: httpx.Response) -> None:
    assert response.status_code == 404, response.text[:300]
    assert response.json() == {"detail": "not found"}


def test_an_intact_copy_is_served_so_the_refusals_below_are_about_the_damage(
    service, copy_batch, tmp_path: Path
) -> None:
    folder = copy_batch()

    pulled = pull_batch(
        service["url"], service["secrets"]["fraud"], FRAUD[0], tmp_path / "b.parquet",
        batch_id=folder.name,
    )  # fmt: skip

    assert pulled.batch_id == folder.name
    assert data(service, folder, "csv").status_code == 200


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_a_scored_file_symlinked_to_another_agencys_file_is_not_served(
    service, copy_batch, format: str
) -> None:
    folder = copy_batch()
    other = service["batches"][TRIAGE[0]].output_dir / "scored.parquet"
    (folder / "scored.parquet").unlink()
    (folder / "scored.parquet").symlink_to(other)

    for who in ("fraud", "admin"):
        response = data(service, folder, format, who)
        assert_not_found(response)
        assert b"PAR1" not in response.content


@pytest.mark.parametrize(
    "name",
    [
        "scored/../../../../etc/passwd",
        "scored.parquet/../../../../../../etc/passwd",
        "/etc/passwd",
        "scored/./part-0.parquet",
        "scored\\..\\..\\manifest.json",
    ],
)
def test_a_manifest_naming_a_file_outside_the_batch_is_refused(
    service, copy_batch, name: str
) -> None:
    folder = copy_batch(files=[name])

    for format in ("parquet", "csv"):
        response = data(service, folder, format, "admin")
        assert_not_found(response)
        assert "root:" not in response.text


def test_a_symlinked_report_is_not_served(service, copy_batch) -> None:
    folder = copy_batch()
    other = service["batches"][TRIAGE[0]].output_dir / "drift.html"
    (folder / "drift.html").unlink()
    (folder / "drift.html").symlink_to(other)

    report = f"/v1/agencies/{FRAUD[0]}/batches/{folder.name}/reports/drift.html"
    assert_not_found(get(service, "fraud", report))
    plot = f"/v1/agencies/{FRAUD[0]}/batches/{folder.name}/reports/drift.png"
    assert get(service, "fraud", plot).status_code == 200  # the untouched file still is


def test_a_fifo_or_a_folder_in_a_files_place_is_not_served(service, copy_batch) -> None:
    folder = copy_batch()
    (folder / "scored.parquet").unlink()
    os.mkfifo(folder / "scored.parquet")
    (folder / "drift.html").unlink()
    (folder / "drift.html").mkdir()

    assert_not_found(data(service, folder))  # answered at once: the FIFO is never read
    report = f"/v1/agencies/{FRAUD[0]}/batches/{folder.name}/reports/drift.html"
    assert_not_found(get(service, "fraud", report))


def test_a_refused_file_is_in_the_access_log_like_any_404(service, copy_batch) -> None:
    folder = copy_batch(files=["/etc/passwd"])
    path = f"/v1/agencies/{FRAUD[0]}/batches/{folder.name}/data"

    assert_not_found(get(service, "fraud", path))

    deadline = time.monotonic() + 30
    entries: list[dict] = []
    while not entries:
        assert time.monotonic() < deadline, "the refused request was never logged"
        entries = [e for e in access.read_access_log(service["state"]) if e["path"] == path]
        time.sleep(0.05)
    assert entries[-1]["status"] == 404 and entries[-1]["agency"] == FRAUD[0]


def strings(value) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return [value] if isinstance(value, str) else []


def test_an_agency_sees_no_absolute_server_path_and_an_auditor_sees_them_all(service) -> None:
    batch_id = service["batches"][FRAUD[0]].batch_id
    base = f"/v1/agencies/{FRAUD[0]}/batches/{batch_id}"
    servers = [str(service["state"].root), str(service["project"])]
    absolute = re.compile(r"(?<![\w:/.#-])/[^\s]")

    audited = get(service, "auditor", f"{base}/manifest").json()
    assert any(root in s for s in strings(audited) for root in servers)

    for document in ("manifest", "lineage"):
        seen = get(service, "fraud", f"{base}/{document}").json()
        leaks = [s for s in strings(seen) if any(r in s for r in servers) or absolute.search(s)]
        assert leaks == [], document

    manifest = get(service, "fraud", f"{base}/manifest").json()
    assert manifest["input"]["path"] == Path(audited["input"]["path"]).name
    assert manifest["files"] == audited["files"]
    assert manifest["file_sha256"] == audited["file_sha256"]
    listed = get(service, "fraud", f"/v1/agencies/{FRAUD[0]}/batches").json()
    assert not [s for s in strings(listed) if any(r in s for r in servers)]


def signed_in(service, who: str) -> httpx.Client:
    client = httpx.Client(base_url=service["url"], timeout=30)
    form = client.get("/").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    reply = client.post("/sign-in", data={"csrf": csrf, "token": service["secrets"][who]})
    assert reply.status_code == 303, reply.text
    return client


def test_the_pages_refuse_the_same_damaged_files(service, copy_batch) -> None:
    folder = copy_batch()
    other = service["batches"][TRIAGE[0]].output_dir
    for name in ("scored.parquet", "drift.html"):
        (folder / name).unlink()
        (folder / name).symlink_to(other / name)
    client = signed_in(service, "fraud")

    page = client.get(f"/batches/{folder.name}")
    assert page.status_code == 200
    for download in ("scored.parquet", "scored.csv", "drift.html"):
        response = client.get(f"/batches/{folder.name}/{download}")
        assert response.status_code == 404, download
        assert b"PAR1" not in response.content
