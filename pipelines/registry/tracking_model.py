"""The logged MLflow model, as code: loads the bundle's text files, so no pickle is involved."""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd
from mlflow.models import set_model

from pipelines.modeling.model import BOOSTER_FILE, BUNDLE_FILE, ModelBundle


class AgencyModel(mlflow.pyfunc.PythonModel):
    """Feature transform and LightGBM booster in one pyfunc; predict returns probabilities."""

    bundle: ModelBundle

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        texts = {
            name: Path(context.artifacts[key]).read_text(encoding="utf-8")
            for key, name in (("booster", BOOSTER_FILE), ("bundle", BUNDLE_FILE))
        }
        self.bundle = ModelBundle.from_texts(texts)

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params=None
    ) -> pd.DataFrame:
        return self.bundle.probability_frame(model_input)


set_model(AgencyModel())
