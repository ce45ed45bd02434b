"""Holdout quality of agencyml's risk-triage model against a plain LightGBM on the same split.

The plain model is what one would write first: LightGBM's defaults, every raw column as a
pandas category (free text included, as label codes), the same time split and early stopping.
Run: python benchmarks/baseline_lightgbm.py  (prints a markdown table for RESULTS.md)
"""

from __future__ import annotations

import os
import platform
import time

import lightgbm as lgb
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from pipelines.config import load_use_case
from pipelines.data.sources import training_table
from pipelines.modeling.evaluation import evaluate
from pipelines.modeling.training import encode_target, fit_model, split_data

RAW_COLUMNS = ["type", "product_category", "origin_country", "product", "hazard"]


def plain_lightgbm(split, params) -> tuple[float, float, float]:
    categories = {
        column: pd.CategoricalDtype(split.train[column].astype(str).unique())
        for column in RAW_COLUMNS
    }

    def frame(rows: pd.DataFrame) -> pd.DataFrame:
        columns = {}
        for column in RAW_COLUMNS:
            values = rows[column].astype(str)
            known = values.where(values.isin(categories[column].categories))  # unseen -> missing
            columns[column] = known.astype(categories[column])
        return pd.DataFrame(columns)

    classes = ["no", "yes"]
    y = {
        name: encode_target(getattr(split, name)[params.target], params, classes)
        for name in ("train", "validation", "holdout")
    }
    started = time.perf_counter()
    model = lgb.LGBMClassifier(n_estimators=2000, random_state=42, n_jobs=2, verbosity=-1)
    model.fit(
        frame(split.train),
        y["train"],
        eval_X=(frame(split.validation),),
        eval_y=(y["validation"],),
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    seconds = time.perf_counter() - started
    scores = model.predict_proba(frame(split.holdout))[:, 1]
    return (
        roc_auc_score(y["holdout"], scores),
        average_precision_score(y["holdout"], scores),
        seconds,
    )


def main() -> None:
    spec = load_use_case("product-safety", "risk-triage")
    split = split_data(training_table(spec), spec.params)
    started = time.perf_counter()
    trained = fit_model(split, spec.params)
    seconds = time.perf_counter() - started
    ours = evaluate(trained.bundle, split.holdout, spec.params).metrics
    plain_auc, plain_ap, plain_seconds = plain_lightgbm(split, spec.params)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, "
        f"lightgbm {lgb.__version__}"
    )
    print(f"split sizes: {split.sizes()}\n")
    print("| model | holdout ROC AUC | holdout PR AUC | fit seconds |")
    print("| --- | --- | --- | --- |")
    print(
        f"| agencyml risk-triage (hashed text n-grams) | {ours['roc_auc']:.4f} | "
        f"{ours['pr_auc']:.4f} | {seconds:.1f} |"
    )
    print(
        f"| plain LightGBM (raw columns as categories) | {plain_auc:.4f} | {plain_ap:.4f} | "
        f"{plain_seconds:.1f} |"
    )
    print(f"\nROC AUC ratio agencyml / plain: {ours['roc_auc'] / plain_auc:.3f}")


if __name__ == "__main__":
    main()
