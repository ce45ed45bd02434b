"""The pull service never serves a file that no longer has the sha256 its manifest records, and
says so in a way the pull client tells apart from a bad download; its download cache is keyed by
the scored files' contents, so a changed then restored batch never serves stale CSV. Each batch
here is a copy of a published one under a new id, removed afterwards."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pipelines.data.storage import file_sha256
from pipelines.paths import state_dir
from pipelines.service import access
from pipelines.service.api import CONTENT_HASH_HEADER
from pipelines.service.files import DAMAGED_HEADER
from pipelines.service.pull import PullError, pull_batch

AGENCY = "business-aid"


@pytest.fixture(scope="module")
def service(two_agencies, serve):
    with pytest.MonkeyPatch.context() as patch:
        for name, value in two_agencies["env"].items():
            patch.setenv(name, value)
        state = state_dir()
        secret = access.create_token(state, role="agency", agency=AGENCY, name="damage")[1]
        with serve(two_agencies["root"] / "serve-damaged.log") as running:
            yield {
                **running,
                "secret": secret,
                "state": state,
                "source": two_agencies["batches"][AGENCY].output_dir,
            }


@pytest.fixture
def copy_batch(service) -> Iterator[Callable[[], Path]]:
    made: list[Path] = []

    def copy() -> Path:
        batch_id = f"batch-{len(made) + 1:04d}{'d' * 16}"
        folder = service["source"].parent / batch_id
        shutil.copytree(service["source"], folder)
        manifest = json.loads((folder / "manifest.json").read_text())
        (folder / "manifest.json").write_text(json.dumps({**manifest, "batch_id": batch_id}))
        made.append(folder)
        return folder

    yield copy
    for folder in made:
        shutil.rmtree(folder)
        for cached in cache_dir(service).glob(f"{folder.name}.*"):
            cached.unlink()


def cache_dir(service) -> Path:
    return service["state"].root / "cache" / "downloads" / AGENCY


def get(service, folder: Path, what: str = "data?format=parquet") -> httpx.Response:
    url = f"{service['url']}/v1/agencies/{AGENCY}/batches/{folder.name}/{what}"
    return httpx.get(url, headers={"Authorization": f"Bearer {service['secret']}"}, timeout=60)


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("scored.parquet", "data?format=parquet"),
        ("scored.parquet", "data?format=csv"),
        ("drift.html", "reports/drift.html"),
    ],
)
def test_a_damaged_file_is_refused_and_named(service, copy_batch, name: str, what: str) -> None:
    folder = copy_batch()
    assert get(service, folder, what).status_code == 200
    made = sorted(cache_dir(service).glob(f"{folder.name}.*"))
    flip_byte(folder / name)

    refused = get(service, folder, what)

    assert refused.status_code == 500
    assert refused.headers[DAMAGED_HEADER] == name
    assert "pulling again will not help" in refused.json()["detail"]
    assert str(service["state"].root) not in refused.text  # no server path for the agency
    assert sorted(cache_dir(service).glob(f"{folder.name}.*")) == made  # nothing made from it


@pytest.mark.parametrize("format", ["parquet", "csv"])
def test_pull_says_the_servers_copy_is_damaged_not_pull_it_again(
    service, copy_batch, tmp_path: Path, format: str
) -> None:
    folder = copy_batch()
    flip_byte(folder / "scored.parquet")
    output = tmp_path / f"batch.{format}"

    with pytest.raises(PullError) as raised:
        pull_batch(
            service["url"], service["secret"], AGENCY, output, batch_id=folder.name, format=format
        )

    message = str(raised.value)
    assert "service's own copy" in message and "scored.parquet" in message
    assert "pull it again" not in message.lower() and "agencyml verify" in message
    assert not output.exists() and not list(tmp_path.iterdir())


def republish(folder: Path, frame: pd.DataFrame) -> None:
    """Write scored.parquet with these rows and record its new sha256, as publishing would."""
    frame.to_parquet(folder / "scored.parquet", index=False)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["file_sha256"]["scored.parquet"] = file_sha256(folder / "scored.parquet")
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_the_csv_cache_follows_the_scored_files_contents(service, copy_batch) -> None:
    folder = copy_batch()
    original = {n: (folder / n).read_bytes() for n in ("scored.parquet", "manifest.json")}
    first = get(service, folder, "data?format=csv")
    assert first.status_code == 200

    frame = pd.read_parquet(folder / "scored.parquet")
    column = next(c for c in frame.columns if pd.api.types.is_float_dtype(frame[c]))
    frame.loc[0, column] = 0.123456789
    republish(folder, frame)
    changed = get(service, folder, "data?format=csv")

    assert changed.status_code == 200 and changed.content != first.content
    assert pd.read_csv(io.BytesIO(changed.content))[column].iloc[0] == pytest.approx(0.123456789)

    for name, content in original.items():
        (folder / name).write_bytes(content)
    restored = get(service, folder, "data?format=csv")

    assert restored.content == first.content
    assert restored.headers[CONTENT_HASH_HEADER] == first.headers[CONTENT_HASH_HEADER]
    made = sorted(p.name for p in cache_dir(service).glob(f"{folder.name}.*"))
    assert len(made) == 2, made  # one CSV and its sha256: what the changed file made is gone


def test_a_changed_cached_file_is_made_again(service, copy_batch) -> None:
    folder = copy_batch()
    first = get(service, folder, "data?format=csv")
    [cached] = cache_dir(service).glob(f"{folder.name}.*.csv")
    flip_byte(cached)

    again = get(service, folder, "data?format=csv")

    assert again.content == first.content
    assert hashlib.sha256(again.content).hexdigest() == again.headers[CONTENT_HASH_HEADER]
