"""Typed, strict params: one YAML file per agency under params/, validated on load."""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from pipelines.paths import project_root

SLUG = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"
ROW_ID = "row_id"  # the id agencyml makes for a table without one (pipelines.data.row_ids)


class ParamsError(ValueError):
    """A params file is missing, unreadable or invalid; the message names the file and key."""


class UnknownAgencyError(LookupError):
    """No params file exists for the agency asked for."""


class UnknownUseCaseError(LookupError):
    """The agency has no use case of that name."""


class UnknownDatasetError(LookupError):
    """The agency has no dataset of that name."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def label_as_written(value: object) -> object:
    """A label YAML read as true or false was an unquoted yes, no, on, off, true or false:
    refused, since its text (and which of them was written) is gone."""
    if isinstance(value, bool):
        raise ValueError(
            f"YAML reads an unquoted yes, no, on, off, true or false as {str(value).lower()}, "
            'not as text: put the label in quotes, e.g. "yes"'
        )
    return value


class TableFormat(Strict):
    """How a table file is read. Everything is sniffed from the file's content unless set here;
    the file may have any name or extension."""

    format: Literal["auto", "csv", "parquet", "excel", "jsonl"] = Field(
        default="auto", description="auto: parquet, Excel (.xlsx), JSON lines or delimited text."
    )
    separator: str | None = Field(
        default=None, description="Text: one character, or 'whitespace' for runs of spaces."
    )
    quote: str = Field(default='"', min_length=1, max_length=1)
    encoding: str | None = Field(default=None, description="Text: default UTF-8 (BOM skipped).")
    header: bool | None = Field(
        default=None, description="Text: whether the first row names the columns."
    )
    skip_initial_space: bool | None = Field(
        default=None, description="Text: drop spaces after a separator (', ' files)."
    )
    decimal: str = Field(default=".", min_length=1, max_length=1)
    thousands: str | None = Field(default=None, min_length=1, max_length=1)
    sheet: str | int = Field(default=0, description="Excel: the sheet's name or position.")

    @model_validator(mode="after")
    def _text_options_fit(self) -> TableFormat:
        if self.separator not in (None, "whitespace") and len(self.separator) != 1:
            raise ValueError(
                f"separator '{self.separator}' must be one character (';', '\\t', '|') "
                "or 'whitespace'"
            )
        if self.thousands is not None and self.thousands == self.decimal:
            raise ValueError(f"thousands and decimal are both '{self.decimal}'")
        if self.encoding is not None:
            try:
                codecs.lookup(self.encoding)
            except LookupError:
                raise ValueError(
                    f"unknown encoding '{self.encoding}'; for example utf-8, latin-1, cp1252"
                ) from None
        return self


class FileSource(TableFormat):
    """A table an agency brings (read as its format options say), or the RASFF export."""

    kind: Literal["file"] = "file"
    reader: Literal["table", "csv", "parquet", "rasff"] = Field(
        default="table", description="table: any format; csv and parquet fix the format."
    )
    path: Path = Field(description="Relative to the project root.")

    def table_format(self) -> TableFormat:
        """The read options, with the format a 'csv' or 'parquet' reader implies."""
        implied = {"csv": "csv", "parquet": "parquet"}.get(self.reader)
        options = self.model_dump(include=set(TableFormat.model_fields))
        if implied and self.format == "auto":
            options["format"] = implied
        return TableFormat.model_validate(options)

    def resolved_path(self) -> Path:
        return self.path if self.path.is_absolute() else project_root() / self.path


class GeneratorSource(Strict):
    """Synthetic data from a seeded generator in pipelines.data.sources."""

    kind: Literal["generator"] = "generator"
    generator: Literal["business-aid"]
    rows: int = Field(gt=0)
    seed: int = 0


Source = Annotated[FileSource | GeneratorSource, Field(discriminator="kind")]


class Features(Strict):
    """Feature columns by kind; the transform is fitted on training rows only."""

    numeric: list[str] = []
    categorical: list[str] = []
    text: list[str] = []
    date: list[str] = []
    min_category_count: int = Field(default=5, ge=1, description="Rarer values become 'other'.")
    text_hash_features: int = Field(default=4096, ge=16, le=1 << 20)
    text_ngram_max: int = Field(default=2, ge=1, le=3)
    date_formats: dict[str, str] = Field(
        default_factory=dict,
        description="How a date column is written, as a strftime format: {received: '%d/%m/%Y'}, "
        "or '%s' for integer seconds since 1970 (numbers are dates only so declared). Without "
        "one, a column must read the same day-first and month-first (ISO 8601 does).",
    )
    dayfirst: bool = Field(
        default=False, description="Date columns without a format put the day before the month."
    )

    @model_validator(mode="after")
    def _columns_are_distinct(self) -> Features:
        columns = self.all_columns()
        if not columns:
            raise ValueError("declare at least one feature column")
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise ValueError(f"columns listed under more than one kind: {duplicated}")
        for column, date_format in self.date_formats.items():
            if "%" not in date_format:
                raise ValueError(
                    f"date_formats.{column}: '{date_format}' is not a strftime format; write "
                    "it with directives such as '%d/%m/%Y' or '%Y-%m-%d %H:%M'"
                )
        return self

    def all_columns(self) -> list[str]:
        return [*self.numeric, *self.categorical, *self.text, *self.date]

    def date_format_of(self) -> dict[str, str]:
        """How each date column is read: its declared format, else 'dayfirst' if set."""
        fallback = {column: "dayfirst" for column in self.date} if self.dayfirst else {}
        return {**fallback, **self.date_formats}


class LightGBMParams(Strict):
    """LightGBM hyper-parameters, under LightGBM's own names."""

    num_iterations: int = Field(default=1000, gt=0)
    learning_rate: float = Field(default=0.05, gt=0, le=1)
    num_leaves: int = Field(default=31, gt=1)
    max_depth: int = -1
    min_data_in_leaf: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l1: float = Field(default=0.0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    min_gain_to_split: float = Field(default=0.0, ge=0)
    cat_smooth: float = Field(default=10.0, ge=0)
    is_unbalance: bool = False
    early_stopping_round: int = Field(default=50, gt=0)
    # agencyml's own: after early stopping picks the number of trees on the validation rows,
    # refit on the training and validation rows together (see docs/modeling.md)
    refit_on_validation: bool = True
    seed: int = 42
    num_threads: int = Field(default=2, ge=1)
    deterministic: bool = True


class TimeSplit(Strict):
    """The newest rows are the holdout; the ones before them validate early stopping."""

    method: Literal["time"] = "time"
    date_column: str
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    holdout_fraction: float = Field(default=0.15, gt=0, lt=0.5)


class RandomSplit(Strict):
    """A seeded, stratified random split, for data without a date column."""

    method: Literal["random"] = "random"
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    holdout_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    seed: int = 42


Split = Annotated[TimeSplit | RandomSplit, Field(discriminator="method")]


class ThresholdPolicy(Strict):
    """Binary: flag rows whose probability reaches the threshold.

    Multiclass: route to the top class when its probability reaches the threshold, else to the
    fallback decision."""

    kind: Literal["threshold"] = "threshold"
    threshold: float = Field(ge=0, le=1)
    flag_label: str = "flag"
    pass_label: str = "pass"
    fallback_label: str = "manual_review"

    _labels_as_written = field_validator(
        "flag_label", "pass_label", "fallback_label", mode="before"
    )(label_as_written)


class CapacityPolicy(Strict):
    """Binary only: flag the top k rows of each batch, e.g. the inspections a team can do."""

    kind: Literal["capacity"] = "capacity"
    top_k: int = Field(gt=0)
    flag_label: str = "flag"
    pass_label: str = "pass"

    _labels_as_written = field_validator("flag_label", "pass_label", mode="before")(
        label_as_written
    )


class TargetPrecisionPolicy(Strict):
    """Binary only: flag rows above the lowest threshold whose precision on the validation
    rows reaches the target. Training resolves the threshold and stores it with the model."""

    kind: Literal["target_precision"] = "target_precision"
    precision: float = Field(gt=0, le=1)
    flag_label: str = "flag"
    pass_label: str = "pass"
    threshold: float | None = Field(
        default=None, ge=0, le=1, description="Set by training; leave it out of params."
    )

    _labels_as_written = field_validator("flag_label", "pass_label", mode="before")(
        label_as_written
    )


DecisionPolicy = Annotated[
    ThresholdPolicy | CapacityPolicy | TargetPrecisionPolicy, Field(discriminator="kind")
]

# Holdout metrics a gate can compare, and which way is better.
BINARY_METRICS = (
    "roc_auc",
    "pr_auc",
    "log_loss",
    "brier",
    "f1_at_policy",
    "recall_at_policy",
    "precision_at_policy",
)
MULTICLASS_METRICS = ("macro_f1", "weighted_f1", "accuracy", "log_loss")
LOWER_IS_BETTER = frozenset({"log_loss", "brier"})


class Calibration(Strict):
    """Optional probability calibration, fitted on a calibration split carved from training."""

    method: Literal["none", "isotonic", "sigmoid"] = "none"
    fraction: float = Field(
        default=0.1, gt=0, lt=0.5, description="Share of the training rows set aside for it."
    )


class Slices(Strict):
    """Columns whose values define groups to report metrics for, with a disparity limit."""

    columns: list[str] = []
    min_rows: int = Field(default=30, ge=1, description="Smaller groups are pooled as (other).")
    min_positives: int = Field(
        default=10, ge=1, description="Binary: groups with fewer positives get no recall ratio."
    )
    max_recall_ratio: float | None = Field(
        default=None, gt=1, description="Largest allowed max/min recall ratio across groups."
    )


class Drift(Strict):
    """How far a scored batch may move from the training reference before it is flagged.
    PSI per feature and of the score distribution; 0.1 and 0.25 are the usual rules of thumb."""

    warn: float = Field(default=0.1, gt=0)
    alert: float = Field(default=0.25, gt=0)
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins per numeric column.")

    @model_validator(mode="after")
    def _alert_above_warn(self) -> Drift:
        if self.alert < self.warn:
            raise ValueError("drift.alert must be at least drift.warn")
        return self


class Promotion(Strict):
    """When a new version (the challenger) replaces the champion."""

    primary_metric: str | None = Field(
        default=None, description="Default: roc_auc (binary) or macro_f1 (multiclass)."
    )
    min_improvement: float = Field(
        default=0.0, ge=0, description="The challenger must beat the champion by more than this."
    )
    floors: dict[str, float] = Field(
        default_factory=dict, description="Absolute limits: minimums, or maximums for losses."
    )
    require_approval: bool = Field(
        default=False, description="A person must run `agencyml approve` after the gate passes."
    )
    must_beat_baselines: bool = Field(
        default=True,
        description="Hold a version whose primary metric does not beat the best baseline (class "
        "prior, logistic regression) on the same holdout; false reports the comparison only.",
    )


class RowBounds(Strict):
    min: int = Field(default=1, ge=0)
    max: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> RowBounds:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class ColumnRule(Strict):
    """A value range (numbers and dates) or an allowed set (categories) for one column."""

    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> ColumnRule:
        if self.min is not None and self.max is not None and self.max < self.min:
            raise ValueError(f"max ({self.max}) is below min ({self.min})")
        return self


class Freshness(Strict):
    """Dates may not lie in the future; optionally the newest must be recent."""

    allow_future_days: int = Field(default=1, ge=0)
    max_age_days: int | None = Field(default=None, gt=0)


class Expectations(Strict):
    """What the data must look like, for training and for scoring batches.

    Row-level failures (nulls in required columns, out-of-range values, unseen categories,
    future dates) send rows to quarantine; the rest reject the whole batch."""

    required: list[str] = Field(default=[], description="Columns that may not be null.")
    columns: dict[str, ColumnRule] = {}
    batch_rows: RowBounds = RowBounds(min=1, max=10_000_000)
    freshness: Freshness = Freshness()
    unseen_categories: Literal["accept", "quarantine"] = Field(
        default="accept",
        description="Scoring: what happens to category values the model never saw in training.",
    )
    range_tolerance: float = Field(
        default=0.5, ge=0, description="Scoring: training ranges widened by this share of span."
    )
    max_quarantine_fraction: float = Field(default=0.05, ge=0, le=1)
    max_text_length: int = Field(
        default=10_000, gt=0, description="Longer ids, categories or texts are quarantined."
    )


class Orchestration(Strict):
    """When the deployed flows run, and for how long: prefect.yaml is written from this."""

    train_cron: str | None = Field(
        default=None, description="Cron for the training deployment; none: on demand only."
    )
    timezone: str = Field(default="UTC", description="IANA time zone the cron is read in.")
    inbox_poll_seconds: int = Field(
        default=60, ge=5, description="How often the inbox deployment looks for new batches."
    )
    inbox_settle_seconds: float = Field(
        default=10,
        ge=0,
        description="A batch file must be unchanged this long before it is picked up.",
    )
    train_timeout_minutes: float = Field(default=120, gt=0)
    score_timeout_minutes: float = Field(default=120, gt=0)
    score_concurrency: int = Field(
        default=2, ge=1, description="Scoring runs of this use case at once (training: one)."
    )

    @model_validator(mode="after")
    def _schedule_is_valid(self) -> Orchestration:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone '{self.timezone}' is not an IANA time zone like 'Europe/Copenhagen'"
            ) from None
        if self.train_cron is not None:
            from prefect.client.schemas.schedules import CronSchedule

            try:
                CronSchedule(cron=self.train_cron, timezone=self.timezone)
            except ValueError:
                raise ValueError(
                    f"train_cron '{self.train_cron}' is not a 5-field cron like '0 3 * * 1' "
                    "(minute hour day month weekday)"
                ) from None
        return self


