"""A 0/1 target with a missing label is stored as 0.0/1.0: training reads its labels as the
gate and the drafted params write them ('0', '1'). It read '0.0', matched no row to
positive_class '0' and failed with 'the training split holds only one class'."""

from __future__ import annotations

import numpy as np
import pandas as pd

from pipelines.config import UseCase
from pipelines.modeling.training import encode_target, target_classes

LABELS = pd.Series([0.0, 1.0, np.nan, 1.0, 2.0])


def use_case(task: str, **extra: object) -> UseCase:
    return UseCase.model_validate(
        {
            "dataset": "cases",
            "target": "y",
            "task": task,
            "features": {"numeric": ["x"]},
            "split": {"method": "random"},
            "decision": {"kind": "threshold", "threshold": 0.5},
            **extra,
        }
    )


def test_a_binary_float_target_matches_positive_class_as_written() -> None:
    params = use_case("binary", positive_class="1")
    classes = target_classes(pd.DataFrame({"y": LABELS}), params)
    assert classes == ["not-1", "1"]
    assert encode_target(LABELS, params, classes).tolist() == [0, 1, 0, 1, 0]


def test_multiclass_float_labels_are_whole_numbers() -> None:
    params = use_case("multiclass")
    classes = target_classes(pd.DataFrame({"y": LABELS}), params)
    assert classes == ["0", "1", "2"]
    assert encode_target(LABELS, params, classes).tolist() == [0, 1, -1, 1, 2]
