"""Every AGENCYML_* setting in one place (pydantic-settings): its default, its meaning, and one
clear error when a value is malformed. Read with `settings()`, which reads the environment
afresh each time (tests and commands change it), never from os.environ elsewhere.

`agencyml settings` prints the effective values, secrets masked; README's "Settings" table is
checked against this class by a test."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "AGENCYML_"


class SettingsError(ValueError):
    """An AGENCYML_* variable holds a value agencyml cannot use; says which and what it takes."""


class Settings(BaseSettings):
    """agencyml's settings, from AGENCYML_<NAME> environment variables."""

    model_config = SettingsConfigDict(
        env_prefix=PREFIX, extra="ignore", frozen=True, env_ignore_empty=True
    )

    project_root: Path | None = Field(
        None,
        description="The project (the folder holding params/); default: found by walking up "
        "from the working directory to a folder with params/",
    )
    home: Path | None = Field(
        None,
        description="The state directory (MLflow store, Prefect database, outputs, inbox, "
        "locks); default: .agencyml/ in the project",
    )
    tracking_uri: str | None = Field(
        None,
        description="MLflow's tracking and registry store, e.g. http://mlflow:5000 for a shared "
        "server; default: SQLite in the state directory",
    )
    artifact_root: str | None = Field(
        None,
        description="Where new experiments keep artifacts, e.g. s3://bucket/agencyml; default: "
        "the tracking server's own, else the state directory",
    )
    mlflow_ui_url: str = Field(
        "http://127.0.0.1:5000",
        description="MLflow's UI as people open it: the links of `lineage` and the auditor "
        "pages (default: where `agencyml ui` serves it)",
    )
    prefect_server: Literal["", "local", "temporary"] = Field(
        "",
        description="'temporary': Prefect's own throw-away server per command instead of the "
        "state directory's background server (ignored when PREFECT_API_URL is set)",
    )
    session_idle_minutes: float = Field(
        30,
        gt=0,
        description="Minutes without a request after which a web page session ends",
    )
    anonymous_requests_per_minute: int = Field(
        120,
        ge=1,
        description="Requests one address may make to the pull service in a minute without a "
        "valid token, before it gets 429",
    )
    url: str = Field(
        "http://127.0.0.1:8765",
        description="The pull service `agencyml pull` talks to",
    )
    token: SecretStr | None = Field(
        None,
        description="The agency's pull token for `agencyml pull` (a secret: masked when shown)",
    )

    @field_validator("tracking_uri")
    @classmethod
    def _a_uri(cls, value: str | None) -> str | None:
        # a bare word or path made MLflow open a file store it no longer supports
        if value is not None and not urlsplit(value).scheme and value != "databricks":
            raise ValueError(
                "not a URI: give one with its scheme, e.g. http://mlflow:5000 or "
                "sqlite:////srv/agencyml/mlflow.db"
            )
        return value

    def shown(self) -> dict[str, str]:
        """Every setting as `agencyml settings` prints it: secrets masked, unset ones said."""
        values: dict[str, str] = {}
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            if isinstance(value, SecretStr):
                values[name] = "****** (set)"
            elif value is None or value == "":
                values[name] = "(not set)"
            else:
                values[name] = str(value)
        return values


def settings() -> Settings:
    """The effective settings, read from the environment now; a malformed value raises
    SettingsError naming the variable and what it takes."""
    try:
        return Settings()
    except ValidationError as error:
        problems = []
        for item in error.errors():
            name = PREFIX + str(item["loc"][0]).upper() if item["loc"] else PREFIX
            field = Settings.model_fields.get(str(item["loc"][0]).lower()) if item["loc"] else None
            meaning = f" ({field.description})" if field and field.description else ""
            said = str(item["msg"]).removeprefix("Value error, ")  # pydantic's prefix
            problems.append(f"{name}={item.get('input')!r}: {said}{meaning}")
        raise SettingsError(
            "; ".join(problems) + ". Fix or unset it; `agencyml settings` lists every setting."
        ) from None


def variable(name: str) -> str:
    """The environment variable behind a setting, e.g. 'home' -> AGENCYML_HOME."""
    return PREFIX + name.upper()