class Execution(Strict):
    """Where the heavy work runs: in the flow's own process, or on a Dask cluster."""

    engine: Literal["local", "dask"] = "local"
    scheduler: str | None = Field(
        default=None,
        description="Dask only: the scheduler's address (tcp://host:8786); "
        "none starts a LocalCluster for the run.",
    )
    workers: int = Field(
        default=2, ge=1, description="Dask without a scheduler: worker processes to start."
    )

    @model_validator(mode="after")
    def _scheduler_fits_engine(self) -> Execution:
        if self.scheduler is not None:
            if self.engine != "dask":
                raise ValueError("execution.scheduler applies to engine 'dask' only")
            if not re.match(r"^(tcp|tls|inproc|ucx)://\S+$", self.scheduler):
                raise ValueError(
                    f"execution.scheduler '{self.scheduler}' is not a Dask address like "
                    "'tcp://10.0.0.5:8786'"
                )
        return self


class UseCaseAlerts(Strict):
    """When a scored batch is worth a message to the agency (pipelines.orchestration.alerts)."""

    quarantined_fraction_above: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        description="Alert when more than this share of a published batch's rows was "
        "quarantined; a batch above expectations.max_quarantine_fraction is rejected instead.",
    )


class AgencyAlerts(Strict):
    """Where an agency's alerts are posted: `agencyml deploy` points Prefect automations at it."""

    webhook_url: str | None = Field(
        default=None,
        description="An http(s) URL that takes a JSON POST ({'subject', 'text'}), e.g. a "
        "Slack, Teams or Mattermost incoming webhook; none: events only, nothing posted.",
    )

    @field_validator("webhook_url")
    @classmethod
    def _is_http_url(cls, url: str | None) -> str | None:
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"'{url}' is not an http(s) URL like https://hooks.example.org/services/T0/B0"
            )
        return url


