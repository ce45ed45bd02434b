"""Which calls the read-only MLflow UI passes: every read the UI makes, no write, checked
against the routes of the MLflow that is installed."""

from __future__ import annotations

import pytest

from pipelines.service.mlflow_ui import API_PATH, READ_POSTS, is_read, refusal


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/static-files/lib/index.js"),
        ("GET", "/ajax-api/2.0/mlflow/registered-models/search"),
        ("GET", "/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval"),
        ("GET", "/get-artifact"),
        ("HEAD", "/health"),
        ("POST", "/ajax-api/2.0/mlflow/runs/search"),
        ("POST", "/api/2.0/mlflow/experiments/search"),
        ("POST", "/ajax-api/2.0/mlflow/logged-models/search"),
        ("POST", "/ajax-api/3.0/mlflow/traces/search"),
        ("POST", "/graphql"),
    ],
)
def test_the_ui_reads_pass(method: str, path: str) -> None:
    assert is_read(method, path)


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/ajax-api/2.0/mlflow/registered-models/alias"),
        ("POST", "/ajax-api/2.0/mlflow/registered-models/alias"),
        ("POST", "/ajax-api/2.0/mlflow/experiments/create"),
        ("PATCH", "/ajax-api/2.0/mlflow/model-versions/update"),
        ("PUT", "/ajax-api/2.0/mlflow-artifacts/artifacts/1/a/model.pkl"),
        ("POST", "/v1/traces"),
        ("POST", "/ajax-api/2.0/mlflow/runs/search/../delete"),
        ("POST", "/ajax-api/2.0/mlflow/runs/searchx"),
        ("POST", "/ajax-api/3.0/mlflow/ui-telemetry"),
        ("POST", "/"),
    ],
)
def test_writes_are_refused(method: str, path: str) -> None:
    assert not is_read(method, path)
    assert "agencyml ui --allow-writes" in refusal(method, path)["message"]


def test_the_read_calls_are_mlflows_and_every_other_changing_call_is_refused() -> None:
    from mlflow.server import app

    changing = {
        (method, str(rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods - {"GET", "HEAD", "OPTIONS"}
    }
    api_posts = {
        found["call"]
        for method, path in changing
        if method == "POST" and (found := API_PATH.match(path))
    }

    assert api_posts >= READ_POSTS, READ_POSTS - api_posts
    passed = {
        (method, path)
        for method, path in changing
        if is_read(method, path.replace("<", "").replace(">", ""))
    }
    assert {path for _, path in passed} <= {"/graphql"} | {
        f"/ajax-api/{call}" for call in READ_POSTS
    } | {f"/api/{call}" for call in READ_POSTS}
