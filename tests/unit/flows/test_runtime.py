"""--verbose shows Prefect's logs even when an agencyml process above set the quiet ones."""

from __future__ import annotations

import os

import pytest

from flows.runtime import QUIET_LOGGING, prepare_environment
from pipelines.paths import StateDir


@pytest.fixture(autouse=True)
def own_environment(monkeypatch):
    """prepare_environment writes os.environ; give each test a copy so nothing leaks."""
    monkeypatch.setattr(os, "environ", dict(os.environ))


def test_verbose_drops_quiet_logging_inherited_from_a_parent_process(tmp_path):
    os.environ["PREFECT_LOGGING_CONFIG_PATH"] = str(QUIET_LOGGING)
    prepare_environment(StateDir(tmp_path), verbose=True)
    assert "PREFECT_LOGGING_CONFIG_PATH" not in os.environ


def test_verbose_keeps_a_users_own_logging_config(tmp_path):
    mine = str(tmp_path / "my-logging.yml")
    os.environ["PREFECT_LOGGING_CONFIG_PATH"] = mine
    prepare_environment(StateDir(tmp_path), verbose=True)
    assert os.environ["PREFECT_LOGGING_CONFIG_PATH"] == mine


def test_quiet_is_the_default_and_never_overrides_a_users_setting(tmp_path):
    os.environ.pop("PREFECT_LOGGING_CONFIG_PATH", None)
    os.environ["MLFLOW_LOGGING_LEVEL"] = "DEBUG"
    prepare_environment(StateDir(tmp_path))
    assert os.environ["PREFECT_LOGGING_CONFIG_PATH"] == str(QUIET_LOGGING)
    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"