class UseCase(Strict):
    """One model: its data, columns, task, hyper-parameters, split and decision policy."""

    description: str = ""
    dataset: str = Field(description="One of the agency's datasets: the rows it trains on.")
    id_column: str | None = Field(
        default=None,
        description="A column with one value per row. Without one, agencyml makes 'row_id' "
        "from each row's values (and its ordinal among identical rows).",
    )
    target: str
    task: Literal["binary", "multiclass"]
    positive_class: str | int | None = Field(
        default=None, description="Binary only: the target value that counts as positive."
    )
    features: Features
    lightgbm: LightGBMParams = LightGBMParams()
    split: Split
    decision: DecisionPolicy
    calibration: Calibration = Calibration()
    slices: Slices = Slices()
    promotion: Promotion = Promotion()
    drift: Drift = Drift()
    target_missing: Literal["quarantine", "drop", "fail"] = Field(
        default="quarantine",
        description="Training rows without a label: set aside in the quarantine (counted on "
        "the run and the card), dropped (counted), or fail the training data.",
    )
    min_training_rows: int = Field(default=100, ge=10)
    expectations: Expectations = Expectations()
    orchestration: Orchestration = Orchestration()
    execution: Execution = Execution()
    alerts: UseCaseAlerts = UseCaseAlerts()
    batch_format: TableFormat = Field(
        default_factory=TableFormat,
        description="How the batches sent for scoring are read (sniffed unless set).",
    )

    _positive_class_as_written = field_validator("positive_class", mode="before")(label_as_written)

    @property
    def row_key(self) -> str:
        """The column that identifies a row: the declared id, or the one agencyml makes."""
        return self.id_column or ROW_ID

    @property
    def primary_metric(self) -> str:
        default = "roc_auc" if self.task == "binary" else "macro_f1"
        return self.promotion.primary_metric or default

    @property
    def gate_metrics(self) -> tuple[str, ...]:
        return BINARY_METRICS if self.task == "binary" else MULTICLASS_METRICS

    @model_validator(mode="after")
    def _is_consistent(self) -> UseCase:
        features = self.features.all_columns()
        known = {self.row_key, self.target, *features}
        named = [*self.expectations.required, *self.expectations.columns]
        unknown = sorted({column for column in named if column not in known})
        if unknown:
            raise ValueError(
                f"expectations name columns that are neither id, target nor features: {unknown}"
            )
        for column, rule in self.expectations.columns.items():
            if rule.allowed is not None and column not in [*self.features.categorical, self.target]:
                raise ValueError(
                    f"expectations.columns.{column}.allowed applies to categorical features "
                    "and the target only"
                )
            bounded = rule.min is not None or rule.max is not None
            if bounded and column not in self.features.numeric:
                raise ValueError(
                    f"expectations.columns.{column}.min/max apply to numeric features only"
                )
        for column in (self.row_key, self.target):
            if column in features:
                raise ValueError(f"'{column}' is the id or target and cannot also be a feature")
        dated = {
            *self.features.date,
            *([self.split.date_column] if self.split.method == "time" else []),
        }
        stray = sorted(set(self.features.date_formats) - dated)
        if stray:
            raise ValueError(
                f"features.date_formats names {stray}, which are neither date features nor the "
                "split's date_column"
            )
        if self.task == "binary" and self.positive_class is None:
            raise ValueError("a binary use case needs 'positive_class'")
        if self.task == "multiclass" and self.positive_class is not None:
            raise ValueError("'positive_class' applies to binary use cases only")
        if self.task == "multiclass" and not isinstance(self.decision, ThresholdPolicy):
            raise ValueError(f"a {self.decision.kind} policy applies to binary use cases only")
        if isinstance(self.decision, TargetPrecisionPolicy) and self.decision.threshold is not None:
            raise ValueError("decision.threshold of a target_precision policy is set by training")
        for name in [self.primary_metric, *self.promotion.floors]:
            if name not in self.gate_metrics:
                raise ValueError(
                    f"promotion names metric '{name}', which a {self.task} model does not "
                    f"report; use one of {', '.join(self.gate_metrics)}"
                )
        if self.target in self.slices.columns:
            raise ValueError(f"slices.columns cannot include the target '{self.target}'")
        if isinstance(self.split, TimeSplit) and self.split.date_column not in self.features.date:
            raise ValueError(
                f"split.date_column '{self.split.date_column}' must be listed in features.date"
            )
        alert_at = self.alerts.quarantined_fraction_above
        reject_at = self.expectations.max_quarantine_fraction
        if "quarantined_fraction_above" in self.alerts.model_fields_set and alert_at >= reject_at:
            raise ValueError(
                f"alerts.quarantined_fraction_above ({alert_at}) must be below "
                f"expectations.max_quarantine_fraction ({reject_at}): a batch quarantining "
                "more is rejected as a whole (and alerted as rejected), so it could never fire"
            )
        return self

    def required_columns(self, with_target: bool) -> list[str]:
        """The columns a table must bring (not the row_id agencyml makes)."""
        columns = [*([self.id_column] if self.id_column else []), *self.features.all_columns()]
        return [*columns, self.target] if with_target else columns


