"""agencyml's holdout metric against a plain LightGBM on the same rows of the same split.

For each table shape the onboarding tests build (a whitespace credit file without header or id,
an Excel workbook, a semicolon export with decimal commas, day-first dates and sixteen classes,
a ', '-separated census extract, a recall register with free text) and for the shipped use
cases, the table goes through `new-agency`'s draft (shipped use cases: their own params), and
then three models are fitted on one split and measured on one holdout:

- agencyml as shipped: early stopping on validation, then the refit on training + validation;
- agencyml with `lightgbm.refit_on_validation: false` (the early-stopped model itself);
- a plain LightGBM, what one would write first: LightGBM's defaults, the draft's feature
  columns as they were read (numbers as numbers, anything else as a pandas category), fitted
  on the training rows with early stopping on the validation rows.

The metric is each use case's primary metric (ROC AUC for binary, macro F1 over the classes
present in the holdout for multiclass), computed over the labelled holdout rows; their count
is printed beside it. Run from the project root:

    .venv/bin/python benchmarks/holdout_quality.py          # prints a markdown table
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from pandas.api.types import is_datetime64_any_dtype, is_numeric_dtype

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "integration")]

from pipelines.config import UseCase, load_use_case  # noqa: E402
from pipelines.data.columns import conform_columns  # noqa: E402
from pipelines.data.onboarding import draft_params  # noqa: E402
from pipelines.data.sources import training_table  # noqa: E402
from pipelines.modeling.evaluation import evaluate  # noqa: E402
from pipelines.modeling.features import FeatureTransform  # noqa: E402
from pipelines.modeling.metrics import (  # noqa: E402
    binary_score_metrics,
    multiclass_score_metrics,
)
from pipelines.modeling.training import (  # noqa: E402
    DataSplit,
    encode_target,
    fit_model,
    split_data,
    target_classes,
)

TOLERANCE = 0.01  # agencyml may trail the plain model by at most this much


def shapes() -> dict[str, tuple[Callable[[Path], str], str]]:
    """Each shape: a function writing the table to a path (returning the target) and a name."""
    from test_new_agency import census, recall_notices
    from test_new_agency_shapes import credit, export, workbook

    def census_file(path: Path) -> str:
        path.write_text(census(1_200))
        return "column_5"

    def recalls_file(path: Path) -> str:
        recall_notices(1_500).to_csv(path, sep="\t", index=False)
        return "hazard"

    def rasff_as_published(path: Path) -> str:
        shutil.copyfile(ROOT / "data" / "product-safety" / "RASFF_data.csv.gz", path)
        return "RISK DECISION"

    return {
        "RASFF notifications as published (real; ';', BOM, day-first, gzip; "
        "see data/product-safety/ATTRIBUTION.md)": (rasff_as_published, "RASFF_data.csv.gz"),
        "whitespace credit, 1,000 rows, no header or id (.data)": (credit, "german.data"),
        "Excel workbook, 3 classes": (workbook, "cases.xlsx"),
        "';' export, decimal comma, day-first dates, 16 punctuated classes, "
        "one unlabelled row (.txt)": (export, "claims.txt"),
        "', ' census extract, no header or id (.data)": (census_file, "adult.data"),
        "recall register with free text, tab-separated": (recalls_file, "recalls.csv"),
    }


def plain_lightgbm(
    split: DataSplit, params: UseCase, classes: list[str], read: Callable[..., pd.DataFrame]
) -> np.ndarray:
    """LightGBM's defaults on the raw feature columns as read (`read` types them as the params
    declare: numbers as numbers, dates as datetimes, which become nanoseconds here; anything
    else is a pandas category); its holdout probabilities."""
    train = read(split.train)
    categories = {
        column: pd.CategoricalDtype(train[column].dropna().astype(str).unique())
        for column in train.columns
        if not (is_numeric_dtype(train[column]) or is_datetime64_any_dtype(train[column]))
    }

    def frame(rows: pd.DataFrame) -> pd.DataFrame:
        typed = read(rows)
        out = {}
        for column in typed.columns:
            values = typed[column]
            if column in categories:
                text = values.astype(str).where(values.notna())
                out[column] = text.astype(categories[column])  # unseen -> missing
            elif is_datetime64_any_dtype(values):
                out[column] = values.dt.tz_localize(None).astype("int64").where(values.notna())
            else:
                out[column] = values
        return pd.DataFrame(out)

    y_train = encode_target(split.train[params.target], params, classes)
    y_valid = encode_target(split.validation[params.target], params, classes)
    model = lgb.LGBMClassifier(n_estimators=2000, random_state=42, n_jobs=2, verbosity=-1)
    model.fit(
        frame(split.train),
        y_train,
        eval_set=[(frame(split.validation), y_valid)],
        callbacks=[lgb.early_stopping(100, verbose=False)],
    )
    scores = model.predict_proba(frame(split.holdout))
    if params.task == "binary":
        return scores[:, 1]
    full = np.zeros((len(split.holdout), len(classes)))
    full[:, model.classes_] = scores  # a class missing from training gets probability 0
    return full


def as_read(transform: FeatureTransform) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """The feature columns typed as the params declare; a column with values that do not
    cast (RASFF's 'unknown date') stays text, as a plain script would leave it."""
    kinds = {
        **{column: "numeric" for column in transform.numeric},
        **{column: "text" for column in [*transform.categories, *transform.text]},
        **{column: "date" for column in transform.date},
    }

    def read(rows: pd.DataFrame) -> pd.DataFrame:
        typed, _ = conform_columns(rows, kinds, transform.date_formats)
        return typed[transform.input_columns]

    return read


def primary(params: UseCase, y_true: np.ndarray, scores: np.ndarray, n_classes: int) -> float:
    if params.task == "binary":
        return binary_score_metrics(y_true, scores)[params.primary_metric]
    return multiclass_score_metrics(y_true, scores, n_classes)[params.primary_metric]


def compare(name: str, params: UseCase, table: pd.DataFrame) -> dict[str, object]:
    split = split_data(table, params)
    classes = target_classes(pd.concat([split.train, split.validation]), params)
    started = time.perf_counter()
    shipped = fit_model(split, params)
    seconds = time.perf_counter() - started
    stopped_params = params.model_copy(
        update={"lightgbm": params.lightgbm.model_copy(update={"refit_on_validation": False})}
    )
    stopped = fit_model(split, stopped_params)
    ours = evaluate(shipped.bundle, split.holdout, params, detailed=False).metrics
    early = evaluate(stopped.bundle, split.holdout, stopped_params, detailed=False).metrics
    y_holdout = encode_target(split.holdout[params.target], params, classes)
    known = y_holdout >= 0
    plain_scores = plain_lightgbm(split, params, classes, as_read(shipped.bundle.transform))
    plain = primary(params, y_holdout[known], plain_scores[known], len(classes))
    metric = params.primary_metric
    return {
        "table": name,
        "task": f"{params.task}, {len(classes)} classes",
        "sizes": split.sizes(),
        "metric": metric,
        "refit": ours[metric],
        "early": early[metric],
        "plain": plain,
        "trees": shipped.best_iteration,
        "seconds": seconds,
    }


def main() -> None:
    results = []
    with tempfile.TemporaryDirectory() as work:
        project = Path(work)
        (project / "params").mkdir()
        os.environ["AGENCYML_PROJECT_ROOT"] = str(project)
        for index, (name, (write, file_name)) in enumerate(shapes().items()):
            source = project / "incoming" / file_name
            source.parent.mkdir(exist_ok=True)
            target = write(source)
            if not source.exists():  # the workbook writer picks its own suffix
                source = source.with_suffix(".xlsx")
            agency = f"shape-{index}"
            draft_params(agency, source, project, target=target)
            spec = load_use_case(agency, "main")
            results.append(compare(name, spec.params, training_table(spec)))
            print(f"done: {name}", file=sys.stderr)
        os.environ.pop("AGENCYML_PROJECT_ROOT")
    for agency, use_case in (("business-aid", "fraud-risk"), ("product-safety", "risk-triage")):
        spec = load_use_case(agency, use_case)
        results.append(compare(f"shipped: {agency} {use_case}", spec.params, training_table(spec)))
        print(f"done: {agency} {use_case}", file=sys.stderr)
    report(results)


def report(results: list[dict[str, object]]) -> None:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, lightgbm {lgb.__version__}; load average {load:.2f}\n"
    )
    print(
        "| table | task | rows train / validation / holdout | metric | agencyml (refit) | "
        "agencyml (early-stopped only) | plain LightGBM | refit - plain | trees | fit s |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    worst = 0.0
    for r in results:
        sizes = r["sizes"]
        assert isinstance(sizes, dict)
        gap = float(r["refit"]) - float(r["plain"])  # type: ignore[arg-type]
        worst = min(worst, gap)
        print(
            f"| {r['table']} | {r['task']} | {sizes['train']:,} / {sizes['validation']:,} / "
            f"{sizes['holdout']:,} | {r['metric']} | {r['refit']:.4f} | {r['early']:.4f} | "
            f"{r['plain']:.4f} | {gap:+.4f} | {r['trees']} | {r['seconds']:.1f} |"
        )
    verdict = "met" if worst >= -TOLERANCE else "NOT met"
    print(f"\nnever worse than the plain model by more than {TOLERANCE}: {verdict} ({worst:+.4f})")


if __name__ == "__main__":
    main()
