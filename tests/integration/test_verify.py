"""`agencyml verify` on one small trained project: clean, it says so (exit 0); each kind of
damage a test inflicts (and undoes afterwards) is found, named and exits 9. `lineage` and
rescoring notice a damaged batch too."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from flows.score import score
from pipelines.config import load_use_case
from pipelines.data.storage import file_sha256
from pipelines.paths import StateDir, state_dir
from pipelines.registry import promotion
from pipelines.scoring.batches import write_holdout_batch
from pipelines.service import access
from pipelines.validation.gate import BatchRejectedError

AGENCY, USE_CASE = "business-aid", "fraud-risk"
MODEL = f"{AGENCY}.{USE_CASE}"
runner = CliRunner()


@pytest.fixture(scope="module")
def project(prefect_server, trained_small_project, tmp_path_factory) -> Iterator[dict[str, Any]]:
    """Version 1 trained (champion), the holdout scored with one row quarantined, a rejected
    batch in quarantine and three access-log lines; made under umask 077, as agencyml's
    commands make the state."""
    root = tmp_path_factory.mktemp("verify")
    umask = os.umask(0o077)
    try:
        with trained_small_project(root, (AGENCY, USE_CASE)) as made:
            state = state_dir()
            rows = pd.read_parquet(write_holdout_batch(load_use_case(AGENCY, USE_CASE), state))
            rows.loc[rows.index[0], "company_age_years"] = 500  # over its max: quarantined
            holdout = root / "holdout-with-one-bad-row.parquet"
            rows.to_parquet(holdout)
            scored = score(AGENCY, USE_CASE, str(holdout))
            assert scored.rows_quarantined == 1
            rejected = root / "one-column.csv"
            rejected.write_text("nothing\n1\n2\n")
            with pytest.raises(BatchRejectedError):
                score(AGENCY, USE_CASE, str(rejected))
            for status in (200, 404, 200):
                access.log_access(
                    state, token_id="t1", agency=AGENCY, role="agency", method="GET",
                    path="/v1/agencies/business-aid/batches", status=status, bytes_sent=10,
                    client="127.0.0.1",
                )  # fmt: skip
            os.umask(umask)
            yield {**made, "state": state, "holdout": holdout, "scored": scored}
    finally:
        os.umask(umask)


def verify(*args: str) -> tuple[int, dict[str, Any]]:
    done = runner.invoke(app, ["verify", "--json", *args])
    assert done.exit_code in (0, 9), done.output
    return done.exit_code, json.loads(done.stdout)


def found(report: dict[str, Any], kind: str) -> list[dict[str, str]]:
    return [finding for finding in report["findings"] if finding["kind"] == kind]


def test_a_clean_project_is_reported_clean(project) -> None:
    code, report = verify()

    assert code == 0, report["findings"]
    assert report["clean"] is True and report["findings"] == [] and report["notes"] == []
    checked = report["checked"]
    assert checked["batch"] == 1 and checked["quarantine"] == 2
    assert checked["model"] == 1 and checked["alias"] == 1
    assert checked["audit log"] == checked["access log"] == checked["permissions"] == 1

    printed = runner.invoke(app, ["verify"])
    assert printed.exit_code == 0 and "Nothing damaged" in printed.stdout


def flip_byte(path: Path) -> Callable[[], None]:
    """Flip one byte in the middle of the file; returns what puts it back."""
    original = path.read_bytes()
    mode = path.stat().st_mode
    path.chmod(0o600)
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 0x01
    path.write_bytes(bytes(damaged))

    def undo() -> None:
        path.write_bytes(original)
        path.chmod(mode)

    return undo


def scored_file(project) -> Path:
    return project["scored"].output_dir / "scored.parquet"


def rewrite_with_its_hash(project) -> Callable[[], None]:
    """Change a byte of scored.parquet and write its new sha256 into the manifest: only the
    manifest the scoring run logged in MLflow can tell."""
    folder = project["scored"].output_dir
    manifest_file = folder / "manifest.json"
    original = manifest_file.read_bytes()
    undo_file = flip_byte(folder / "scored.parquet")
    manifest = json.loads(original)
    manifest["file_sha256"]["scored.parquet"] = file_sha256(folder / "scored.parquet")
    manifest_file.write_text(json.dumps(manifest))

    def undo() -> None:
        undo_file()
        manifest_file.write_bytes(original)

    return undo


def quarantined_input(project) -> Path:
    state: StateDir = project["state"]
    return next(state.quarantine(AGENCY, USE_CASE).glob("*/input.csv"))


def quarantined_rows(project) -> Path:
    state: StateDir = project["state"]
    return state.quarantine(AGENCY, USE_CASE) / project["scored"].batch_id / "rows.csv"


def change_model_file(project) -> Callable[[], None]:
    undos = [flip_byte(path) for path in project["state"].artifact_root.rglob("booster.txt")]
    assert undos
    return lambda: [undo() for undo in undos]


def delete_log_line(path: Path, number: int) -> Callable[[], None]:
    original = path.read_bytes()
    lines = original.splitlines(keepends=True)
    assert len(lines) > number
    path.chmod(0o600)
    path.write_bytes(b"".join(lines[:number] + lines[number + 1 :]))
    return lambda: path.write_bytes(original)


def edit_audit_log(project) -> Callable[[], None]:
    path = promotion.audit_path(project["state"])
    original = path.read_bytes()
    assert b'"action": "promote"' in original
    path.write_bytes(original.replace(b'"action": "promote"', b'"action": "approve"', 1))
    return lambda: path.write_bytes(original)


def move_alias(project) -> Callable[[], None]:
    """A second version of the same files (its tags copied), made champion with MLflow's own
    client: nothing in agencyml recorded the move."""
    uri = project["state"].tracking_uri
    client = MlflowClient(uri, uri)
    first = client.get_model_version(MODEL, "1")
    second = client.create_model_version(MODEL, first.source, first.run_id, tags=first.tags)
    client.set_registered_model_alias(MODEL, "champion", second.version)

    def undo() -> None:
        client.set_registered_model_alias(MODEL, "champion", "1")
        client.delete_model_version(MODEL, second.version)

    return undo


def loosen(path: Path) -> Callable[[], None]:
    mode = path.stat().st_mode
    path.chmod(0o644)
    return lambda: path.chmod(mode)


DAMAGE = {
    "scored-byte-flipped": (lambda p: flip_byte(scored_file(p)), "batch", scored_file),
    "scored-file-and-manifest-rewritten": (
        rewrite_with_its_hash,
        "batch",
        lambda p: p["scored"].output_dir / "manifest.json",
    ),
    "quarantine-changed": (
        lambda p: flip_byte(quarantined_input(p)),
        "quarantine",
        quarantined_input,
    ),
    "quarantined-rows-changed": (
        lambda p: flip_byte(quarantined_rows(p)),
        "quarantine",
        quarantined_rows,
    ),
    "model-file-changed": (change_model_file, "model", lambda p: f"{MODEL} v1"),
    "access-log-line-deleted": (
        lambda p: delete_log_line(access.access_log_path(p["state"]), 1),
        "access log",
        lambda p: access.access_log_path(p["state"]),
    ),
    "access-log-newest-line-cut": (
        lambda p: delete_log_line(access.access_log_path(p["state"]), 2),
        "access log",
        lambda p: access.access_log_path(p["state"]),
    ),
    "audit-log-line-deleted": (
        lambda p: delete_log_line(promotion.audit_path(p["state"]), 0),
        "audit log",
        lambda p: promotion.audit_path(p["state"]),
    ),
    "audit-log-line-edited": (
        edit_audit_log,
        "audit log",
        lambda p: promotion.audit_path(p["state"]),
    ),
    "alias-moved": (move_alias, "alias", lambda p: MODEL),
    "world-readable-file": (
        lambda p: loosen(p["state"].mlflow_dir / "mlflow.db"),
        "permissions",
        lambda p: p["state"].mlflow_dir / "mlflow.db",
    ),
}


@pytest.mark.parametrize("case", DAMAGE, ids=list(DAMAGE))
def test_each_kind_of_damage_is_found_named_and_exits_9(project, case: str) -> None:
    inflict, kind, where = DAMAGE[case]
    undo = inflict(project)
    try:
        code, report = verify()
        printed = runner.invoke(app, ["verify"])
    finally:
        undo()

    assert code == 9 and report["clean"] is False
    assert [f["kind"] for f in report["findings"]] == [kind], report["findings"]
    assert report["findings"][0]["where"] == str(where(project))
    assert printed.exit_code == 9
    assert "Damage found: 1" in printed.stdout and kind in printed.stdout
    assert "verify found 1 problem(s)" in printed.stderr


def test_a_flipped_byte_fails_lineage_and_rescoring_and_another_agency_is_not_told(
    project,
) -> None:
    scored = project["scored"]
    undo = flip_byte(scored_file(project))
    try:
        other_code, other = verify("--agency", "product-safety")
        lineage = runner.invoke(app, ["lineage", scored.batch_id, "--json"])
        again = runner.invoke(
            app, ["score", "-a", AGENCY, "-u", USE_CASE, "-i", str(project["holdout"])]
        )
    finally:
        undo()

    # the batch is business-aid's: product-safety's verify sees no batch (the logs are shared)
    assert other_code == 0 and other["checked"]["batch"] == 0
    assert lineage.exit_code == 12
    missing = json.loads(lineage.stdout)["missing"]
    assert any("scored.parquet" in m and "changed after publishing" in m for m in missing)
    assert again.exit_code == 9, again.output
    message = " ".join(again.stderr.split())
    assert f"batch {scored.batch_id} is published" in message
    assert "scored.parquet" in message and "Nothing was scored again" in message
    # the manifest and the batch are as they were: nothing was re-published over them
    manifest = json.loads((scored.output_dir / "manifest.json").read_text())
    assert manifest["batch_id"] == scored.batch_id


def test_lineage_of_an_intact_batch_says_its_files_are_intact(project) -> None:
    done = runner.invoke(app, ["lineage", project["scored"].batch_id, "--json"])

    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["facts"]["files intact"].startswith("yes")


def test_after_every_undo_the_project_is_clean_again(project) -> None:
    code, report = verify()

    assert code == 0, report["findings"]
    assert report["clean"] is True


def test_an_unknown_agency_is_refused_not_reported_clean(project) -> None:
    done = runner.invoke(app, ["verify", "--agency", "nobody"])

    assert done.exit_code == 2
    message = " ".join(done.stderr.split())
    assert "unknown agency 'nobody'" in message and "business-aid" in message