class AgencyParams(Strict):
    """An agency and its use cases, as written in params/<agency>.yaml."""

    agency: str = Field(pattern=SLUG)
    description: str = ""
    alerts: AgencyAlerts = AgencyAlerts()
    datasets: dict[str, Source] = Field(
        min_length=1, description="Raw sources; each is ingested to one DVC-tracked parquet file."
    )
    use_cases: dict[str, UseCase] = Field(min_length=1)

    @model_validator(mode="after")
    def _names_are_slugs_and_datasets_exist(self) -> AgencyParams:
        for kind, names in (("use-case", self.use_cases), ("dataset", self.datasets)):
            bad = [name for name in names if not re.match(SLUG, name)]
            if bad:
                raise ValueError(f"{kind} names must be lower-case slugs like 'risk-triage': {bad}")
        for name, use_case in self.use_cases.items():
            if use_case.dataset not in self.datasets:
                known = ", ".join(sorted(self.datasets))
                raise ValueError(
                    f"use case '{name}' trains on dataset '{use_case.dataset}', which is not "
                    f"declared under 'datasets' (declared: {known})"
                )
        return self

    def dataset(self, name: str) -> DatasetSpec:
        if name not in self.datasets:
            known = ", ".join(sorted(self.datasets)) or "none"
            raise UnknownDatasetError(
                f"agency '{self.agency}' has no dataset '{name}'. Known datasets: {known}"
            )
        return DatasetSpec(agency=self.agency, name=name, source=self.datasets[name])

    def use_case(self, name: str) -> UseCaseSpec:
        if name not in self.use_cases:
            known = ", ".join(sorted(self.use_cases)) or "none"
            raise UnknownUseCaseError(
                f"agency '{self.agency}' has no use case '{name}'. Known use cases: {known}"
            )
        params = self.use_cases[name]
        return UseCaseSpec(
            agency=self.agency, name=name, params=params, data=self.dataset(params.dataset)
        )


