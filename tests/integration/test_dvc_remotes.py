"""DVC remotes really round-trip the ingested data: a local folder remote and an S3-compatible
one (a real moto server process), each restoring byte-identical files into a fresh clone, and
refusing objects whose bytes no longer match the md5 recorded in dvc.lock.

What DVC 3.67 verifies, as these tests show:
- a remote with `verify = true` has every downloaded object re-hashed; a corrupted one is
  refused (`dvc pull` exits non-zero and writes no file). S3 remotes default to
  `verify = false`, and then a corrupted S3 object is checked out silently, so the project
  sets `verify = true` on every remote.
- the cache is only re-hashed when its object is not read-only: `dvc pull` then drops a
  corrupted object and fetches it again. `dvc checkout` never re-hashes, and a corrupted
  object that is still read-only (as DVC leaves them) is trusted by `dvc pull` too, which is
  why the project checks the md5 of every file it restores itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from servers import free_port, s3_client, s3_server, stop, wait_until_up

from pipelines.data.versioning import DataIntegrityError, restore_file, temporary_worktree

BUCKET = "agencyml-dvc"
STAGE = "ingest@business-aid-applications"
DATA = "data/ingested/business-aid/applications.parquet"
RASFF = "data/ingested/product-safety/rasff.parquet"
# variables that would point boto3 or DVC at a real AWS account or another endpoint
AWS_LEAKS = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL")


@pytest.fixture(scope="module")
def aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Fake credentials, and AWS config files that do not exist, so no real account is used;
    set in this process too (for boto3) while the module runs."""
    folder = tmp_path_factory.mktemp("aws")
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(folder / "missing-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(folder / "missing-credentials"),
    }
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(AWS_LEAKS):
                patch.delenv(name)
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="module")
def s3_endpoint(aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real moto S3 server process on a free local port, holding the bucket BUCKET."""
    with s3_server(tmp_path_factory.mktemp("moto") / "server.log", aws_env, BUCKET) as endpoint:
        yield endpoint


@pytest.fixture
def project(dvc_project, aws_env, tmp_path):
    """dvc_project with the fake AWS settings and its own DVC site cache (DVC's index and
    hash state), so nothing DVC remembers leaks between tests or into the clones."""
    for name in list(dvc_project.env):
        if name.startswith(AWS_LEAKS):
            del dvc_project.env[name]
    dvc_project.env.update(aws_env)
    dvc_project.env["DVC_SITE_CACHE_DIR"] = str(tmp_path / "dvc-site-cache")
    return dvc_project


@pytest.fixture
def s3_remote(project, s3_endpoint) -> str:
    """A DVC remote 's3' (not the default) on a prefix of the bucket of its own, committed to
    git so clones have it; credentials come from the environment."""
    url = f"s3://{BUCKET}/{uuid.uuid4().hex}/dvc"
    project.run("dvc", "remote", "add", "s3", url)
    project.run("dvc", "remote", "modify", "s3", "endpointurl", s3_endpoint)
    project.run("dvc", "remote", "modify", "s3", "verify", "true")
    project.git("add", ".dvc/config")
    project.git("commit", "-qm", "s3 remote")
    return url


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def recorded_md5(root: Path, stage: str = STAGE) -> str:
    lock = yaml.safe_load((root / "dvc.lock").read_text())
    return lock["stages"][stage]["outs"][0]["md5"]


def object_path(md5: str) -> str:
    """Where DVC 3 keeps the object for `md5`, inside a cache or remote."""
    return f"files/md5/{md5[:2]}/{md5[2:]}"


def ingest_and_commit(project, *agencies: str) -> None:
    for agency in agencies:
        project.run("agencyml", "ingest", "-a", agency)
    project.git("add", "-A")
    project.git("commit", "-qm", "ingested")


def fresh_clone(project, name: str) -> Path:
    """A git clone of the project: its config, dvc.yaml and dvc.lock, but no cache or data."""
    target = project.root.parent / name
    project.run("git", "clone", "-q", str(project.root), str(target))
    assert not (target / ".dvc" / "cache").exists()
    assert not (target / DATA).exists()
    return target


def run_in(project, cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command that may fail; the caller checks the exit code."""
    return subprocess.run(
        list(command), cwd=cwd, env=project.env, capture_output=True, text=True, timeout=600
    )


def switch_off_verify(project, clone: Path, remote: str) -> None:
    """DVC's own default for the remote, in the clone's untracked config.local."""
    done = run_in(project, clone, "dvc", "remote", "modify", "--local", remote, "verify", "false")
    assert done.returncode == 0, done.stderr


def corrupted(good: bytes) -> bytes:
    """Other bytes of the same size, so nothing but a hash tells them apart."""
    bad = good[::-1]
    assert hashlib.md5(bad).hexdigest() != hashlib.md5(good).hexdigest()
    return bad


def overwrite(path: Path, data: bytes, *, read_only: bool) -> None:
    """Overwrite a DVC object (read-only, as DVC leaves them) and leave it read-only, as bit
    rot or an in-place edit would, or writable, as a process that chmods it first would."""
    path.chmod(0o644)
    path.write_bytes(data)
    path.chmod(0o444 if read_only else 0o644)


def test_dvc_pull_into_a_fresh_clone_restores_byte_identical_data_from_the_local_remote(project):
    ingest_and_commit(project, "business-aid", "product-safety")
    stages = {DATA: STAGE, RASFF: "ingest@product-safety-rasff"}
    originals = {path: (project.root / path).read_bytes() for path in stages}
    for path, data in originals.items():
        md5 = recorded_md5(project.root, stages[path])
        assert hashlib.md5(data).hexdigest() == md5
        assert (project.remote / object_path(md5)).read_bytes() == data

    clone = fresh_clone(project, "clone")
    # the fixture's remote URL is absolute, so it is valid in a clone anywhere
    configured = run_in(project, clone, "dvc", "config", "remote.local.url").stdout.strip()
    assert configured == str(project.remote)
    pulled = run_in(project, clone, "dvc", "pull")
    assert pulled.returncode == 0, pulled.stderr
    for path, data in originals.items():
        assert (clone / path).read_bytes() == data
    assert json.loads(run_in(project, clone, "dvc", "status", "--json", STAGE).stdout) == {}


def test_an_s3_compatible_remote_works_with_the_same_commands(project, s3_remote, s3_endpoint):
    ingest_and_commit(project, "business-aid")
    md5 = recorded_md5(project.root)
    original = (project.root / DATA).read_bytes()

    before = json.loads(project.run("dvc", "status", "-c", "-r", "s3", "--json"))
    assert before == {DATA: "new"}
    assert "1 file pushed" in project.run("dvc", "push", "-r", "s3")
    prefix = s3_remote.removeprefix(f"s3://{BUCKET}/")
    stored = s3_client(s3_endpoint).get_object(Bucket=BUCKET, Key=f"{prefix}/{object_path(md5)}")
    assert stored["Body"].read() == original
    assert json.loads(project.run("dvc", "status", "-c", "-r", "s3", "--json")) == {}
    assert "in sync" in project.run("dvc", "status", "-c", "-r", "s3")

    clone = fresh_clone(project, "clone")
    cloud_status = ("dvc", "status", "-c", "-r", "s3", "--json")
    # "deleted": on the remote, not yet in the clone's cache ("missing" would be neither)
    assert json.loads(run_in(project, clone, *cloud_status).stdout) == {DATA: "deleted"}
    (project.remote / object_path(md5)).unlink()  # so the bytes can only come from S3
    pulled = run_in(project, clone, "dvc", "pull", "-r", "s3", DATA)
    assert pulled.returncode == 0, pulled.stderr
    assert (clone / DATA).read_bytes() == original
    assert json.loads(run_in(project, clone, *cloud_status).stdout) == {}
    assert md5_of(clone / ".dvc" / "cache" / object_path(md5)) == md5


def test_a_corrupted_object_on_the_s3_remote_is_refused(project, s3_remote, s3_endpoint):
    ingest_and_commit(project, "business-aid")
    md5 = recorded_md5(project.root)
    project.run("dvc", "push", "-r", "s3")
    key = f"{s3_remote.removeprefix(f's3://{BUCKET}/')}/{object_path(md5)}"
    bad = corrupted((project.root / DATA).read_bytes())
    s3_client(s3_endpoint).put_object(Bucket=BUCKET, Key=key, Body=bad)

    clone = fresh_clone(project, "clone")
    assert "verify = true" in (clone / ".dvc" / "config").read_text()
    pulled = run_in(project, clone, "dvc", "pull", "-r", "s3", DATA)
    assert pulled.returncode != 0
    assert "Checkout failed" in pulled.stderr
    assert not (clone / DATA).exists()
    assert not (clone / ".dvc" / "cache" / object_path(md5)).exists()

    # verify = true is what refuses it: S3 remotes default to false, and then DVC checks the
    # corrupted object out without a word
    unverified = fresh_clone(project, "unverified")
    switch_off_verify(project, unverified, "s3")
    pulled = run_in(project, unverified, "dvc", "pull", "-r", "s3", DATA)
    assert pulled.returncode == 0, pulled.stderr
    assert (unverified / DATA).read_bytes() == bad


def test_a_corrupted_object_on_the_local_remote_is_refused(project):
    ingest_and_commit(project, "business-aid")
    md5 = recorded_md5(project.root)
    stored = project.remote / object_path(md5)

    # corrupted in place and still read-only: refused, and left on the remote
    bad = corrupted(stored.read_bytes())
    overwrite(stored, bad, read_only=True)
    clone = fresh_clone(project, "clone")
    pulled = run_in(project, clone, "dvc", "pull", DATA)
    assert pulled.returncode != 0
    assert "Checkout failed" in pulled.stderr
    assert not (clone / DATA).exists()
    assert not (clone / ".dvc" / "cache" / object_path(md5)).exists()
    assert stored.read_bytes() == bad
    # ... because of verify = true, as on S3: without it, DVC trusts a read-only object
    unverified = fresh_clone(project, "unverified")
    switch_off_verify(project, unverified, "local")
    pulled = run_in(project, unverified, "dvc", "pull", DATA)
    assert pulled.returncode == 0, pulled.stderr
    assert (unverified / DATA).read_bytes() == bad

    # writable: DVC re-hashes it while checking what the remote holds, and deletes it
    overwrite(stored, bad, read_only=False)
    clone = fresh_clone(project, "clone-2")
    pulled = run_in(project, clone, "dvc", "pull", DATA)
    assert pulled.returncode != 0
    assert "missing" in pulled.stderr.lower()
    assert not (clone / DATA).exists()
    assert not stored.exists()


def test_a_corrupted_object_in_the_cache_is_refused_by_dvc_pull(project):
    ingest_and_commit(project, "business-aid")
    md5 = recorded_md5(project.root)
    original = (project.root / DATA).read_bytes()
    cached = project.root / ".dvc" / "cache" / object_path(md5)
    stored = project.remote / object_path(md5)
    assert oct(cached.stat().st_mode & 0o777) == oct(0o444)

    overwrite(cached, corrupted(original), read_only=False)
    (project.root / DATA).unlink()
    stored.unlink()  # nothing DVC could heal it from
    pulled = run_in(project, project.root, "dvc", "pull", DATA)
    assert pulled.returncode != 0
    assert "Checkout failed" in pulled.stderr
    assert not (project.root / DATA).exists()
    assert not cached.exists()  # DVC dropped the corrupted object

    # with the remote object back, the same command heals the cache and the file
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(original)
    project.run("dvc", "pull", DATA)
    assert (project.root / DATA).read_bytes() == original
    assert md5_of(cached) == md5


def test_what_dvc_does_not_verify_agencyml_refuses(project):
    """DVC's limits, shown so no one relies on them: `dvc checkout` copies a corrupted cache
    object out as it is, and `dvc pull` trusts a read-only one even when the remote holds the
    good bytes. agencyml's restore checks the md5 itself and refuses the file."""
    ingest_and_commit(project, "business-aid")
    md5 = recorded_md5(project.root)
    cached = project.root / ".dvc" / "cache" / object_path(md5)
    assert (project.remote / object_path(md5)).exists()

    bad = corrupted(cached.read_bytes())
    overwrite(cached, bad, read_only=False)
    (project.root / DATA).unlink()
    checkout = run_in(project, project.root, "dvc", "checkout", DATA)
    assert checkout.returncode == 0, checkout.stderr
    assert (project.root / DATA).read_bytes() == bad

    cached.chmod(0o444)
    (project.root / DATA).unlink()
    pulled = run_in(project, project.root, "dvc", "pull", DATA)
    assert pulled.returncode == 0, pulled.stderr
    assert (project.root / DATA).read_bytes() == bad
    assert md5_of(project.root / DATA) != recorded_md5(project.root)

    # the restore `agencyml reproduce` uses pulls the same object, then refuses it by its md5
    commit = project.git("rev-parse", "HEAD").strip()
    with (
        temporary_worktree(project.root, commit) as tree,
        pytest.raises(DataIntegrityError, match=f"{md5} was recorded"),
    ):
        restore_file(tree, project.root, DATA, md5, STAGE)


def test_a_shared_mlflow_server_keeps_runs_and_models_with_artifacts_on_s3(
    project, s3_endpoint, tmp_path
):
    """docs/scaling.md's settings: an MLflow server (its own database) that proxies artifacts
    to an S3-compatible bucket, and agencyml pointed at it with AGENCYML_TRACKING_URI. The
    clients need no S3 credentials; the model, its files and the scoring run land there."""
    from mlflow.tracking import MlflowClient

    from pipelines.data.business_aid import generate_applications

    port = free_port()
    prefix = f"mlflow-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "mlflow-server.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("mlflow")),
                "server",
                "--backend-store-uri",
                f"sqlite:///{tmp_path / 'server.db'}",
                "--artifacts-destination",
                f"s3://{BUCKET}/{prefix}",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
            ],
            env={**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{url}/health", server, log_path)
        env = {**project.env, "AGENCYML_TRACKING_URI": url}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            env.pop(name, None)  # only the server holds the bucket's keys
        batch = tmp_path / "batch.parquet"
        generate_applications(400, seed=3).drop(columns=["is_fraud", "review_track"]).to_parquet(
            batch
        )
        for command in (
            ["train", "-a", "business-aid", "-u", "fraud-risk"],
            ["score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch)],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "flows", *command],
                cwd=project.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]

        client = MlflowClient(url, url)
        champion = client.get_model_version_by_alias("business-aid.fraud-risk", "champion")
        assert champion.source.startswith("mlflow-artifacts:/") or "models" in champion.source
        scoring = client.get_experiment_by_name("agencyml/business-aid/scoring")
        (run,) = client.search_runs([scoring.experiment_id])
        assert run.data.tags["agencyml.model_version"] == str(champion.version)
        keys = [
            item["Key"]
            for page in s3_client(s3_endpoint)
            .get_paginator("list_objects_v2")
            .paginate(Bucket=BUCKET, Prefix=prefix)
            for item in page.get("Contents", [])
        ]
        assert any(key.endswith("MLmodel") for key in keys), keys[:20]
        assert any(key.endswith("manifest.json") for key in keys), keys[:20]
        assert not (project.state / "mlflow" / "mlflow.db").exists()
    finally:
        stop(server, timeout=15)
