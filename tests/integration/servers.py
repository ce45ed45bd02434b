"""Helpers for tests that start real servers as processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest


def free_port() -> int:
    """A port nothing listens on at the moment of asking."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    log: Path,
    *,
    timeout: float = 120,
    any_status: bool = False,
) -> None:
    """Poll `url` until it answers 2xx (any status with any_status); fail the test with the
    server's log if the process exits or the time runs out first."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            if any_status:
                return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{url} did not come up:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Terminate a server process and every process it started (an MLflow server's uvicorn
    workers, say, which would otherwise outlive it), and kill what does not stop in time."""
    import psutil

    try:
        tree = [*psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for child in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(tree, timeout=10)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


FAKE_AWS_KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **FAKE_AWS_KEYS)


@contextlib.contextmanager
def s3_server(log_path: Path, env: dict[str, str], bucket: str) -> Iterator[str]:
    """A real moto S3 server process on a free local port, holding `bucket`; yields its
    endpoint and stops it afterwards."""
    port = free_port()
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{endpoint}/moto-api/", server, log_path, timeout=60, any_status=True)
        s3_client(endpoint).create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        stop(server, timeout=15)