class DatasetSpec(Strict):
    """A raw source of an agency, and where its ingested, DVC-tracked table lives."""

    agency: str
    name: str
    source: Source

    @property
    def path(self) -> str:
        """The ingested table, relative to the project root (as dvc.yaml names it)."""
        return f"data/ingested/{self.agency}/{self.name}.parquet"

    def resolved_path(self) -> Path:
        return project_root() / self.path

    @property
    def stage(self) -> str:
        """The dvc.yaml stage that writes it."""
        return f"ingest@{self.agency}-{self.name}"


class UseCaseSpec(Strict):
    """A use case together with the agency it belongs to and the dataset it trains on."""

    agency: str
    name: str
    params: UseCase
    data: DatasetSpec

    @property
    def model_name(self) -> str:
        return f"{self.agency}.{self.name}"


def params_dir() -> Path:
    return project_root() / "params"


def list_agencies(directory: Path | None = None) -> list[str]:
    """Agency names, one per params/<agency>.yaml file."""
    directory = directory or params_dir()
    return sorted(path.stem for path in directory.glob("*.yaml"))


def load_params(agency: str, directory: Path | None = None) -> AgencyParams:
    """Load and validate params/<agency>.yaml; errors name the file and the key."""
    directory = directory or params_dir()
    path = directory / f"{agency}.yaml"
    if not path.is_file():
        if path.with_suffix(".yml").is_file():
            raise UnknownAgencyError(
                f"unknown agency '{agency}': its params are named {path.with_suffix('.yml').name}"
                f", but agencyml reads only .yaml files in params/: rename it {path.name}"
            )
        known = ", ".join(list_agencies(directory)) or "none"
        raise UnknownAgencyError(f"unknown agency '{agency}': no {path}. Known agencies: {known}")
    params = parse_params_file(path)
    if params.agency != agency:
        raise ParamsError(
            f"{path}: key 'agency' is '{params.agency}' but the file is named '{agency}.yaml'; "
            "rename the file or fix the key"
        )
    return params


