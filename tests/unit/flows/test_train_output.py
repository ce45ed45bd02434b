"""What `agencyml train` prints of the holdout: counts as counts, and a small holdout flagged."""

from __future__ import annotations

from rich.console import Console

from flows.cli.models import metrics_table, small_holdout_note
from pipelines.registry.model_card import SMALL_HOLDOUT_ROWS


def shown(renderable: object) -> str:
    console = Console(width=100, record=True)
    console.print(renderable)
    return console.export_text()


def test_the_holdout_row_count_is_a_whole_number_and_scores_keep_four_decimals() -> None:
    text = shown(metrics_table("Holdout metrics", {"roc_auc": 0.91234, "holdout_rows": 1234.0}))

    assert "1,234" in text and "1234.0000" not in text
    assert "0.9123" in text


def test_a_holdout_under_the_model_cards_limit_is_flagged_with_its_size() -> None:
    note = small_holdout_note({"roc_auc": 1.0, "holdout_rows": 85.0})

    assert note is not None
    assert f"Small holdout (85 rows, under {SMALL_HOLDOUT_ROWS:,})" in shown(note)
    assert small_holdout_note({"holdout_rows": float(SMALL_HOLDOUT_ROWS)}) is None
    assert small_holdout_note({"roc_auc": 0.9}) is None  # no count recorded: nothing claimed
