"""--verbose shows Prefect's logs even when an agencyml process above set the quiet ones."""

from __future__ import annotations

import os
import stat

import pytest

from flows.runtime import QUIET_LOGGING, prepare_environment
from pipelines.paths import StateDir


@pytest.fixture(autouse=True)
def own_environment(monkeypatch):
    """prepare_environment writes os.environ and the umask; give each test a copy of the one
    and restore the other so nothing leaks."""
    monkeypatch.setattr(os, "environ", dict(os.environ))
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


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


def current_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_the_state_root_is_made_private_and_a_looser_one_tightened_silently(tmp_path, capsys):
    os.umask(0o022)
    prepare_environment(StateDir(tmp_path / "new" / "state"))
    assert current_umask() == 0o077
    assert stat.S_IMODE((tmp_path / "new" / "state").stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    loose.chmod(0o775)
    prepare_environment(StateDir(loose))
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    assert capsys.readouterr() == ("", "")


def test_a_state_root_that_cannot_be_changed_is_left_as_it_is(tmp_path, monkeypatch):
    root = tmp_path / "theirs"
    root.mkdir()
    root.chmod(0o755)

    def refuse(self, mode):
        raise PermissionError(1, "Operation not permitted", str(self))

    monkeypatch.setattr(type(root), "chmod", refuse)
    prepare_environment(StateDir(root))
    assert stat.S_IMODE(root.stat().st_mode) == 0o755