def parse_params_file(path: Path) -> AgencyParams:
    """Validate one params file without checking its name."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        raise ParamsError(f"{path}: cannot read the file: {error}") from error
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML: {error}") from error
    if raw is None:
        raise ParamsError(
            f"{path}: the file is empty; write the agency's params in it, draft them with "
            f"`agencyml new-agency {path.stem} --from TABLE --force`, or remove the file"
        )
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping with 'agency' and 'use_cases' at the top")
    try:
        return AgencyParams.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(describe_validation_error(path, error)) from error


# pydantic puts a tagged union's tag in an error's location ('split.time.seed'); the file
# has no such key, so it is left out of the key we report.
UNION_TAGS = {
    "split": {"time", "random"},
    "decision": {"threshold", "capacity", "target_precision"},
}
SOURCE_TAGS = {"file", "generator"}


def key_as_written(location: tuple[int | str, ...]) -> str:
    def is_tag(index: int, part: int | str) -> bool:
        if index == 2 and location[0] == "datasets":  # datasets.<name>.<tag>
            return part in SOURCE_TAGS
        return index > 0 and part in UNION_TAGS.get(str(location[index - 1]), ())

    parts = [str(part) for index, part in enumerate(location) if not is_tag(index, part)]
    return ".".join(parts) or "(top level)"


def describe_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: {error.error_count()} invalid setting(s):"]
    for problem in error.errors():
        key = key_as_written(problem["loc"])
        message = problem["msg"]
        if problem["type"] == "extra_forbidden":
            message = "unknown key; check its spelling against the documented params"
        lines.append(f"  - {key}: {message}")
    return "\n".join(lines)


def load_use_case(agency: str, use_case: str) -> UseCaseSpec:
    """The one call a flow makes first: bad params or names fail here, before any work."""
    return load_params(agency).use_case(use_case)


def load_all_params() -> list[AgencyParams]:
    """Every agency's params, by name. One invalid file stops the command whichever agency it
    was run for (dvc.yaml and prefect.yaml are written from all of them), and the error says so."""
    loaded = []
    for agency in list_agencies():
        try:
            loaded.append(load_params(agency))
        except ParamsError as error:
            raise ParamsError(
                f"{error}\nThis command reads every file in params/: fix {agency}.yaml, or move "
                "it out of params/ while it is a draft."
            ) from error
    return loaded


def list_use_cases() -> list[UseCaseSpec]:
    """Every use case of every agency, in a stable order."""
    return [
        params.use_case(name) for params in load_all_params() for name in sorted(params.use_cases)
    ]


def list_datasets() -> list[DatasetSpec]:
    """Every dataset of every agency, in a stable order."""
    return [
        params.dataset(name) for params in load_all_params() for name in sorted(params.datasets)
    ]
