"""The promotion gate's decisions and the audit log's chain, without a registry behind them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import UseCase
from pipelines.paths import StateDir
from pipelines.registry.promotion import (
    AuditLogError,
    RegistryError,
    append_event,
    audit_path,
    champion_at,
    judge,
    parse_moment,
    read_events,
)


def use_case(**promotion: Any) -> UseCase:
    return UseCase.model_validate(
        {
            "dataset": "cases",
            "id_column": "id",
            "target": "y",
            "task": "binary",
            "positive_class": 1,
            "features": {"numeric": ["x"]},
            "split": {"method": "random"},
            "decision": {"kind": "threshold", "threshold": 0.5},
            "promotion": promotion,
        }
    )


def test_a_better_challenger_is_promoted() -> None:
    result = judge(use_case(), {"roc_auc": 0.86}, {"roc_auc": 0.84}, "1")

    assert result.decision == "promote" and result.passed
    assert "0.8600 beats the champion's 0.8400" in result.reason


def test_a_worse_challenger_is_held_with_the_reason() -> None:
    result = judge(use_case(), {"roc_auc": 0.80}, {"roc_auc": 0.84}, "1")

    assert result.decision == "hold" and not result.passed
    assert "does not beat the champion's 0.8400" in result.reason
    assert "difference -0.0400" in result.reason


def test_a_tie_is_not_a_win() -> None:
    result = judge(use_case(), {"roc_auc": 0.84}, {"roc_auc": 0.84}, "1")

    assert result.decision == "hold"
    assert "difference +0.0000" in result.reason


def test_the_margin_must_be_exceeded() -> None:
    params = use_case(min_improvement=0.01)

    assert judge(params, {"roc_auc": 0.845}, {"roc_auc": 0.84}).decision == "hold"
    assert judge(params, {"roc_auc": 0.851}, {"roc_auc": 0.84}).decision == "promote"


def test_a_failed_floor_holds_even_a_better_challenger() -> None:
    params = use_case(floors={"pr_auc": 0.5, "brier": 0.1})

    result = judge(params, {"roc_auc": 0.9, "pr_auc": 0.45, "brier": 0.05}, {"roc_auc": 0.8}, "1")

    assert result.decision == "hold"
    assert "pr_auc 0.4500 is below its floor (at least 0.5)" in result.reason
    assert "brier" not in result.reason  # 0.05 is under its maximum of 0.1


def test_a_loss_floor_is_a_maximum() -> None:
    params = use_case(floors={"log_loss": 0.3})

    result = judge(params, {"roc_auc": 0.9, "log_loss": 0.35}, None)

    assert result.decision == "hold"
    assert "log_loss 0.3500 is above its floor (at most 0.3)" in result.reason


def test_a_failed_slice_limit_holds_even_a_better_challenger() -> None:
    slices = (False, "slice disparity too large for company_size_band")

    result = judge(use_case(), {"roc_auc": 0.9}, {"roc_auc": 0.8}, "1", slices=slices)

    assert result.decision == "hold" and "company_size_band" in result.reason


def test_a_lower_is_better_primary_metric_wins_by_going_down() -> None:
    params = use_case(primary_metric="log_loss")

    assert judge(params, {"log_loss": 0.20}, {"log_loss": 0.25}).decision == "promote"
    assert judge(params, {"log_loss": 0.30}, {"log_loss": 0.25}).decision == "hold"


def test_without_a_champion_the_first_version_is_promoted_or_awaits_approval() -> None:
    assert judge(use_case(), {"roc_auc": 0.7}, None).decision == "promote"

    waiting = judge(use_case(require_approval=True), {"roc_auc": 0.7}, None)

    assert waiting.decision == "await-approval" and "awaiting approval" in waiting.reason


def test_a_missing_primary_metric_never_passes() -> None:
    result = judge(use_case(), {"roc_auc": float("nan")}, None)

    assert result.decision == "hold" and "has no roc_auc" in result.reason


def test_the_gate_result_is_json() -> None:
    result = judge(use_case(floors={"pr_auc": 0.1}), {"roc_auc": 0.9, "pr_auc": 0.5}, None)

    document = json.loads(json.dumps(result.as_dict()))

    assert document["decision"] == "promote" and document["passed"] is True
    assert [check["name"] for check in document["checks"]] == ["beats-champion", "floor:pr_auc"]


def baselines(metric: str, prior: float, regression: float) -> dict[str, dict[str, float]]:
    return {"class_prior": {metric: prior}, "logistic_regression": {metric: regression}}


def test_a_challenger_that_does_not_beat_the_best_baseline_is_held() -> None:
    result = judge(use_case(), {"roc_auc": 0.80}, None, baselines=baselines("roc_auc", 0.5, 0.82))

    assert result.decision == "hold" and not result.passed
    assert result.reason == (
        "roc_auc 0.8000 does not beat the best baseline, logistic_regression 0.8200 "
        "(difference -0.0200)"
    )


def test_a_challenger_that_beats_every_baseline_and_the_champion_is_promoted() -> None:
    result = judge(
        use_case(),
        {"roc_auc": 0.86},
        {"roc_auc": 0.84},
        "1",
        baselines=baselines("roc_auc", 0.5, 0.82),
    )

    assert result.decision == "promote" and result.passed
    assert "beats the best baseline, logistic_regression 0.8200 (difference +0.0400)" in (
        result.reason
    )


def test_a_tie_with_a_baseline_is_not_a_win() -> None:
    result = judge(use_case(), {"roc_auc": 0.82}, None, baselines=baselines("roc_auc", 0.5, 0.82))

    assert result.decision == "hold" and "difference +0.0000" in result.reason


def test_the_best_baseline_of_a_loss_is_the_lowest() -> None:
    params = use_case(primary_metric="log_loss")
    losses = baselines("log_loss", 0.30, 0.25)

    held = judge(params, {"log_loss": 0.27}, None, baselines=losses)
    promoted = judge(params, {"log_loss": 0.24}, None, baselines=losses)

    assert held.decision == "hold"
    assert "log_loss 0.2700 does not beat the best baseline, logistic_regression 0.2500" in (
        held.reason
    )
    assert promoted.decision == "promote"


def test_with_must_beat_baselines_off_the_shortfall_is_reported_but_does_not_hold() -> None:
    params = use_case(must_beat_baselines=False)

    result = judge(params, {"roc_auc": 0.80}, None, baselines=baselines("roc_auc", 0.5, 0.82))

    assert result.decision == "promote" and result.passed
    check = next(c for c in result.checks if c.name == "beats-baselines")
    assert not check.passed and not check.enforced
    assert "does not beat the best baseline" in result.reason
    assert "reported only, as promotion.must_beat_baselines is false" in result.reason
    document = json.loads(json.dumps(result.as_dict()))
    assert document["checks"][1] == {
        "name": "beats-baselines",
        "passed": False,
        "detail": check.detail,
        "enforced": False,
    }


def test_baselines_without_the_primary_metric_are_not_compared() -> None:
    result = judge(use_case(), {"roc_auc": 0.7}, None, baselines=baselines("pr_auc", 0.1, 0.3))

    assert result.decision == "promote"
    assert "no baseline has roc_auc; not compared" in result.reason


def test_a_challenger_without_the_metric_fails_the_baseline_check_too() -> None:
    result = judge(
        use_case(), {"roc_auc": float("nan")}, None, baselines=baselines("roc_auc", 0.5, 0.8)
    )

    assert result.decision == "hold"
    assert [c.name for c in result.checks if not c.passed] == ["beats-champion", "beats-baselines"]


# --- the audit log ---------------------------------------------------------------------------


def event(action: str, to_version: str | None, time: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "model": "a.b",
        "action": action,
        "alias": "champion",
        "from_version": None,
        "to_version": to_version,
        "by": "test",
        "reason": "why",
        "time": time.isoformat(),
        **extra,
    }


def test_events_chain_and_read_back_in_order(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(3):
        append_event(state, event("promote", str(index + 1), start + timedelta(days=index)))
    append_event(state, {**event("promote", "9", start), "model": "other.model"})

    events = read_events(state, "a.b")

    assert [e["to_version"] for e in events] == ["1", "2", "3"]
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[1]["prev_sha256"] == events[0]["sha256"]


@pytest.mark.parametrize("edit", ["change", "delete"])
def test_an_edited_or_deleted_line_breaks_the_chain(tmp_path: Path, edit: str) -> None:
    state = StateDir(tmp_path)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for index in range(3):
        append_event(state, event("promote", str(index + 1), start + timedelta(days=index)))
    lines = audit_path(state).read_text().splitlines()
    if edit == "change":
        lines[1] = lines[1].replace('"to_version": "2"', '"to_version": "7"')
    else:
        del lines[1]
    audit_path(state).write_text("\n".join(lines) + "\n")

    with pytest.raises(AuditLogError, match="line 2: the event does not match its hash chain"):
        read_events(state)


def test_champion_at_a_moment_before_between_and_after_promotions() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    events = [
        event("register", "1", start, alias="challenger"),
        event("promote", "1", start + timedelta(hours=1)),
        event("promote", "2", start + timedelta(days=2)),
        event("rollback", "1", start + timedelta(days=5)),
    ]

    assert champion_at(events, start) is None
    assert champion_at(events, start + timedelta(days=1)) == "1"
    assert champion_at(events, start + timedelta(days=3)) == "2"
    assert champion_at(events, start + timedelta(days=9)) == "1"


def test_moments_are_iso_and_utc_unless_they_say_otherwise() -> None:
    assert parse_moment("2026-03-02") == datetime(2026, 3, 2, tzinfo=UTC)
    assert parse_moment("2026-03-02T10:00:00+01:00").utcoffset() == timedelta(hours=1)
    with pytest.raises(RegistryError, match="not a date or time; use ISO 8601"):
        parse_moment("last tuesday")
