"""Splitting and fitting small synthetic tables: ordered splits, working models, text round trip."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from pipelines.config import UseCase
from pipelines.data.columns import FeatureError
from pipelines.modeling.model import ModelBundle
from pipelines.modeling.training import (
    DataSplit,
    TrainedModel,
    TrainingError,
    encode_target,
    fit_booster,
    fit_model,
    lightgbm_params,
    split_data,
    target_classes,
)

FAST_LIGHTGBM = {
    "num_iterations": 40,
    "learning_rate": 0.2,
    "num_leaves": 7,
    "min_data_in_leaf": 5,
    "early_stopping_round": 10,
    "num_threads": 1,
}


def use_case(task: str = "binary", split: dict[str, Any] | None = None, **extra: Any) -> UseCase:
    declared: dict[str, Any] = {
        "dataset": "cases",
        "id_column": "id",
        "target": "y",
        "task": task,
        "features": {
            "numeric": ["x1", "x2"],
            "categorical": ["colour"],
            "date": ["day"],
            "min_category_count": 2,
        },
        "lightgbm": FAST_LIGHTGBM,
        "split": split or {"method": "random", "seed": 1},
        "decision": {"kind": "threshold", "threshold": 0.5},
        "min_training_rows": 10,
    }
    if task == "binary":
        declared["positive_class"] = "yes"
    return UseCase.model_validate({**declared, **extra})


def synthetic(n: int, task: str = "binary", seed: int = 0) -> pd.DataFrame:
    """x1 and colour drive the label; x2 is noise."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    signal = 2.0 * x1 + (colour == "red") + rng.normal(scale=0.3, size=n)
    if task == "binary":
        y = np.where(signal > 0.5, "yes", "no")
    else:
        y = np.select([signal < -0.7, signal < 1.2], ["low", "mid"], "high")
    return pd.DataFrame(
        {
            "id": [f"row-{i}" for i in range(n)],
            "x1": x1,
            "x2": rng.normal(size=n),
            "colour": colour,
            "day": pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D"),
            "y": y,
        }
    )


# --- split_data -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("validation", "holdout"), [(0.15, 0.15), (0.1, 0.2), (0.3, 0.05)])
def test_time_split_puts_the_newest_rows_last_and_matches_the_fractions(
    validation: float, holdout: float
) -> None:
    frame = synthetic(200)
    frame.loc[[3, 50, 120], "day"] = pd.NaT  # undated rows can only train
    params = use_case(
        split={
            "method": "time",
            "date_column": "day",
            "validation_fraction": validation,
            "holdout_fraction": holdout,
        }
    )

    split = split_data(frame, params)

    dated = 197
    assert split.sizes() == {
        "train": 3 + dated - round(dated * validation) - round(dated * holdout),
        "validation": round(dated * validation),
        "holdout": round(dated * holdout),
    }
    train_dated = split.train["day"].dropna()
    assert split.train["day"].isna().sum() == 3
    assert split.validation["day"].notna().all() and split.holdout["day"].notna().all()
    assert train_dated.max() <= split.validation["day"].min()
    assert split.validation["day"].max() <= split.holdout["day"].min()
    assert split.holdout["day"].is_monotonic_increasing
    all_ids = pd.concat([split.train["id"], split.validation["id"], split.holdout["id"]])
    assert sorted(all_ids) == sorted(frame["id"]) and all_ids.is_unique


def test_time_split_parses_dates_written_as_text() -> None:
    frame = pd.DataFrame(
        {
            "id": list("abcdefghij"),
            "day": ["2024-01-10", "2024-01-01", "not a date", "2024-01-05", "2024-01-03"] * 2,
            "y": ["yes", "no"] * 5,
        }
    )
    params = use_case(
        split={
            "method": "time",
            "date_column": "day",
            "validation_fraction": 0.25,
            "holdout_fraction": 0.25,
        }
    )

    split = split_data(frame, params)

    # 8 dated rows: 2 newest hold out, the 2 before validate, "not a date" trains
    assert sorted(split.holdout["day"]) == ["2024-01-10", "2024-01-10"]
    assert sorted(split.validation["day"]) == ["2024-01-05", "2024-01-05"]
    assert "not a date" in set(split.train["day"])


