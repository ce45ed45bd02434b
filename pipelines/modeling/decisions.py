"""Decision policies: from scores to the action an agency takes on each row."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipelines.config import CapacityPolicy, DecisionPolicy, TargetPrecisionPolicy, ThresholdPolicy


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
    if policy.threshold is None:
        raise ValueError("a target_precision policy needs the threshold training resolves")
    return scores >= policy.threshold


def resolve_policy(
    policy: DecisionPolicy, y_true: np.ndarray, scores: np.ndarray
) -> tuple[DecisionPolicy, dict[str, float]]:
    """A target-precision policy gets the lowest threshold whose precision on these rows
    reaches the target (most recall for the precision asked); when no threshold reaches it,
    the most precise one, and `target_met` says so. Other policies pass through."""
    if not isinstance(policy, TargetPrecisionPolicy):
        return policy, {}
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_truth = scores[order], y_true[order]
    true_positives = np.cumsum(ranked_truth)
    precision = true_positives / np.arange(1, len(ranked_truth) + 1)
    # a threshold can only sit where the score changes
    last_of_tie = np.r_[ranked_scores[1:] != ranked_scores[:-1], True]
    candidates = np.flatnonzero(last_of_tie)
    reaching = candidates[precision[candidates] >= policy.precision]
    met = len(reaching) > 0
    chosen = reaching.max() if met else candidates[np.argmax(precision[candidates])]
    threshold = float(ranked_scores[chosen])
    resolved = policy.model_copy(update={"threshold": threshold})
    facts = {
        "policy_threshold": threshold,
        "policy_validation_precision": float(precision[chosen]),
        "policy_target_met": float(met),
    }
    return resolved, facts
