"""Where the server tells its UI to call, and which API the commands talk to."""

from __future__ import annotations

import pytest

from pipelines.orchestration import prefect_server
from pipelines.orchestration.prefect_server import OrchestrationError


@pytest.mark.parametrize(
    ("public", "ui_api", "ui"),
    [
        (None, "http://127.0.0.1:14200/api", "http://127.0.0.1:14200"),
        (
            "https://prefect.example.org/api/",
            "https://prefect.example.org/api",
            "https://prefect.example.org",
        ),
    ],
)
def test_the_ui_is_pointed_at_the_port_served_or_the_public_url(monkeypatch, public, ui_api, ui):
    monkeypatch.setenv("PREFECT_API_URL", "http://elsewhere:4200/api")
    environment = prefect_server.server_environment("127.0.0.1", 14200, True, public)
    assert environment["PREFECT_UI_API_URL"] == ui_api
    assert environment["PREFECT_UI_URL"] == ui
    assert environment["PREFECT_SERVER_API_PORT"] == "14200"
    assert "PREFECT_API_URL" not in environment


@pytest.mark.parametrize(
    ("given", "variable", "expected"),
    [
        ("http://a:1/api", "http://b:2/api", "http://a:1/api"),
        (None, "http://b:2/api", "http://b:2/api"),
        (None, None, "http://127.0.0.1:4200/api"),
    ],
)
def test_api_url_prefers_the_option_then_the_variable_then_the_local_server(
    monkeypatch, given, variable, expected
):
    if variable is None:
        monkeypatch.delenv("PREFECT_API_URL", raising=False)
    else:
        monkeypatch.setenv("PREFECT_API_URL", variable)
    assert prefect_server.api_url(given) == expected


@pytest.mark.parametrize("url", ["127.0.0.1:4200/api", "ftp://host/api", "http://"])
def test_an_api_url_that_is_not_http_is_refused_with_an_example(url):
    with pytest.raises(OrchestrationError, match="is not a Prefect API URL"):
        prefect_server.api_url(url)
