"""The batch listing's filters, shared by the API and the agency pages."""

from __future__ import annotations

from datetime import date

from pipelines.service.api import filter_batches
from pipelines.service.pages import filter_days

MANIFESTS = [
    {"batch_id": "c", "use_case": "fraud-risk", "created_at": "2026-11-30T23:59:59+00:00"},
    {"batch_id": "b", "use_case": "triage", "created_at": "2026-11-29T00:00:00+00:00"},
    {"batch_id": "a", "use_case": "fraud-risk", "created_at": "2026-11-28T12:00:00+00:00"},
    {"batch_id": "x", "use_case": "fraud-risk"},  # no created_at: matches no day filter
]


def ids(found: list[dict]) -> list[str]:
    return [m["batch_id"] for m in found]


def test_a_use_case_and_both_days_are_included() -> None:
    assert ids(filter_batches(MANIFESTS)) == ["c", "b", "a", "x"]
    assert ids(filter_batches(MANIFESTS, use_case="fraud-risk")) == ["c", "a", "x"]
    assert ids(filter_batches(MANIFESTS, since=date(2026, 11, 29))) == ["c", "b"]
    assert ids(filter_batches(MANIFESTS, until=date(2026, 11, 29))) == ["b", "a"]
    same_day = {"since": date(2026, 11, 30), "until": date(2026, 11, 30)}
    assert ids(filter_batches(MANIFESTS, **same_day)) == ["c"]
    assert ids(filter_batches(MANIFESTS, use_case="triage", since=date(2026, 11, 30))) == []


def test_the_pages_date_fields_say_what_is_wrong_and_filter_nothing() -> None:
    assert filter_days("", "") == ({"since": None, "until": None}, "")
    assert filter_days("2026-11-28", "2026-11-30") == (
        {"since": date(2026, 11, 28), "until": date(2026, 11, 30)},
        "",
    )
    assert filter_days("yesterday", "")[0] == {}
    assert "YYYY-MM-DD" in filter_days("yesterday", "")[1]
    assert "after the second" in filter_days("2026-12-01", "2026-11-30")[1]
