"""Decision policies: from scores to the action an agency takes on each row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.config import CapacityPolicy, DecisionPolicy, ThresholdPolicy


@dataclass(frozen=True)
class Decisions:
    predicted_label: np.ndarray  # the model's class for each row
    decision: np.ndarray  # the action the policy takes
    flagged: np.ndarray  # binary: rows the policy flags; multiclass: rows routed by the model


def apply_policy(
    scores: np.ndarray, policy: DecisionPolicy, task: str, classes: list[str]
) -> Decisions:
    """Binary: threshold or top-k capacity. Multiclass: top class if confident enough."""
    if task == "binary":
        flagged = binary_flags(np.asarray(scores, dtype=float), policy)
        labels = np.where(flagged, classes[1], classes[0]).astype(object)
        decision = np.where(flagged, policy.flag_label, policy.pass_label).astype(object)
        return Decisions(labels, decision, flagged)
    if not isinstance(policy, ThresholdPolicy):
        raise ValueError("multiclass use cases take a threshold policy")
    top = scores.argmax(axis=1)
    labels = np.asarray(classes, dtype=object)[top]
    confident = scores.max(axis=1) >= policy.threshold
    decision = np.where(confident, labels, policy.fallback_label).astype(object)
    return Decisions(labels, decision, confident)


def binary_flags(scores: np.ndarray, policy: DecisionPolicy) -> np.ndarray:
    if isinstance(policy, CapacityPolicy):
        flagged = np.zeros(len(scores), dtype=bool)
        # stable ordering, so ties go to the earlier row and reruns flag the same rows
        order = np.argsort(-scores, kind="stable")[: policy.top_k]
        flagged[order] = True
        return flagged
    return scores >= policy.threshold
