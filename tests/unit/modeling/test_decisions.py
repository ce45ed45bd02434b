"""Decision policies: thresholds, top-k capacity and confident multiclass routing."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.config import CapacityPolicy, TargetPrecisionPolicy, ThresholdPolicy
from pipelines.modeling.decisions import apply_policy, binary_flags, resolve_policy

BINARY = ["not-serious", "serious"]
TRACKS = ["fast", "standard", "deep"]


def test_threshold_policy_flags_scores_at_or_above_the_threshold() -> None:
    policy = ThresholdPolicy(threshold=0.5, flag_label="inspect", pass_label="release")

    decisions = apply_policy(np.array([0.2, 0.5, 0.49999, 0.9]), policy, "binary", BINARY)

    np.testing.assert_array_equal(decisions.flagged, [False, True, False, True])
    assert decisions.predicted_label.tolist() == [
        "not-serious",
        "serious",
        "not-serious",
        "serious",
    ]
    assert decisions.decision.tolist() == ["release", "inspect", "release", "inspect"]


@pytest.mark.parametrize(
    ("threshold", "flagged"),
    [(0.0, [True, True, True]), (1.0, [False, False, True]), (0.3, [False, True, True])],
)
def test_threshold_extremes(threshold: float, flagged: list[bool]) -> None:
    scores = np.array([0.0, 0.3, 1.0])

    np.testing.assert_array_equal(
        binary_flags(scores, ThresholdPolicy(threshold=threshold)), flagged
    )


@pytest.mark.parametrize(
    ("scores", "top_k", "flagged"),
    [
        ([0.1, 0.9, 0.4, 0.7], 2, [False, True, False, True]),
        # ties go to the earlier row
        ([0.5, 0.5, 0.5, 0.5], 2, [True, True, False, False]),
        ([0.2, 0.8, 0.8, 0.8], 2, [False, True, True, False]),
        # a team with more capacity than rows checks every row
        ([0.3, 0.1], 5, [True, True]),
        ([0.3, 0.1], 2, [True, True]),
        ([], 3, []),
    ],
    ids=["top-two", "all-tied", "tie-at-the-cut", "k-above-batch", "k-equals-batch", "empty"],
)
def test_capacity_policy_flags_the_top_k_rows(
    scores: list[float], top_k: int, flagged: list[bool]
) -> None:
    policy = CapacityPolicy(top_k=top_k, flag_label="fraud-check", pass_label="pay-out")

    decisions = apply_policy(np.array(scores, dtype=float), policy, "binary", ["not-1", "1"])

    np.testing.assert_array_equal(decisions.flagged, flagged)
    assert decisions.decision.tolist() == ["fraud-check" if f else "pay-out" for f in flagged]
    assert decisions.predicted_label.tolist() == ["1" if f else "not-1" for f in flagged]


def test_capacity_policy_is_the_same_on_a_rerun() -> None:
    scores = np.random.default_rng(0).choice([0.1, 0.5, 0.9], size=200)
    policy = CapacityPolicy(top_k=30)

    first = binary_flags(scores, policy)

    np.testing.assert_array_equal(first, binary_flags(scores.copy(), policy))
    assert first.sum() == 30
    # every flagged row scores at least as high as every row left out
    assert scores[first].min() >= scores[~first].max()


def test_multiclass_routes_confident_rows_to_the_top_class_and_others_to_fallback() -> None:
    scores = np.array(
        [
            [0.7, 0.2, 0.1],  # confident fast
            [0.1, 0.3, 0.6],  # exactly at the threshold: deep
            [0.4, 0.35, 0.25],  # unsure
        ]
    )
    policy = ThresholdPolicy(threshold=0.6, fallback_label="manual_review")

    decisions = apply_policy(scores, policy, "multiclass", TRACKS)

    assert decisions.predicted_label.tolist() == ["fast", "deep", "fast"]
    assert decisions.decision.tolist() == ["fast", "deep", "manual_review"]
    np.testing.assert_array_equal(decisions.flagged, [True, True, False])


def test_multiclass_with_a_capacity_policy_raises_value_error() -> None:
    scores = np.array([[0.5, 0.3, 0.2]])

    with pytest.raises(ValueError, match="multiclass use cases take a threshold policy"):
        apply_policy(scores, CapacityPolicy(top_k=1), "multiclass", TRACKS)


# --- target precision -----------------------------------------------------------------------


def test_target_precision_takes_the_lowest_threshold_that_reaches_the_precision() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    truth = np.array([1, 1, 0, 1, 0, 0])
    policy = TargetPrecisionPolicy(precision=0.75)

    resolved, facts = resolve_policy(policy, truth, scores)

    # flagging down to 0.6 gives 3 of 4 right (0.75); down to 0.5 only 3 of 5
    assert resolved.threshold == 0.6 and facts["policy_target_met"] == 1.0
    assert facts["policy_validation_precision"] == 0.75
    flagged = apply_policy(scores, resolved, "binary", ["no", "yes"]).flagged
    assert flagged.tolist() == [True, True, True, True, False, False]


def test_an_unreachable_precision_takes_the_most_precise_threshold_and_says_so() -> None:
    scores = np.array([0.9, 0.8, 0.7])
    truth = np.array([0, 1, 0])

    resolved, facts = resolve_policy(TargetPrecisionPolicy(precision=0.9), truth, scores)

    assert facts["policy_target_met"] == 0.0
    assert resolved.threshold == 0.8 and facts["policy_validation_precision"] == 0.5


def test_tied_scores_are_never_split_by_a_threshold() -> None:
    scores = np.array([0.9, 0.5, 0.5, 0.5])
    truth = np.array([1, 1, 0, 0])

    resolved, _ = resolve_policy(TargetPrecisionPolicy(precision=0.6), truth, scores)

    # 0.9 alone is 1/1; the tie at 0.5 as a whole is 2/4 < 0.6
    assert resolved.threshold == 0.9


def test_an_unresolved_target_precision_policy_cannot_decide() -> None:
    with pytest.raises(ValueError, match="threshold training resolves"):
        apply_policy(np.array([0.5]), TargetPrecisionPolicy(precision=0.8), "binary", ["n", "y"])


def test_other_policies_pass_through_resolution_unchanged() -> None:
    policy = ThresholdPolicy(threshold=0.3)
    assert resolve_policy(policy, np.array([1, 0]), np.array([0.2, 0.4])) == (policy, {})