def test_random_split_is_stratified_and_matches_the_fractions() -> None:
    frame = synthetic(400)
    params = use_case(
        split={"method": "random", "validation_fraction": 0.2, "holdout_fraction": 0.2}
    )

    split = split_data(frame, params)

    assert split.sizes() == {"train": 240, "validation": 80, "holdout": 80}
    overall = (frame["y"] == "yes").mean()
    for part in (split.train, split.validation, split.holdout):
        # stratified: each part's positive rate is the overall rate, up to one row's rounding
        assert abs((part["y"] == "yes").mean() - overall) <= 1 / len(part)
    all_ids = pd.concat([split.train["id"], split.validation["id"], split.holdout["id"]])
    assert sorted(all_ids) == sorted(frame["id"])


def test_random_split_is_repeatable_for_a_seed_and_changes_with_it() -> None:
    frame = synthetic(100)

    first = split_data(frame, use_case(split={"method": "random", "seed": 7}))
    again = split_data(frame, use_case(split={"method": "random", "seed": 7}))
    other = split_data(frame, use_case(split={"method": "random", "seed": 8}))

    assert first.holdout["id"].tolist() == again.holdout["id"].tolist()
    assert set(first.holdout["id"]) != set(other.holdout["id"])


def test_time_split_with_too_few_rows_raises_training_error() -> None:
    frame = synthetic(3)
    params = use_case(split={"method": "time", "date_column": "day"})

    # round(3 * 0.15) == 0 rows would be left to hold out
    with pytest.raises(TrainingError, match="the validation split is empty; 3 rows are too few"):
        split_data(frame, params)


def test_time_split_with_no_dated_rows_raises_training_error() -> None:
    frame = synthetic(50).assign(day=pd.NaT)
    params = use_case(split={"method": "time", "date_column": "day"})

    with pytest.raises(TrainingError, match="split is empty; 50 rows are too few"):
        split_data(frame, params)


@pytest.mark.parametrize(
    "labels",
    [["yes", "no", "yes", "no"], ["yes"] + ["no"] * 39],
    ids=["four-rows", "one-positive-in-forty"],
)
def test_random_split_with_too_few_rows_raises_training_error(labels: list[str]) -> None:
    frame = synthetic(len(labels)).assign(y=labels)

    with pytest.raises(TrainingError, match="too few"):
        split_data(frame, use_case())


# --- targets and LightGBM params ------------------------------------------------------------------


def test_binary_target_classes_and_encoding() -> None:
    params = use_case(positive_class=1)
    values = pd.Series([1, 0, 2, 1])

    assert target_classes(pd.DataFrame({"y": values}), params) == ["not-1", "1"]
    np.testing.assert_array_equal(encode_target(values, params, ["not-1", "1"]), [1, 0, 0, 1])
    # text read from a CSV file names the same positive class
    np.testing.assert_array_equal(
        encode_target(pd.Series(["1", "0"]), params, ["not-1", "1"]), [1, 0]
    )


def test_multiclass_classes_are_sorted_and_unknown_labels_encode_as_minus_one() -> None:
    params = use_case(task="multiclass")
    frame = pd.DataFrame({"y": ["mid", "low", "high", None, "mid"]})

    classes = target_classes(frame, params)

    assert classes == ["high", "low", "mid"]
    np.testing.assert_array_equal(
        encode_target(pd.Series(["low", "high", "huge", "mid"]), params, classes), [1, 0, -1, 2]
    )


def test_lightgbm_params_add_the_task_and_leave_rounds_to_training() -> None:
    binary = lightgbm_params(use_case(), 2)
    multiclass = lightgbm_params(use_case(task="multiclass"), 3)

    assert binary["objective"] == "binary" and "num_class" not in binary
    assert (multiclass["objective"], multiclass["num_class"]) == ("multiclass", 3)
    assert binary["learning_rate"] == 0.2 and binary["num_threads"] == 1
    assert "num_iterations" not in binary and "early_stopping_round" not in binary


# --- fit_model ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def binary_fit() -> tuple[TrainedModel, DataSplit]:
    split = split_data(synthetic(400), use_case())
    return fit_model(split, use_case()), split


