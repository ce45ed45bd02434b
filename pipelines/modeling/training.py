"""Splitting, fitting and evaluating LightGBM: pure functions over tables and typed params."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import lightgbm as lgb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

from pipelines.config import RandomSplit, TimeSplit, UseCase
from pipelines.data.columns import parse_dates, text_column
from pipelines.modeling.decisions import resolve_policy
from pipelines.modeling.drift import DriftReference, build_reference
from pipelines.modeling.features import FeatureTransform, fit_transform_spec
from pipelines.modeling.model import ModelBundle
from pipelines.validation.expectations import derive_profile

Matrix = np.ndarray | sp.csr_matrix  # what FeatureTransform.transform returns


class TrainingError(ValueError):
    """The data cannot train a model: too few rows, or a class missing from a split."""


@dataclass(frozen=True)
class DataSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    calibration: pd.DataFrame | None = None  # only when the use case calibrates

    def sizes(self) -> dict[str, int]:
        sizes = {
            "train": len(self.train),
            "validation": len(self.validation),
            "holdout": len(self.holdout),
        }
        if self.calibration is not None:
            sizes["calibration"] = len(self.calibration)
        return sizes


@dataclass(frozen=True)
class TrainedModel:
    bundle: ModelBundle
    best_iteration: int
    params: dict[str, object]
    policy_facts: dict[str, float] = field(default_factory=dict)
    # which rows the final booster was fitted on, and how many trees it has
    fitting: dict[str, object] = field(default_factory=dict)


def split_data(frame: pd.DataFrame, params: UseCase) -> DataSplit:
    """Time-based when a date column is declared (rows without a date train), else random.
    Rows without a label are no part of any split (training sets them aside first, as
    target_missing says), so evaluation and samples re-split the same rows."""
    if params.target in frame.columns:
        frame = frame[frame[params.target].notna()]
    split = params.split
    if isinstance(split, TimeSplit):
        column = split.date_column
        dates = parse_dates(frame[column], column, params.features.date_format_of().get(column))
        dates = dates.dt.tz_convert(None)
        undated = frame[dates.isna()]
        dated = frame[dates.notna()].iloc[
            np.argsort(dates[dates.notna()].to_numpy(), kind="stable")
        ]
        n_holdout = round(len(dated) * split.holdout_fraction)
        n_validation = round(len(dated) * split.validation_fraction)
        cut = len(dated) - n_holdout - n_validation
        train = pd.concat([undated, dated.iloc[:cut]])
        validation, holdout = dated.iloc[cut : cut + n_validation], dated.iloc[cut + n_validation :]
    else:
        assert isinstance(split, RandomSplit)
        train, validation, holdout = random_split(frame, split, params.target)
    calibration = None
    if params.calibration.method != "none":
        train, calibration = carve_calibration(train, params)
    result = DataSplit(
        train.reset_index(drop=True),
        validation.reset_index(drop=True),
        holdout.reset_index(drop=True),
        None if calibration is None else calibration.reset_index(drop=True),
    )
    for name, size in result.sizes().items():
        if size == 0:
            raise TrainingError(f"the {name} split is empty; {len(frame)} rows are too few")
    return result


def carve_calibration(train: pd.DataFrame, params: UseCase) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The calibration rows come out of the training rows: the newest ones for a time split
    (train is in date order, undated rows first), a stratified sample for a random split."""
    size = round(len(train) * params.calibration.fraction)
    if isinstance(params.split, TimeSplit):
        return train.iloc[: len(train) - size], train.iloc[len(train) - size :]
    seed = params.split.seed
    try:
        kept, calibration = train_test_split(
            train, test_size=size, random_state=seed, stratify=train[params.target]
        )
    except ValueError as error:
        raise TrainingError(f"too few rows to set aside a calibration split: {error}") from error
    return kept, calibration


