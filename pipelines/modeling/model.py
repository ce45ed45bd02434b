"""A trained model as one bundle: feature transform, LightGBM booster, classes and policy.

The bundle serialises to plain text files (JSON and LightGBM's text format), so a logged model
never needs pickle to load and scoring runs the very transform training fitted."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from pydantic import TypeAdapter

from pipelines.config import DecisionPolicy
from pipelines.modeling.features import FeatureTransform

if TYPE_CHECKING:
    from pipelines.modeling.calibration import Calibrator
    from pipelines.modeling.drift import DriftReference

BOOSTER_FILE = "booster.txt"
BUNDLE_FILE = "bundle.json"

_POLICY = TypeAdapter(DecisionPolicy)


@dataclass(frozen=True)
class ModelBundle:
    task: str
    classes: list[str]
    id_column: str
    transform: FeatureTransform
    booster: lgb.Booster
    policy: DecisionPolicy
    profile: dict[str, Any] = field(default_factory=dict)  # what training data looked like
    calibrator: Calibrator | None = None  # fitted on the calibration split, when asked for
    drift_reference: DriftReference | None = None  # what batches are compared with

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Binary: P(positive) per row, shape (n,). Multiclass: shape (n, classes).
        Calibrated when the use case asks for it."""
        raw = self.raw_proba(frame)
        return raw if self.calibrator is None else self.calibrator.apply(raw)

    def raw_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """LightGBM's own probabilities, before any calibration."""
        features = self.transform.transform(frame)
        return np.asarray(self.booster.predict(features))

    def probability_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Scores as named columns: 'probability', or 'proba_<class>' per class."""
        scores = self.predict_proba(frame)
        if self.task == "binary":
            return pd.DataFrame({"probability": scores}, index=frame.index)
        return pd.DataFrame(
            scores, columns=[f"proba_{label}" for label in self.classes], index=frame.index
        )

    def sha256(self) -> str:
        """A hash of the model files as logged: the same training gives the same hash."""
        digest = hashlib.sha256()
        for name, text in sorted(self.to_texts().items()):
            digest.update(name.encode() + b"\0" + text.encode("utf-8") + b"\0")
        return digest.hexdigest()

    def to_texts(self) -> dict[str, str]:
        meta = {
            "task": self.task,
            "classes": self.classes,
            "id_column": self.id_column,
            "transform": self.transform.to_dict(),
            "policy": _POLICY.dump_python(self.policy, mode="json"),
            "profile": self.profile,
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "drift_reference": (
                None if self.drift_reference is None else self.drift_reference.to_dict()
            ),
        }
        return {
            BOOSTER_FILE: self.booster.model_to_string(),
            BUNDLE_FILE: json.dumps(meta, indent=1, sort_keys=True),
        }

    @classmethod
    def from_texts(cls, texts: dict[str, str]) -> ModelBundle:
        meta: dict[str, Any] = json.loads(texts[BUNDLE_FILE])
        return cls(
            task=meta["task"],
            classes=list(meta["classes"]),
            id_column=meta["id_column"],
            transform=FeatureTransform.from_dict(meta["transform"]),
            booster=lgb.Booster(model_str=texts[BOOSTER_FILE]),
            policy=_POLICY.validate_python(meta["policy"]),
            profile=meta.get("profile", {}),
            calibrator=_calibrator(meta.get("calibrator")),
            drift_reference=_drift_reference(meta.get("drift_reference")),
        )


def _drift_reference(state: dict[str, Any] | None) -> DriftReference | None:
    if state is None:
        return None
    from pipelines.modeling.drift import DriftReference

    return DriftReference.from_dict(state)


def _calibrator(state: dict[str, Any] | None) -> Calibrator | None:
    if state is None:
        return None
    from pipelines.modeling.calibration import Calibrator

    return Calibrator.from_dict(state)
