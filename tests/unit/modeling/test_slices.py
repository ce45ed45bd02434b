"""Slice metrics and recall disparity on constructed groups with known recall."""

from __future__ import annotations

import json
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from pipelines.modeling.slices import SliceReport, plot_slices, slice_report


def two_groups(
    caught_a: int = 40, caught_b: int = 20
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """Groups a and b of 100 rows, 50 positives each; the policy flags `caught_*` positives
    and 10 negatives per group, so recall is caught/50."""
    frames, truths, flags = [], [], []
    for group, caught in (("a", caught_a), ("b", caught_b)):
        truths.append(np.repeat([1, 0], 50))
        flags.append(np.r_[np.arange(50) < caught, np.arange(50) < 10])
        frames.append(pd.DataFrame({"region": [group] * 100}))
    y_true, flagged = np.concatenate(truths), np.concatenate(flags)
    scores = np.where(flagged, 0.8, 0.2)
    return pd.concat(frames, ignore_index=True), y_true, scores, flagged


def report_of(limit: float | None, **groups: int) -> SliceReport:
    frame, y_true, scores, flagged = two_groups(**groups)
    return slice_report(frame, ["region"], y_true, scores, flagged, "binary", 30, limit)


def test_half_the_recall_in_one_group_is_a_ratio_of_two() -> None:
    report = report_of(None)

    assert report.disparity == {"region": pytest.approx(2.0)}
    by_value = {row["value"]: row for row in report.rows}
    assert by_value["a"]["recall"] == pytest.approx(0.8)
    assert by_value["b"]["recall"] == pytest.approx(0.4)
    assert by_value["a"]["precision"] == pytest.approx(40 / 50)
    assert by_value["b"]["precision"] == pytest.approx(20 / 30)
    assert by_value["a"]["flagged_rate"] == pytest.approx(0.5)
    assert by_value["a"]["positive_rate"] == 0.5
    assert by_value["a"]["rows"] == 100
    assert report.passed  # no limit, nothing to fail


def test_a_ratio_above_the_limit_flags_the_column_and_below_it_passes() -> None:
    strict, lenient = report_of(1.5), report_of(2.5)

    assert strict.flagged_columns == ["region"]
    assert not strict.passed
    assert lenient.flagged_columns == []
    assert lenient.passed


def test_slice_roc_auc_is_measured_within_each_group() -> None:
    report = report_of(None)

    # scores are the flags: group a ranks 40 of 50 positives above 40 of 50 negatives
    a = next(row for row in report.rows if row["value"] == "a")
    assert a["roc_auc"] == pytest.approx(0.5 + 0.5 * (0.8 - 0.2))


def test_small_groups_are_pooled_as_other_and_missing_values_are_a_slice() -> None:
    frame, y_true, scores, flagged = two_groups()
    values = np.array(["a"] * 100 + ["b"] * 60 + ["c"] * 20 + [None] * 20, dtype=object)
    frame = pd.DataFrame({"region": values, "size": np.repeat([1.0, 2.0, np.nan, 4.0], 50)})

    report = slice_report(frame, ["region", "size"], y_true, scores, flagged, "binary", 30)

    region = [(row["value"], row["rows"]) for row in report.rows if row["column"] == "region"]
    assert region == [("a", 100), ("b", 60), ("(other)", 40)]
    size = [(row["value"], row["rows"]) for row in report.rows if row["column"] == "size"]
    assert size == [("(missing)", 50), ("1", 50), ("2", 50), ("4", 50)]


def test_the_other_group_smaller_than_min_rows_is_reported_but_not_compared() -> None:
    frame, y_true, scores, flagged = two_groups()
    frame["region"] = ["a"] * 100 + ["b"] * 90 + ["c"] * 10

    report = slice_report(frame, ["region"], y_true, scores, flagged, "binary", 30)

    other = report.rows[-1]
    assert (other["value"], other["rows"], other["in_disparity"]) == ("(other)", 10, False)
    assert all(row["in_disparity"] for row in report.rows[:-1])


def test_a_group_whose_positives_are_all_missed_is_infinite_and_flagged() -> None:
    report = report_of(100.0, caught_b=0)

    assert report.disparity["region"] == math.inf
    assert report.flagged_columns == ["region"]
    stored = report.as_dict()
    assert stored["disparity"] == {"region": None}
    assert stored["notes"]["region"] == "recall 0 in group b: ratio undefined, not within limits"
    json.dumps(stored, allow_nan=False)


def test_a_column_with_one_comparable_slice_has_no_disparity() -> None:
    frame, y_true, scores, flagged = two_groups()
    frame["region"] = "everywhere"

    report = slice_report(frame, ["region"], y_true, scores, flagged, "binary", 30, 1.5)

    assert report.disparity == {}
    assert report.unmeasured_columns == ["region"]
    assert report.passed


def test_flat_metrics_have_sanitised_mlflow_names() -> None:
    frame, y_true, scores, flagged = two_groups()
    frame["region"] = ["North East"] * 100 + [None] * 100

    metrics = slice_report(frame, ["region"], y_true, scores, flagged, "binary", 30).metrics()

    assert metrics["slice.region.North_East.recall"] == pytest.approx(0.8)
    assert metrics["slice.region._missing_.recall"] == pytest.approx(0.4)
    assert metrics["slice.region._missing_.rows"] == 100.0
    assert metrics["disparity.region.recall_ratio"] == pytest.approx(2.0)
    assert all(isinstance(value, float) for value in metrics.values())


def test_multiclass_slices_measure_accuracy_and_macro_recall() -> None:
    # group a: all right; group b: class 0 right, class 1 always called 2
    y_true = np.array([0, 1] * 20 + [0, 1] * 20)
    predicted = np.r_[y_true[:40], np.where(y_true[40:] == 1, 2, 0)]
    scores = np.eye(3)[predicted] * 0.9 + 0.1 / 3
    frame = pd.DataFrame({"team": ["a"] * 40 + ["b"] * 40})

    report = slice_report(frame, ["team"], y_true, scores, None, "multiclass", 30, 1.5)

    by_value = {row["value"]: row for row in report.rows}
    assert by_value["a"]["accuracy"] == 1.0
    assert by_value["b"]["macro_recall"] == pytest.approx(0.5)
    assert report.recall_metric == "macro_recall"
    assert report.disparity["team"] == pytest.approx(2.0)
    assert report.flagged_columns == ["team"]


def test_rows_that_do_not_line_up_are_refused() -> None:
    frame, y_true, scores, flagged = two_groups()

    with pytest.raises(ValueError, match="one entry per row"):
        slice_report(frame.head(10), ["region"], y_true, scores, flagged, "binary")
    with pytest.raises(ValueError, match=r"lacks the slice columns \['county'\]"):
        slice_report(frame, ["county"], y_true, scores, flagged, "binary")


def test_the_slice_plot_has_one_bar_per_slice() -> None:
    frame, y_true, scores, flagged = two_groups()
    frame["size"] = ["s"] * 150 + ["l"] * 50  # the last 50 rows: negatives only
    report = slice_report(frame, ["region", "size"], y_true, scores, flagged, "binary", 30)

    figure = plot_slices(report)
    try:
        axes = figure.axes[0]
        labels = [tick.get_text() for tick in axes.get_yticklabels()]
        assert labels == [
            "region = a (n=100)",
            "region = b (n=100)",
            "size = s (n=150)",
            "size = l (n=50)",
        ]
        assert list(axes.get_yticks()) == [3, 2, 1, 0]  # the first slice on top
        widths = [round(patch.get_width(), 3) for patch in axes.patches]
        assert widths == [0.8, 0.4, round(60 / 100, 3), 0.0]
        assert [text.get_text() for text in axes.texts] == ["n/a"]  # recall without positives
    finally:
        plt.close(figure)


def test_an_undefined_ratio_is_flagged_even_without_a_limit() -> None:
    report = report_of(None, caught_b=0)

    assert report.disparity["region"] == math.inf
    assert report.flagged_columns == ["region"] and not report.passed
    assert report.undefined_columns == ["region"]
    assert [row["status"] for row in report.rows] == ["judged", "recall 0"]
    # no number would be true, so MLflow gets none; the report says why
    assert "disparity.region.recall_ratio" not in report.metrics()
    assert report.metrics()["slice.region.b.recall"] == 0.0


def test_recall_zero_in_every_group_is_undefined_not_equal() -> None:
    report = report_of(None, caught_a=0, caught_b=0)

    assert math.isnan(report.disparity["region"])
    assert report.flagged_columns == ["region"]
    stored = report.as_dict()
    assert stored["disparity"] == {"region": None}
    assert stored["notes"]["region"] == (
        "recall 0 in every group: ratio undefined, not within limits"
    )
    json.dumps(stored, allow_nan=False)


def test_a_group_with_too_few_positives_is_reported_and_left_out_of_the_ratio() -> None:
    frame, y_true, _, flagged = two_groups(caught_a=40, caught_b=20)
    # group c: 40 more rows holding 4 positives, none of them caught
    frame = pd.concat([frame, pd.DataFrame({"region": ["c"] * 40})], ignore_index=True)
    y_true = np.r_[y_true, np.ones(4), np.zeros(36)].astype(int)
    flagged = np.r_[flagged, np.zeros(40, dtype=bool)]
    scores = np.where(flagged, 0.8, 0.2)

    report = slice_report(frame, ["region"], y_true, scores, flagged, "binary", 30, 3.0)

    by_value = {row["value"]: row for row in report.rows}
    assert by_value["c"]["positives"] == 4 and by_value["c"]["recall"] == 0.0
    assert by_value["c"]["status"] == "too few positives"
    assert by_value["c"]["in_disparity"] is False
    # a and b are compared; c's recall of 0 on 4 cases does not make the ratio infinite
    assert report.disparity["region"] == pytest.approx(0.8 / 0.4)
    assert report.passed


def test_min_positives_below_one_is_refused() -> None:
    frame, y_true, scores, flagged = two_groups()

    with pytest.raises(ValueError, match="min_positives must be at least 1"):
        slice_report(frame, ["region"], y_true, scores, flagged, "binary", 30, None, 0)


def test_the_slice_plot_calls_an_undefined_ratio_undefined() -> None:
    figure = plot_slices(report_of(None, caught_b=0))
    try:
        assert "region undefined" in figure.axes[0].get_title()
    finally:
        plt.close(figure)


def test_any_label_becomes_a_metric_name_part_mlflow_accepts_and_stays_distinct() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.validation import _validate_metric_name

    from pipelines.modeling.slices import metric_parts

    labels = ["Employee Stock Ownership Plan(ESOP)", "Corp.", "a/b", "a?b", "fast", "Ærø"]
    parts = metric_parts(labels)
    assert parts["fast"] == "fast" and parts["Corp."] == "Corp."
    assert parts["Employee Stock Ownership Plan(ESOP)"] == "Employee_Stock_Ownership_Plan_ESOP_"
    assert (parts["a/b"], parts["a?b"]) == ("a_b", "a_b_2")
    assert len(set(parts.values())) == len(labels)
    with pytest.raises(MlflowException):
        _validate_metric_name("precision_Employee Stock Ownership Plan(ESOP)")
    for part in parts.values():
        _validate_metric_name(f"precision_{part}")
