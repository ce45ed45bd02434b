"""The Dask engine's pure parts, without a cluster: parameter names, partitions, the early
stopping rule applied after training, and its errors."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import log_loss as sklearn_log_loss

from pipelines.config import Execution, LightGBMParams
from pipelines.modeling.training import SET_BY_TRAINING, TrainingError
from pipelines.scoring.dask_engine import (
    DaskEngineError,
    best_iteration,
    check_classes,
    dask_client,
    row_partitions,
    sklearn_params,
    validation_losses,
    without_run_ports,
)


def model_parameters(booster: lgb.Booster) -> dict[str, str]:
    """The parameters section of a model file, as LightGBM resolved them."""
    section = booster.model_to_string().split("\nparameters:\n")[1].split("\nend of parameters")[0]
    return dict(line.strip("[]").split(": ", 1) for line in section.splitlines())


def test_every_declared_hyper_parameter_reaches_lightgbm_under_its_own_name() -> None:
    declared = LightGBMParams(
        num_iterations=7,
        learning_rate=0.2,
        num_leaves=5,
        max_depth=4,
        min_data_in_leaf=3,
        feature_fraction=0.8,
        bagging_fraction=0.7,
        bagging_freq=2,
        lambda_l1=0.5,
        lambda_l2=1.5,
        min_gain_to_split=0.01,
        cat_smooth=4.0,
        is_unbalance=True,
        seed=11,
    ).model_dump()
    for name in (*SET_BY_TRAINING, "num_threads"):
        declared.pop(name)
    named = sklearn_params({**declared, "objective": "binary", "verbosity": -1}, 7)
    rows = np.random.default_rng(0).normal(size=(200, 3))
    model = lgb.LGBMClassifier(**named).fit(rows, (rows[:, 0] > 0).astype(int))

    resolved = model_parameters(model.booster_)
    for name, value in declared.items():
        expected = str(int(value)) if isinstance(value, bool) else str(value)
        assert float(resolved[name]) == float(expected), name
    assert model.booster_.current_iteration() == 7


@pytest.mark.parametrize(
    ("native", "value", "sklearn"),
    [
        ("min_data_in_leaf", 40, "min_child_samples"),
        ("lambda_l2", 1.0, "reg_lambda"),
        ("seed", 42, "random_state"),
        ("cat_smooth", 10.0, "cat_smooth"),
    ],
)
def test_sklearn_params_rename_and_leave_threads_and_classes_to_dask(native, value, sklearn):
    named = sklearn_params({native: value, "num_threads": 2, "num_class": 3}, 100)
    assert named == {"n_estimators": 100, sklearn: value}


@pytest.mark.parametrize(
    ("rows", "parts", "expected"),
    [
        (10, 3, [(0, 3), (3, 7), (7, 10)]),
        (2, 4, [(0, 1), (1, 2)]),
        (5, 1, [(0, 5)]),
        (0, 2, []),
    ],
)
def test_row_partitions_are_contiguous_and_never_empty(rows, parts, expected) -> None:
    assert row_partitions(rows, parts) == expected


def test_row_partitions_need_at_least_one_part() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        row_partitions(10, 0)


@pytest.mark.parametrize(
    ("losses", "rounds", "expected"),
    [
        ([3.0, 2.0, 1.0], 2, 3),  # never stops: the last is the best
        ([1.0, 2.0, 3.0, 0.5], 2, 1),  # stops before the late improvement
        ([3.0, 1.0, 1.0, 1.0], 5, 2),  # a tie is no improvement
        ([3.0, 1.0, 2.0, 0.5], 3, 4),
    ],
)
def test_best_iteration_follows_the_early_stopping_rule(losses, rounds, expected) -> None:
    assert best_iteration(np.array(losses), rounds) == expected


def test_best_iteration_of_nothing_raises() -> None:
    with pytest.raises(ValueError, match="no iterations"):
        best_iteration(np.array([]), 5)


@pytest.mark.parametrize("classes", [2, 3])
def test_the_rule_applied_afterwards_matches_lightgbm_early_stopping(classes: int) -> None:
    rng = np.random.default_rng(3)
    rows = rng.normal(size=(600, 4))
    labels = np.digitize(rows[:, 0] + rng.normal(scale=1.5, size=600), [-0.5, 0.5][: classes - 1])
    task = (
        {"objective": "binary", "metric": "binary_logloss"}
        if classes == 2
        else {"objective": "multiclass", "num_class": 3, "metric": "multi_logloss"}
    )
    params = {**task, "learning_rate": 0.3, "num_leaves": 15, "verbosity": -1, "num_threads": 1}
    train_set = lgb.Dataset(rows[:400], labels[:400])
    valid_set = lgb.Dataset(rows[400:], labels[400:], reference=train_set)
    recorded: dict = {}
    stopped = lgb.train(
        params,
        train_set,
        num_boost_round=200,
        valid_sets=[valid_set],
        callbacks=[lgb.early_stopping(5, verbose=False), lgb.record_evaluation(recorded)],
    )
    full = lgb.train(params, train_set, num_boost_round=200)

    losses = validation_losses(full, rows[400:], labels[400:])
    lightgbm_losses = next(iter(recorded["valid_0"].values()))
    np.testing.assert_allclose(losses[: len(lightgbm_losses)], lightgbm_losses, rtol=1e-9)
    assert best_iteration(losses, 5) == stopped.best_iteration < 200
    last = full.predict(rows[400:], raw_score=False)
    assert losses[-1] == pytest.approx(sklearn_log_loss(labels[400:], last), rel=1e-9)


def test_a_worker_without_every_class_is_a_training_error() -> None:
    with pytest.raises(TrainingError, match=r"worker 2 of 2 hold the class codes \[0\]"):
        check_classes([np.array([0, 1, 0]), np.array([0, 0])], 2)


def test_run_ports_are_reset_to_lightgbm_defaults() -> None:
    text = "[num_machines: 2]\n[local_listen_port: 40953]\n[machines: 127.0.0.1:1,127.0.0.1:2]\n"
    expected = "[num_machines: 2]\n[local_listen_port: 12400]\n[machines: ]\n"
    assert without_run_ports(text) == expected


def test_a_local_engine_asks_for_no_cluster() -> None:
    with pytest.raises(DaskEngineError, match="not 'dask'"), dask_client(Execution()):
        pass