def random_split(
    frame: pd.DataFrame, split: RandomSplit, target: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Stratified, so each split keeps the class mix; every class needs a few rows for that."""
    rarest = frame[target].value_counts()
    if len(rarest) and rarest.min() < 3:
        raise TrainingError(
            f"{len(frame)} rows are too few for a stratified random split: class "
            f"'{rarest.idxmin()}' of '{target}' has {rarest.min()} row(s), and each class needs "
            "at least 3 (one per split)"
        )
    try:
        rest, holdout = train_test_split(
            frame,
            test_size=split.holdout_fraction,
            random_state=split.seed,
            stratify=frame[target],
        )
        share = split.validation_fraction / (1 - split.holdout_fraction)
        train, validation = train_test_split(
            rest, test_size=share, random_state=split.seed, stratify=rest[target]
        )
    except ValueError as error:
        raise TrainingError(
            f"{len(frame)} rows are too few for a stratified random split: {error}"
        ) from error
    return train, validation, holdout


def target_classes(frame: pd.DataFrame, params: UseCase) -> list[str]:
    """Binary: [negative, positive] as text. Multiclass: the sorted labels."""
    if params.task == "binary":
        return [f"not-{params.positive_class}", str(params.positive_class)]
    return sorted(text_column(frame[params.target]).dropna().unique())


def encode_target(values: pd.Series, params: UseCase, classes: list[str]) -> np.ndarray:
    # labels as the gate and the profile read them: a whole-number float column (0/1 with a
    # missing label, stored as 0.0/1.0) is '0' and '1', as positive_class is written
    as_text = text_column(values)
    if params.task == "binary":
        return (as_text == str(params.positive_class)).to_numpy(dtype=np.int32)
    lookup = {label: code for code, label in enumerate(classes)}
    return as_text.map(lookup).fillna(-1).to_numpy(dtype=np.int32)


# lightgbm: keys that training applies itself rather than handing them to LightGBM
SET_BY_TRAINING = ("num_iterations", "early_stopping_round", "refit_on_validation")


def lightgbm_params(params: UseCase, n_classes: int) -> dict[str, object]:
    """The declared hyper-parameters plus what the task implies."""
    declared = params.lightgbm.model_dump(exclude=set(SET_BY_TRAINING))
    if params.task == "binary":
        task = {"objective": "binary", "metric": ["binary_logloss", "auc"]}
    else:
        task = {"objective": "multiclass", "num_class": n_classes, "metric": ["multi_logloss"]}
    return {**declared, **task, "verbosity": -1, "feature_pre_filter": False}


class BoosterFitter(Protocol):
    """Fits LightGBM on transformed rows: fit_booster in this process, or the Dask engine's on
    a cluster (handed in by pipelines.scoring.engines). With `validation`, it grows up to
    num_iterations trees and keeps those early stopping on the validation rows picks; without,
    it grows exactly `rounds` trees (the refit on training and validation rows)."""

    def __call__(
        self,
        transform: FeatureTransform,
        train: tuple[Matrix, np.ndarray],
        validation: tuple[Matrix, np.ndarray] | None,
        params: UseCase,
        booster_params: dict[str, object],
        rounds: int | None = None,
    ) -> lgb.Booster: ...


def fit_model(
    split: DataSplit, params: UseCase, booster_fitter: BoosterFitter | None = None
) -> TrainedModel:
    """Choose the number of trees by early stopping on the validation rows, the decision
    threshold and the drift reference on that model's out-of-sample validation scores, then
    (with lightgbm.refit_on_validation, the default) refit the transform and the booster on the
    training and validation rows together with that many trees. Calibration rows and the
    holdout stay apart, so calibration and evaluation see the final model out of sample.

    Without a `booster_fitter`, LightGBM runs in this process; a use case whose engine is dask
    needs the Dask engine's fitter (pipelines.scoring.engines.fit_model hands it in)."""
    if booster_fitter is None and params.execution.engine != "local":
        raise TrainingError(
            f"execution.engine is {params.execution.engine}, but no fitter for it was given; "
            "train through pipelines.scoring.engines.fit_model"
        )
    fitter = booster_fitter or fit_booster
    classes = target_classes(pd.concat([split.train, split.validation]), params)
    y_train = encode_target(split.train[params.target], params, classes)
    y_valid = encode_target(split.validation[params.target], params, classes)
    if len(np.unique(y_train[y_train >= 0])) < 2:
        raise TrainingError("the training split holds only one class; a model cannot be fitted")
    booster_params = lightgbm_params(params, len(classes))
    stopped = fitted_bundle(split.train, y_train, classes, params, fitter, booster_params, split)
    best = stopped.booster.current_iteration()
    # chosen on scores the model did not train on: the threshold and the drift reference
    resolved, policy_facts = resolve_policy(
        stopped.policy, y_valid, stopped.predict_proba(split.validation)
    )
    reference = drift_reference(stopped, split.validation, params)
    final, fitted_on = stopped, ["train"]
    if params.lightgbm.refit_on_validation:
        both = pd.concat([split.train, split.validation], ignore_index=True)
        y_both = np.concatenate([y_train, y_valid])
        final = fitted_bundle(
            both, y_both, classes, params, fitter, booster_params, split, rounds=best
        )
        fitted_on = ["train", "validation"]
    fitting: dict[str, object] = {
        "trees": best,
        "trees_chosen_on": "validation (early stopping on log loss)",
        "fitted_on": "+".join(fitted_on),
        "fitted_rows": sum(len(getattr(split, name)) for name in fitted_on),
        "threshold_and_drift_reference_on": "validation, scored by the early-stopped model",
    }
    bundle = replace(final, policy=resolved, drift_reference=reference)
    return TrainedModel(bundle, best, booster_params, policy_facts, fitting)


def fitted_bundle(
    rows: pd.DataFrame,
    labels: np.ndarray,
    classes: list[str],
    params: UseCase,
    fitter: BoosterFitter,
    booster_params: dict[str, object],
    split: DataSplit,
    rounds: int | None = None,
) -> ModelBundle:
    """The transform fitted on `rows`, a booster on them (early stopping on the validation rows
    unless `rounds` is given), and the calibrator on the calibration rows when asked for."""
    transform = fit_transform_spec(rows, params.features)
    train = (transform.transform(rows), labels)
    validation = None
    if rounds is None:
        y_valid = encode_target(split.validation[params.target], params, classes)
        validation = (transform.transform(split.validation), y_valid)
    booster = fitter(transform, train, validation, params, booster_params, rounds)
    bundle = ModelBundle(
        task=params.task,
        classes=classes,
        id_column=params.row_key,
        transform=transform,
        booster=booster,
        policy=params.decision,
        profile=derive_profile(rows, params),
    )
    if split.calibration is not None:
        bundle = calibrate(bundle, split.calibration, params)
    return bundle


def fit_booster(
    transform: FeatureTransform,
    train: tuple[Matrix, np.ndarray],
    validation: tuple[Matrix, np.ndarray] | None,
    params: UseCase,
    booster_params: dict[str, object],
    rounds: int | None = None,
) -> lgb.Booster:
    """LightGBM in this process: with early stopping on validation, cut at its best
    iteration; or exactly `rounds` trees when there is no validation set."""
    common = {
        "feature_name": transform.feature_names,
        "categorical_feature": transform.categorical_indices,
        "free_raw_data": False,
    }
    train_set = lgb.Dataset(*train, **common)
    if validation is None:
        if rounds is None:
            raise TrainingError("a fit without validation rows needs its number of trees")
        return lgb.train(booster_params, train_set, num_boost_round=rounds)
    valid_set = lgb.Dataset(*validation, reference=train_set, **common)
    booster = lgb.train(
        booster_params,
        train_set,
        num_boost_round=params.lightgbm.num_iterations,
        valid_sets=[valid_set],
        valid_names=["validation"],
        # stop on log loss alone: AUC can peak after a tree or two while probabilities are poor
        callbacks=[
            lgb.early_stopping(
                params.lightgbm.early_stopping_round, first_metric_only=True, verbose=False
            )
        ],
    )
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best))


def drift_reference(bundle: ModelBundle, rows: pd.DataFrame, params: UseCase) -> DriftReference:
    """What scored batches are compared with: the validation rows (the newest the model was
    tuned on, and scored out of sample) bucketed per numeric and categorical feature."""
    return build_reference(
        bundle.transform.conform(rows),
        numeric=list(bundle.transform.numeric),
        categorical=list(bundle.transform.categories),
        scores=bundle.predict_proba(rows),
        bins=params.drift.bins,
    )


def calibrate(bundle: ModelBundle, rows: pd.DataFrame, params: UseCase) -> ModelBundle:
    """Fit the use case's calibration method on the calibration rows' raw scores."""
    from pipelines.modeling.calibration import fit_calibrator

    y_true = encode_target(rows[params.target], params, bundle.classes)
    known = y_true >= 0
    try:
        calibrator = fit_calibrator(
            bundle.raw_proba(rows)[known], y_true[known], params.calibration.method, params.task
        )
    except ValueError as error:
        raise TrainingError(f"cannot calibrate on {len(rows)} calibration rows: {error}") from error
    return replace(bundle, calibrator=calibrator)
