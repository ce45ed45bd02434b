"""Multiclass metrics when the holdout lacks a class the model was trained on."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score, log_loss

from pipelines.modeling.baselines import evaluate_baselines
from pipelines.modeling.metrics import class_support, multiclass_score_metrics

# three classes trained; the holdout holds classes 0 and 1 only
Y_TRUE = np.array([0, 0, 0, 1, 1, 1])
PREDICTED = np.array([0, 0, 1, 1, 1, 1])


def scores_for(predicted: np.ndarray, absent_share: float = 0.0) -> np.ndarray:
    """0.8 on the predicted class, the rest split between the others, `absent_share` on 2."""
    scores = np.full((len(predicted), 3), 0.0)
    scores[np.arange(len(predicted)), predicted] = 0.8
    scores[np.arange(len(predicted)), 1 - predicted] = 0.2 - absent_share
    scores[:, 2] += absent_share
    return scores


def test_macro_f1_averages_over_the_classes_present_in_the_holdout() -> None:
    measured = multiclass_score_metrics(Y_TRUE, scores_for(PREDICTED), 3)

    present = f1_score(Y_TRUE, PREDICTED, average="macro", labels=[0, 1])
    assert measured["macro_f1"] == pytest.approx(present)
    # averaging over all three classes would add an F1 of 0 for class 2 and report 2/3 of it
    everything = f1_score(Y_TRUE, PREDICTED, average="macro", labels=[0, 1, 2], zero_division=0)
    assert everything == pytest.approx(present * 2 / 3)
    assert measured["weighted_f1"] == pytest.approx(f1_score(Y_TRUE, PREDICTED, average="weighted"))
    assert measured["accuracy"] == pytest.approx(5 / 6)


def test_log_loss_still_counts_probability_given_to_an_absent_class() -> None:
    sure = multiclass_score_metrics(Y_TRUE, scores_for(PREDICTED), 3)
    wasteful = multiclass_score_metrics(Y_TRUE, scores_for(PREDICTED, absent_share=0.1), 3)

    assert wasteful["log_loss"] > sure["log_loss"]
    assert sure["log_loss"] == pytest.approx(
        log_loss(Y_TRUE, scores_for(PREDICTED), labels=[0, 1, 2])
    )
    # the top class is unchanged, so F1 is too
    assert wasteful["macro_f1"] == sure["macro_f1"]


def test_class_support_names_the_absent_classes_and_counts_every_class() -> None:
    support = class_support(Y_TRUE, ["low", "mid", "high"])

    assert support == {
        "present": ["low", "mid"],
        "absent": ["high"],
        "support": {"low": 3, "mid": 3, "high": 0},
    }


def test_class_support_refuses_indices_outside_the_classes() -> None:
    with pytest.raises(ValueError, match=r"class indices 0\.\.1"):
        class_support(np.array([0, 1, 2]), ["low", "mid"])
    with pytest.raises(ValueError, match="drop rows whose class the model does not know"):
        class_support(np.array([-1, 0]), ["low", "mid"])


def test_baselines_average_over_the_same_present_classes_as_the_model() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(500, 2))
    y = np.digitize(x[:, 0], [-0.6, 0.6])  # 0, 1, 2
    holdout = y[400:] < 2  # the holdout keeps classes 0 and 1

    result = evaluate_baselines(
        x[:400], y[:400], x[400:][holdout], y[400:][holdout], "multiclass", 3
    )

    # the class prior always says class 1 (the commonest): F1 over classes 0 and 1 only
    holdout_y = y[400:][holdout]
    expected = f1_score(
        holdout_y, np.ones_like(holdout_y), average="macro", labels=[0, 1], zero_division=0
    )
    assert result["class_prior"]["macro_f1"] == pytest.approx(expected)
    assert result["logistic_regression"]["macro_f1"] > result["class_prior"]["macro_f1"]
