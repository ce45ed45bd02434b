"""Every AGENCYML_* setting in one place: defaults, values from the environment, one clear
error for a malformed value, secrets masked, and README's table in step with the class."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.paths import PACKAGE_ROOT
from pipelines.settings import Settings, SettingsError, settings, variable


@pytest.fixture(autouse=True)
def clean(monkeypatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(variable(name), raising=False)


def test_the_defaults_are_the_embedded_platform() -> None:
    found = settings()

    assert found.home is None and found.tracking_uri is None and found.token is None
    assert found.url == "http://127.0.0.1:8765"
    assert found.mlflow_ui_url == "http://127.0.0.1:5000"
    assert found.session_idle_minutes == 30


def test_values_come_from_the_environment_and_an_empty_one_is_unset(monkeypatch) -> None:
    monkeypatch.setenv("AGENCYML_HOME", "/srv/agencyml")
    monkeypatch.setenv("AGENCYML_SESSION_IDLE_MINUTES", "5")
    monkeypatch.setenv("AGENCYML_TRACKING_URI", "")

    found = settings()

    assert found.home == Path("/srv/agencyml") and found.session_idle_minutes == 5
    assert found.tracking_uri is None


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("AGENCYML_SESSION_IDLE_MINUTES", "half an hour", "valid number"),
        ("AGENCYML_SESSION_IDLE_MINUTES", "0", "greater than 0"),
        ("AGENCYML_PREFECT_SERVER", "sometimes", "'temporary'"),
    ],
)
def test_a_malformed_value_names_its_variable_and_what_it_takes(
    monkeypatch, name: str, value: str, said: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        settings()

    assert f"{name}={value!r}" in str(raised.value) and said in str(raised.value)
    assert "agencyml settings" in str(raised.value)


def test_a_secret_is_masked_when_shown(monkeypatch) -> None:
    monkeypatch.setenv("AGENCYML_TOKEN", "aml_supersecret")

    shown = settings().shown()

    assert "supersecret" not in str(shown) and shown["token"] == "****** (set)"
    assert shown["home"] == "(not set)"
    assert settings().token.get_secret_value() == "aml_supersecret"


def test_the_readme_table_lists_every_setting_with_its_default() -> None:
    readme = (PACKAGE_ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| `(AGENCYML_[A-Z_]+)` \| ([^|]*) \|", readme, re.MULTILINE))

    assert set(rows) == {variable(name) for name in Settings.model_fields}
    for name, field in Settings.model_fields.items():
        if field.default not in (None, ""):
            assert str(field.default).removesuffix(".0") in rows[variable(name)], name
