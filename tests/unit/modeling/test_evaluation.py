"""Holdout metrics and figures for small fitted binary and multiclass models."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import lightgbm as lgb
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.figure import Figure
from sklearn.metrics import classification_report, f1_score

from pipelines.config import ParamsError, UseCase
from pipelines.data.columns import FeatureError
from pipelines.modeling.evaluation import (
    SHAP_ROWS,
    Evaluation,
    baselines_for,
    evaluate,
    per_class_report,
    plot_confusion,
    plot_reliability,
    plot_roc,
    plot_shap_summary,
    shap_importance,
    shap_values,
)
from pipelines.modeling.metrics import binary_score_metrics, multiclass_score_metrics
from pipelines.modeling.model import ModelBundle
from pipelines.modeling.training import DataSplit, encode_target, fit_model, split_data

BINARY_METRICS = {
    "holdout_rows",
    "holdout_positive_rate",
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "precision_at_policy",
    "recall_at_policy",
    "f1_at_policy",
    "flagged_rate",
}
MULTICLASS_METRICS = {
    "holdout_rows",
    "accuracy",
    "macro_f1",
    "weighted_f1",
    "log_loss",
    "f1_high",
    "f1_low",
    "f1_mid",
}


def use_case(task: str) -> UseCase:
    declared: dict[str, Any] = {
        "dataset": "cases",
        "id_column": "id",
        "target": "y",
        "task": task,
        "features": {"numeric": ["x1", "x2"], "categorical": ["colour"], "min_category_count": 2},
        "lightgbm": {
            "num_iterations": 30,
            "learning_rate": 0.2,
            "num_leaves": 7,
            "min_data_in_leaf": 5,
            "early_stopping_round": 10,
            "num_threads": 1,
        },
        "split": {"method": "random", "seed": 3},
        "decision": {"kind": "threshold", "threshold": 0.5},
        "min_training_rows": 10,
    }
    if task == "binary":
        declared["positive_class"] = 1
    return UseCase.model_validate(declared)


def synthetic(n: int, task: str) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    signal = 2.0 * x1 + (colour == "red") + rng.normal(scale=0.3, size=n)
    if task == "binary":
        y: np.ndarray = (signal > 0.5).astype(int)
    else:
        y = np.select([signal < -0.7, signal < 1.2], ["low", "mid"], "high")
    return pd.DataFrame(
        {"id": np.arange(n), "x1": x1, "x2": rng.normal(size=n), "colour": colour, "y": y}
    )


def fitted(task: str, rows: int) -> tuple[ModelBundle, DataSplit, UseCase]:
    params = use_case(task)
    split = split_data(synthetic(rows, task), params)
    return fit_model(split, params).bundle, split, params


@pytest.fixture(scope="module")
def binary() -> tuple[ModelBundle, DataSplit, UseCase]:
    return fitted("binary", 400)


@pytest.fixture(scope="module")
def multiclass() -> tuple[ModelBundle, DataSplit, UseCase]:
    return fitted("multiclass", 450)


@pytest.fixture
def closing() -> Iterator[list[Evaluation]]:
    """Evaluations made by a test; their figures are closed afterwards."""
    made: list[Evaluation] = []
    yield made
    for evaluation in made:
        for figure in evaluation.figures.values():
            plt.close(figure)


def assert_png_figures(figures: dict[str, Figure], names: set[str]) -> None:
    assert set(figures) == names
    for figure in figures.values():
        assert isinstance(figure, Figure)
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
        assert buffer.getvalue().startswith(b"\x89PNG\r\n\x1a\n")


def test_binary_evaluation_reports_the_documented_metrics_and_figures(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    holdout = split.holdout

    result = evaluate(bundle, holdout, params)
    closing.append(result)

    metrics = result.metrics
    assert set(metrics) == BINARY_METRICS
    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["holdout_rows"] == len(holdout)
    assert metrics["holdout_positive_rate"] == pytest.approx(holdout["y"].mean())
    scores = bundle.predict_proba(holdout)
    assert metrics["flagged_rate"] == pytest.approx((scores >= 0.5).mean())
    for name in ("roc_auc", "pr_auc", "brier", "precision_at_policy", "recall_at_policy"):
        assert 0.0 <= metrics[name] <= 1.0, name
    assert metrics["roc_auc"] > 0.9  # the label follows x1 closely
    assert metrics["log_loss"] > 0
    assert_png_figures(
        result.figures,
        {
            "roc_curve.png",
            "pr_curve.png",
            "confusion_matrix.png",
            "feature_importance.png",
            "reliability.png",
            "shap_summary.png",
        },
    )
    assert result.details["calibration"]["method"] is None  # not calibrated: "before" only
    assert 0 <= result.details["calibration"]["before"]["ece"] < 1
    assert result.slices is None  # no slices declared


def test_multiclass_evaluation_reports_per_class_f1_and_figures(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass

    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    metrics = result.metrics
    per_class = {f"{kind}_{c}" for kind in ("precision", "recall") for c in bundle.classes}
    assert set(metrics) == MULTICLASS_METRICS | per_class
    assert set(result.details["per_class"]) == set(bundle.classes)
    assert metrics["holdout_rows"] == len(split.holdout)
    for name in MULTICLASS_METRICS - {"holdout_rows", "log_loss"}:
        assert 0.0 <= metrics[name] <= 1.0, name
    predicted = np.asarray(bundle.classes)[bundle.predict_proba(split.holdout).argmax(axis=1)]
    assert metrics["accuracy"] == pytest.approx((predicted == split.holdout["y"]).mean())
    assert metrics["accuracy"] > 0.6
    assert_png_figures(
        result.figures,
        {"confusion_matrix.png", "feature_importance.png", "reliability.png", "shap_summary.png"},
    )


def test_holdout_rows_with_a_class_the_model_never_saw_are_left_out(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass
    stranger = split.holdout.head(1).assign(y="unheard-of")
    holdout = pd.concat([split.holdout, stranger], ignore_index=True)

    result = evaluate(bundle, holdout, params)
    closing.append(result)

    assert result.metrics["holdout_rows"] == len(split.holdout)


def test_a_class_absent_from_the_holdout_is_named_and_left_out_of_macro_f1(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass
    without_high = split.holdout[split.holdout["y"] != "high"].reset_index(drop=True)

    result = evaluate(bundle, without_high, params)
    closing.append(result)

    classes = result.details["classes"]
    assert classes["absent"] == ["high"] and "high" not in classes["present"]
    assert classes["support"]["high"] == 0
    assert sum(classes["support"].values()) == len(without_high)
    y_true = encode_target(without_high["y"], params, bundle.classes)
    predicted = bundle.predict_proba(without_high).argmax(axis=1)
    present = sorted(set(y_true.tolist()))
    assert result.metrics["macro_f1"] == pytest.approx(
        f1_score(y_true, predicted, average="macro", labels=present, zero_division=0)
    )
    # no rows, no F1, precision or recall for the absent class; the present ones keep theirs
    assert not {"f1_high", "precision_high", "recall_high"} & set(result.metrics)
    assert {"f1_low", "recall_low", "f1_mid", "recall_mid"} <= set(result.metrics)
    assert result.details["per_class"]["high"]["support"] == 0.0


def test_a_holdout_with_every_class_names_none_absent(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass

    result = evaluate(bundle, split.holdout, params, detailed=False)
    closing.append(result)

    assert result.details["classes"]["absent"] == []
    assert result.details["classes"]["present"] == bundle.classes


@pytest.mark.filterwarnings("ignore:No positive class found in y_true")
def test_a_single_class_binary_holdout_has_no_roc_auc(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    negatives = split.holdout[split.holdout["y"] == 0]

    result = evaluate(bundle, negatives, params)
    closing.append(result)

    assert np.isnan(result.metrics["roc_auc"])
    assert result.metrics["holdout_positive_rate"] == 0.0
    assert result.metrics["recall_at_policy"] == 0.0


def test_evaluating_a_holdout_without_a_feature_column_raises_feature_error(
    binary: tuple[ModelBundle, DataSplit, UseCase],
) -> None:
    bundle, split, params = binary

    with pytest.raises(FeatureError, match=r"lacks the feature columns \['x2'\]"):
        evaluate(bundle, split.holdout.drop(columns="x2"), params)


def test_evaluating_a_holdout_without_the_target_raises_key_error(
    binary: tuple[ModelBundle, DataSplit, UseCase],
) -> None:
    bundle, split, params = binary

    with pytest.raises(KeyError, match="'y'"):
        evaluate(bundle, split.holdout.drop(columns="y"), params)


def test_confusion_matrix_plot_labels_every_class() -> None:
    figure = plot_confusion(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1]), ["a", "b", "c"])
    try:
        labels = [tick.get_text() for tick in figure.axes[0].get_xticklabels()]
        assert labels == ["a", "b", "c"]
    finally:
        plt.close(figure)


def test_roc_plot_of_scores_and_labels_of_different_lengths_raises() -> None:
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        plot_roc(np.array([0, 1, 1]), np.array([0.2, 0.8]), 1.0)
    plt.close("all")


def test_binary_curves_are_plot_data_from_corner_to_corner(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    assert set(result.curves) == {"roc", "precision_recall", "confusion"}
    roc = result.curves["roc"]
    assert len(roc) <= 200
    assert (roc[0]["fpr"], roc[0]["tpr"]) == (0.0, 0.0)
    assert (roc[-1]["fpr"], roc[-1]["tpr"]) == (1.0, 1.0)
    confusion = pd.DataFrame(result.curves["confusion"])
    assert len(confusion) == len(split.holdout)
    assert set(confusion["actual"]) <= set(bundle.classes)


def test_multiclass_curves_hold_only_the_confusion_rows(
    multiclass: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = multiclass
    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    assert list(result.curves) == ["confusion"]
    predicted = {row["predicted"] for row in result.curves["confusion"]}
    assert predicted <= set(bundle.classes)


def test_the_score_metric_helpers_give_the_evaluations_numbers(
    binary: tuple[ModelBundle, DataSplit, UseCase],
    multiclass: tuple[ModelBundle, DataSplit, UseCase],
    closing: list[Evaluation],
) -> None:
    for bundle, split, params in (binary, multiclass):
        result = evaluate(bundle, split.holdout, params)
        closing.append(result)
        y_true = encode_target(split.holdout[params.target], params, bundle.classes)
        scores = bundle.predict_proba(split.holdout)

        helper = (
            binary_score_metrics(y_true, scores)
            if bundle.task == "binary"
            else multiclass_score_metrics(y_true, scores, len(bundle.classes))
        )

        assert helper == {name: result.metrics[name] for name in helper}


def test_per_class_report_matches_sklearn() -> None:
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    predicted = np.array([0, 1, 1, 1, 2, 0, 2])

    report = per_class_report(y_true, predicted, ["low", "mid", "high"])

    expected = classification_report(y_true, predicted, output_dict=True)
    assert list(report) == ["low", "mid", "high"]
    for label, code in (("low", "0"), ("mid", "1"), ("high", "2")):
        assert report[label] == {
            "precision": expected[code]["precision"],
            "recall": expected[code]["recall"],
            "f1": expected[code]["f1-score"],
            "support": expected[code]["support"],
        }
    assert report["mid"]["precision"] == pytest.approx(2 / 3)


def test_a_class_never_predicted_has_zero_precision_in_the_report() -> None:
    report = per_class_report(np.array([0, 1, 2]), np.array([0, 0, 0]), ["a", "b", "c"])

    assert report["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1.0}


def test_reliability_plot_draws_raw_and_calibrated_curves() -> None:
    rng = np.random.default_rng(12)
    p = rng.uniform(size=400)
    y = (rng.uniform(size=400) < p).astype(int)

    figure = plot_reliability(y, p**3, "Reliability, holdout", calibrated_scores=p)
    try:
        axes = figure.axes[0]
        labels = [line.get_label() for line in axes.get_lines()]
        assert labels[0] == "perfectly calibrated"
        assert labels[1].startswith("raw (ECE 0.2")  # cubed: far too low
        assert labels[2].startswith("calibrated (ECE 0.0")
        assert axes.get_title() == "Reliability, holdout"
    finally:
        plt.close(figure)


def test_reliability_plot_of_multiclass_scores_uses_top_class_confidence() -> None:
    scores = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]])

    figure = plot_reliability(np.array([0, 1, 0]), scores, "three rows")
    try:
        axes = figure.axes[0]
        assert len(axes.get_lines()) == 2
        assert "top-class confidence" in axes.get_xlabel()
    finally:
        plt.close(figure)


def small_booster(task: str, features: Any, y: np.ndarray, names: list[str]) -> lgb.Booster:
    objective: dict[str, Any] = (
        {"objective": "binary"}
        if task == "binary"
        else {"objective": "multiclass", "num_class": int(y.max()) + 1}
    )
    return lgb.train(
        {**objective, "num_leaves": 7, "min_data_in_leaf": 5, "verbosity": -1, "num_threads": 1},
        lgb.Dataset(features, y, feature_name=names),
        num_boost_round=20,
    )


def test_shap_importance_ranks_the_predictive_feature_first() -> None:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(500, 3))
    y = (x[:, 1] + 0.2 * x[:, 2] > 0).astype(int)
    booster = small_booster("binary", x, y, ["noise", "signal", "weak"])

    ranked = shap_importance(booster, x, ["noise", "signal", "weak"])

    assert [name for name, _ in ranked] == ["signal", "weak", "noise"]
    assert ranked[0][1] > 5 * ranked[1][1]


@pytest.mark.parametrize(
    ("rows", "title"), [(700, "200 of 700 rows, a seeded sample"), (150, "all 150 rows")]
)
def test_the_shap_plot_says_how_many_rows_it_explains(rows: int, title: str) -> None:
    rng = np.random.default_rng(15)
    x = rng.normal(size=(rows, 2))
    booster = small_booster("binary", x, (x[:, 0] > 0).astype(int), ["a", "b"])

    figure = plot_shap_summary(booster, x, ["a", "b"])

    assert figure.axes[1].get_title() == f"Per row ({title})"
    assert SHAP_ROWS == 200


def test_shap_values_add_up_to_the_raw_score_with_text_buckets_grouped() -> None:
    rng = np.random.default_rng(14)
    n = 600
    numbers = rng.normal(size=(n, 1))
    words = (rng.uniform(size=(n, 6)) < 0.3).astype(np.float32)
    y = np.where(words[:, 0] + words[:, 3] > 0, 2, (numbers[:, 0] > 0).astype(int))
    features = sp.hstack([sp.csr_matrix(numbers), sp.csr_matrix(words)], format="csr")
    names = ["amount", *[f"notes__hash{i}" for i in range(6)]]
    booster = small_booster("multiclass", features, y, names)

    columns, values = shap_values(booster, features, names, max_rows=250, seed=1)

    assert columns == ["amount", "notes"]
    assert values.shape == (250, 3, 2)
    # SHAP is additive: per class, contributions + expected value = the raw score. The sample
    # is seeded, so the same 250 rows can be picked again to check it.
    keep = np.sort(np.random.default_rng(1).choice(n, size=250, replace=False))
    raw = booster.predict(features[keep], raw_score=True)
    blocks = booster.predict(features[keep], pred_contrib=True)  # sparse: one per class
    expected = np.column_stack([block[:, -1].toarray().ravel() for block in blocks])
    np.testing.assert_allclose(values.sum(axis=2) + expected, raw, atol=1e-6)
    ranked = shap_importance(booster, features, names)
    assert {name for name, _ in ranked} == {"amount", "notes"}


def test_the_shap_summary_has_a_bar_and_a_strip_per_feature() -> None:
    rng = np.random.default_rng(15)
    x = rng.normal(size=(300, 25))
    y = (x[:, 4] > 0).astype(int)
    names = [f"f{i}" for i in range(25)]
    booster = small_booster("binary", x, y, names)

    figure = plot_shap_summary(booster, x, names)
    try:
        bars, strips = figure.axes
        assert len(bars.patches) == 20  # the top 20 of 25
        labels = [tick.get_text() for tick in bars.get_yticklabels()]
        assert labels[-1] == "f4"  # drawn bottom-up: the most important on top
        assert len(strips.collections) == 20
        # one dot per explained row: a sample of SHAP_ROWS of the 300
        assert strips.collections[-1].get_offsets().shape == (SHAP_ROWS, 2)
    finally:
        plt.close(figure)


def test_shap_with_feature_names_that_do_not_match_the_booster_is_refused() -> None:
    x = np.random.default_rng(16).normal(size=(60, 2))
    booster = small_booster("binary", x, (x[:, 0] > 0).astype(int), ["a", "b"])

    with pytest.raises(ValueError, match="2 features but 3 names"):
        shap_importance(booster, x, ["a", "b", "c"])


# --- calibration, target precision, slices and baselines, wired through training ---------


def test_a_calibrated_model_reports_its_reliability_before_and_after(
    closing: list[Evaluation],
) -> None:
    params = UseCase.model_validate(
        {**use_case("binary").model_dump(), "calibration": {"method": "sigmoid", "fraction": 0.2}}
    )
    split = split_data(synthetic(800, "binary"), params)
    bundle = fit_model(split, params).bundle

    result = evaluate(bundle, split.holdout, params)
    closing.append(result)

    assert split.calibration is not None and len(split.calibration) == pytest.approx(
        0.2 * (len(split.calibration) + len(split.train)), abs=1
    )
    assert bundle.calibrator is not None and bundle.calibrator.method == "sigmoid"
    calibration = result.details["calibration"]
    assert calibration["method"] == "sigmoid"
    assert set(calibration["before"]) == set(calibration["after"]) == {"ece", "brier", "log_loss"}
    raw = bundle.raw_proba(split.holdout)
    assert not np.allclose(raw, bundle.predict_proba(split.holdout))
    assert calibration["before"]["brier"] == pytest.approx(
        float(((raw - encode_target(split.holdout["y"], params, bundle.classes)) ** 2).mean())
    )


def test_a_target_precision_policy_is_resolved_at_training_and_stored_with_the_model() -> None:
    params = UseCase.model_validate(
        {
            **use_case("binary").model_dump(),
            "decision": {"kind": "target_precision", "precision": 0.9},
        }
    )
    split = split_data(synthetic(600, "binary"), params)

    trained = fit_model(split, params)

    policy = trained.bundle.policy
    assert policy.kind == "target_precision" and 0 < policy.threshold < 1
    assert trained.policy_facts["policy_target_met"] == 1.0
    assert trained.policy_facts["policy_validation_precision"] >= 0.9
    restored = ModelBundle.from_texts(trained.bundle.to_texts())
    assert restored.policy == policy


def test_slices_are_reported_with_their_disparity_and_figure(
    binary: tuple[ModelBundle, DataSplit, UseCase], closing: list[Evaluation]
) -> None:
    bundle, split, params = binary
    sliced = UseCase.model_validate(
        {
            **params.model_dump(),
            "slices": {
                "columns": ["colour"],
                "min_rows": 5,
                "min_positives": 2,
                "max_recall_ratio": 1.01,
            },
        }
    )

    result = evaluate(bundle, split.holdout, sliced)
    closing.append(result)

    report = result.slices
    assert report is not None
    assert {row["value"] for row in report.rows} <= {"red", "green", "blue", "(other)"}
    assert "disparity.colour.recall_ratio" in result.metrics
    ratio = result.metrics["disparity.colour.recall_ratio"]
    assert (
        report.passed == (ratio <= 1.01) and ("colour" in report.flagged_columns) != report.passed
    )
    assert "slices.png" in result.figures
    assert result.details["slices"]["rows"] == report.as_dict()["rows"]


def test_a_slice_column_the_data_lacks_is_a_params_error(
    binary: tuple[ModelBundle, DataSplit, UseCase],
) -> None:
    bundle, split, params = binary
    sliced = UseCase.model_validate({**params.model_dump(), "slices": {"columns": ["size"]}})

    with pytest.raises(ParamsError, match=r"slices.columns names \['size'\]"):
        evaluate(bundle, split.holdout, sliced)


def test_baselines_are_measured_on_the_same_holdout_as_the_model(
    binary: tuple[ModelBundle, DataSplit, UseCase],
) -> None:
    bundle, split, params = binary

    baselines = baselines_for(bundle, split, params)

    assert set(baselines) == {"class_prior", "logistic_regression"}
    assert baselines["class_prior"]["roc_auc"] == 0.5
    assert baselines["logistic_regression"]["roc_auc"] > 0.8  # the label is nearly linear