@pytest.fixture(scope="module")
def multiclass_fit() -> tuple[TrainedModel, DataSplit]:
    params = use_case(task="multiclass")
    split = split_data(synthetic(450, task="multiclass"), params)
    return fit_model(split, params), split


def test_binary_model_gives_one_probability_per_row(
    binary_fit: tuple[TrainedModel, DataSplit],
) -> None:
    trained, split = binary_fit

    scores = trained.bundle.predict_proba(split.holdout)

    assert trained.bundle.classes == ["not-yes", "yes"]
    assert scores.shape == (len(split.holdout),)
    assert ((scores >= 0) & (scores <= 1)).all()
    positive = (split.holdout["y"] == "yes").to_numpy()
    # the label follows x1 closely, so a fitted model ranks positives above negatives
    assert roc_auc_score(positive, scores) > 0.9
    assert 1 <= trained.best_iteration <= FAST_LIGHTGBM["num_iterations"]
    assert trained.bundle.transform.categories["colour"]


def test_binary_probability_frame_names_its_column(
    binary_fit: tuple[TrainedModel, DataSplit],
) -> None:
    trained, split = binary_fit
    batch = split.holdout.head(5).set_axis([10, 11, 12, 13, 14])

    frame = trained.bundle.probability_frame(batch)

    assert list(frame.columns) == ["probability"]
    assert frame.index.tolist() == [10, 11, 12, 13, 14]


def test_multiclass_model_gives_a_distribution_per_row(
    multiclass_fit: tuple[TrainedModel, DataSplit],
) -> None:
    trained, split = multiclass_fit

    scores = trained.bundle.predict_proba(split.holdout)
    frame = trained.bundle.probability_frame(split.holdout)

    assert trained.bundle.classes == ["high", "low", "mid"]
    assert scores.shape == (len(split.holdout), 3)
    assert ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-6)
    assert list(frame.columns) == ["proba_high", "proba_low", "proba_mid"]
    predicted = np.asarray(trained.bundle.classes)[scores.argmax(axis=1)]
    assert (predicted == split.holdout["y"].to_numpy()).mean() > 0.6


@pytest.mark.parametrize("fit", ["binary_fit", "multiclass_fit"])
def test_bundle_survives_to_texts_from_texts_with_identical_predictions(
    fit: str, request: pytest.FixtureRequest
) -> None:
    trained, split = request.getfixturevalue(fit)

    texts = trained.bundle.to_texts()
    restored = ModelBundle.from_texts(texts)

    assert set(texts) == {"booster.txt", "bundle.json"}
    assert all(isinstance(text, str) for text in texts.values())
    assert (restored.task, restored.classes, restored.id_column) == (
        trained.bundle.task,
        trained.bundle.classes,
        trained.bundle.id_column,
    )
    assert restored.policy == trained.bundle.policy
    assert restored.transform == trained.bundle.transform
    # the drift reference travels with the model: validation rows, bucketed per feature
    assert restored.drift_reference == trained.bundle.drift_reference
    assert restored.drift_reference is not None
    assert restored.drift_reference.rows == len(split.validation)
    np.testing.assert_array_equal(
        restored.predict_proba(split.holdout), trained.bundle.predict_proba(split.holdout)
    )


def test_from_texts_without_the_booster_file_raises_key_error(
    binary_fit: tuple[TrainedModel, DataSplit],
) -> None:
    texts = binary_fit[0].bundle.to_texts()
    del texts["booster.txt"]

    with pytest.raises(KeyError, match=r"booster\.txt"):
        ModelBundle.from_texts(texts)


def test_predicting_a_batch_without_a_feature_column_raises_feature_error(
    binary_fit: tuple[TrainedModel, DataSplit],
) -> None:
    trained, split = binary_fit

    with pytest.raises(FeatureError, match=r"\['colour'\]"):
        trained.bundle.predict_proba(split.holdout.drop(columns="colour"))


def test_single_class_training_split_raises_training_error() -> None:
    frame = synthetic(60).assign(y="no")
    split = DataSplit(frame.iloc[:40], frame.iloc[40:50], frame.iloc[50:])

    with pytest.raises(TrainingError, match="the training split holds only one class"):
        fit_model(split, use_case())


