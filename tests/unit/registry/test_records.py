"""What a training run hands the promotion gate about its slices."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.modeling.evaluation import Evaluation
from pipelines.modeling.slices import slice_report
from pipelines.registry.records import evaluation_slices


def evaluation_with_slices(caught: dict[str, int], limit: float | None) -> Evaluation:
    """One slice column, region; each group has 100 rows and 50 positives, `caught` of them
    flagged by the policy."""
    regions, truths, flags = [], [], []
    for region, count in caught.items():
        regions += [region] * 100
        truths.append(np.repeat([1, 0], 50))
        flags.append(np.r_[np.arange(50) < count, np.zeros(50, dtype=bool)])
    y_true, flagged = np.concatenate(truths), np.concatenate(flags)
    report = slice_report(
        pd.DataFrame({"region": regions}),
        ["region"],
        y_true,
        np.where(flagged, 0.9, 0.1),
        flagged,
        "binary",
        30,
        limit,
    )
    return Evaluation(metrics={}, slices=report)


def test_slices_within_the_limit_pass_the_gate() -> None:
    assert evaluation_slices(evaluation_with_slices({"a": 40, "b": 30}, 2.0)) == (
        True,
        "slice disparity within limits",
    )


def test_a_ratio_above_the_limit_holds_with_the_column() -> None:
    assert evaluation_slices(evaluation_with_slices({"a": 40, "b": 10}, 2.0)) == (
        False,
        "slice disparity too large for region",
    )


def test_a_group_with_recall_zero_holds_even_without_a_limit() -> None:
    passed, detail = evaluation_slices(evaluation_with_slices({"a": 40, "b": 0}, None))

    assert not passed
    assert detail == "region: recall 0 in group b: ratio undefined, not within limits"


def test_without_slices_there_is_nothing_to_check() -> None:
    assert evaluation_slices(Evaluation(metrics={})) is None