def test_multiclass_with_one_class_in_training_raises_training_error() -> None:
    frame = synthetic(60, task="multiclass")
    train = frame.iloc[:40].assign(y="mid")
    split = DataSplit(train, frame.iloc[40:50], frame.iloc[50:])

    with pytest.raises(TrainingError, match="only one class"):
        fit_model(split, use_case(task="multiclass"))


def test_fit_model_without_a_feature_column_raises_feature_error() -> None:
    split = split_data(synthetic(100).drop(columns="x2"), use_case())

    with pytest.raises(FeatureError, match=r"lacks the feature columns \['x2'\]"):
        fit_model(split, use_case())


def test_a_use_case_on_another_engine_needs_that_engines_fitter() -> None:
    params = use_case(execution={"engine": "dask"})
    split = split_data(synthetic(200), params)

    with pytest.raises(TrainingError, match=r"engine is dask.*pipelines\.scoring\.engines"):
        fit_model(split, params)


def test_the_fitter_handed_in_grows_both_boosters() -> None:
    calls: list[tuple[int, bool, int | None]] = []

    def counting_fitter(transform, train, validation, params, booster_params, rounds=None):
        calls.append((train[0].shape[0], validation is not None, rounds))
        return fit_booster(transform, train, validation, params, booster_params, rounds)

    split = split_data(synthetic(300), use_case())
    trained = fit_model(split, use_case(), counting_fitter)

    both = len(split.train) + len(split.validation)
    assert calls == [(len(split.train), True, None), (both, False, trained.best_iteration)]
    assert trained.bundle.booster.current_iteration() == trained.best_iteration


# --- the refit on training and validation rows ------------------------------------------------


@pytest.fixture(scope="module")
def refit_and_not() -> tuple[TrainedModel, TrainedModel, DataSplit]:
    params = use_case(
        task="binary",
        decision={"kind": "target_precision", "precision": 0.9},
        calibration={"method": "sigmoid"},
    )
    stopped = params.model_copy(
        update={"lightgbm": params.lightgbm.model_copy(update={"refit_on_validation": False})}
    )
    split = split_data(synthetic(600, seed=4), params)
    return fit_model(split, params), fit_model(split, stopped), split


def test_the_refit_learns_from_training_and_validation_rows_with_the_trees_early_stopping_chose(
    refit_and_not: tuple[TrainedModel, TrainedModel, DataSplit],
) -> None:
    refit, stopped, split = refit_and_not

    assert refit.best_iteration == stopped.best_iteration
    assert refit.bundle.booster.current_iteration() == refit.best_iteration
    assert refit.fitting["fitted_on"] == "train+validation"
    assert refit.fitting["fitted_rows"] == len(split.train) + len(split.validation)
    assert stopped.fitting["fitted_on"] == "train"
    assert stopped.fitting["fitted_rows"] == len(split.train)
    # a different booster: it learned from more rows
    assert refit.bundle.booster.model_to_string() != stopped.bundle.booster.model_to_string()
    # the training profile (the ranges batches are checked against) covers the validation rows
    both = pd.concat([split.train, split.validation])
    widest = [both["x1"].min(), both["x1"].max()]
    low, high = refit.bundle.profile["ranges"]["x1"]
    assert low <= widest[0] and high >= widest[1]
    # calibration is refitted on the calibration rows for the final booster
    assert refit.bundle.calibrator is not None and stopped.bundle.calibrator is not None


def test_the_threshold_and_drift_reference_come_from_the_early_stopped_models_scores(
    refit_and_not: tuple[TrainedModel, TrainedModel, DataSplit],
) -> None:
    refit, stopped, _ = refit_and_not

    # chosen on out-of-sample validation scores, before the refit: the same either way
    assert refit.bundle.policy == stopped.bundle.policy
    assert refit.policy_facts == stopped.policy_facts
    assert refit.bundle.drift_reference == stopped.bundle.drift_reference


def test_a_fit_without_validation_rows_needs_its_number_of_trees() -> None:
    params = use_case()
    split = split_data(synthetic(200), params)
    trained = fit_model(split, params)
    transform = trained.bundle.transform
    rows = (transform.transform(split.train), encode_target(split.train["y"], params, ["n", "yes"]))

    with pytest.raises(TrainingError, match="needs its number of trees"):
        fit_booster(transform, rows, None, params, lightgbm_params(params, 2))
