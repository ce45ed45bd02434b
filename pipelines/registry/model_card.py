"""A model card per registered version, in Markdown and self-contained HTML.

`collect_card_facts` gathers what the registry, the training run, the params and the audit log
say about one version into a plain dict (JSON types only, so it can be archived as is).
`render_markdown` and `render_html` draw the same sections from that dict: both are built from
one list of sections, so the two formats cannot say different things. Anything the records do
not hold is shown as "not recorded" rather than guessed.

MLflow is read through `MlflowClient` (via pipelines.registry.trace) after `tracking.configure`,
since the card only reads what tracking.py wrote."""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from pipelines import hashlog
from pipelines.config import LOWER_IS_BETTER, AgencyParams, UseCase, load_params
from pipelines.durable import file_lock
from pipelines.paths import StateDir
from pipelines.registry import trace
from pipelines.registry.tracking import ModelNotFoundError

NOT_RECORDED = "not recorded"
EVALUATION_REPORT = "evaluation/report.json"
BASELINES = ("class_prior", "logistic_regression")
SMALL_HOLDOUT_ROWS = 1000
DATASET_COLUMNS = (
    ("dataset", "name"),
    ("DVC path", "dvc_path"),
    ("md5", "md5"),
    ("DVC status", "dvc_status"),
    ("DVC remote", "dvc_remote"),
    ("remote URL", "dvc_remote_url"),
    ("source", "source"),
    ("rows", "rows"),
)
AUDIT_COLUMNS = ("time", "action", "alias", "from → to", "by", "reason", "gate")


# --- collecting --------------------------------------------------------------------------------


def collect_card_facts(
    model_name: str, version: str, state: StateDir, params: AgencyParams | None = None
) -> dict[str, Any]:
    """Everything the card says about one version, from the registry, its training run (params,
    metrics, tags, evaluation/report.json when logged), the agency's params (`params`, or
    params/<agency>.yaml) and the registry's audit log. Raises ModelNotFoundError."""
    client = trace.client_for(state)
    found = trace.get_version(client, model_name, str(version))
    if found is None:
        raise ModelNotFoundError(trace.unknown_version_message(client, model_name, version, state))
    notes: list[str] = []
    run_id = found.run_id or found.tags.get("agencyml.run_id") or ""
    run = trace.get_run(client, run_id) if run_id else None
    if run is None:
        notes.append(f"training run '{run_id}' is not in MLflow: facts come from version tags")
    tags = {**found.tags, **(run.data.tags if run else {})}
    agency, use_case = names_of(model_name, tags)
    report = evaluation_report(client, run, notes)
    recorded = trace.read_json_artifact(client, run_id, trace.USE_CASE_PARAMS) if run else None
    current = agency_params(agency, params, notes)
    return {
        "model": model_facts(found, run),
        "agency": {"name": agency, "description": current.description if current else None},
        "use_case": use_case_facts(use_case, recorded, current),
        "policy": report.get("policy") or policy_of(use_case, recorded, current),
        "data": data_facts(run, tags, report),
        "metrics": report.get("metrics") or (dict(run.data.metrics) if run else {}),
        "baselines": report.get("baselines") or {},
        "classes": report.get("classes"),
        "slices": report.get("slices"),
        "calibration": report.get("calibration") or calibration_from_params(run),
        "registry": registry_facts(found.tags),
        "audit": audit_events(state, model_name, str(version), found.tags, notes),
        "provenance": provenance_facts(tags, run_id),
        "evaluation_report": EVALUATION_REPORT if report else None,
        "limitations": [],
        "notes": notes,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def names_of(model_name: str, tags: dict[str, str]) -> tuple[str, str]:
    """Agency and use case: from the run's tags, else from the '<agency>.<use case>' name."""
    agency, _, use_case = model_name.partition(".")
    return tags.get("agencyml.agency", agency), tags.get("agencyml.use_case", use_case)


def evaluation_report(client: MlflowClient, run: Run | None, notes: list[str]) -> dict[str, Any]:
    if run is None:
        return {}
    report = trace.read_json_artifact(client, run.info.run_id, EVALUATION_REPORT)
    if report is None:
        notes.append(
            f"the training run has no {EVALUATION_REPORT}: baselines, slices, calibration and "
            "the training window are not recorded"
        )
    return report or {}


def agency_params(
    agency: str, params: AgencyParams | None, notes: list[str]
) -> AgencyParams | None:
    if params is not None:
        return params
    try:
        return load_params(agency)
    except (LookupError, ValueError, OSError) as error:
        notes.append(f"params/{agency}.yaml could not be read now: {error}")
        return None


def model_facts(found: ModelVersion, run: Run | None) -> dict[str, Any]:
    return {
        "name": found.name,
        "version": str(found.version),
        "aliases": list(found.aliases),
        "registered": trace.timestamp(found.creation_timestamp),
        "run_id": found.run_id or found.tags.get("agencyml.run_id"),
        "experiment_id": run.info.experiment_id if run else None,
        "ui_path": trace.version_ui_path(found.name, str(found.version)),
    }


def use_case_facts(
    use_case: str, recorded: dict[str, Any] | None, current: AgencyParams | None
) -> dict[str, Any]:
    """What the use case is for: as the training run recorded it, else as params say now."""
    spec = current.use_cases.get(use_case) if current else None
    source = recorded or (spec.model_dump(mode="json") if spec else {})
    return {
        "name": use_case,
        "description": source.get("description"),
        "task": source.get("task"),
        "target": source.get("target"),
        "positive_class": source.get("positive_class"),
        "primary_metric": primary_metric_of(source),
        "params_source": (
            f"training run artifact {trace.USE_CASE_PARAMS}"
            if recorded
            else ("current params file" if spec else None)
        ),
    }


def primary_metric_of(use_case: dict[str, Any]) -> str | None:
    """The metric the gate compared, as the params define it (the default follows the task)."""
    try:
        return UseCase.model_validate(use_case).primary_metric
    except ValidationError:
        return None  # params this code no longer reads: the card does not guess


def policy_of(
    use_case: str, recorded: dict[str, Any] | None, current: AgencyParams | None
) -> dict[str, Any] | None:
    if recorded and recorded.get("decision"):
        return recorded["decision"]
    spec = current.use_cases.get(use_case) if current else None
    return spec.decision.model_dump(mode="json") if spec else None


def data_facts(run: Run | None, tags: dict[str, str], report: dict[str, Any]) -> dict[str, Any]:
    inputs = {d.dataset.name: d.dataset.digest for d in run.inputs.dataset_inputs} if run else {}
    datasets = [
        {"name": name, **fields, "mlflow_digest": inputs.get(name)}
        for name, fields in sorted(trace.dataset_tags(tags).items())
    ]
    return {
        "datasets": datasets,
        "training_window": report.get("training_window"),
        "split_sizes": report.get("split_sizes") or split_sizes_from_params(run),
        "fitting": report.get("fitting"),
        "unlabelled": report.get("unlabelled"),
    }


def split_sizes_from_params(run: Run | None) -> dict[str, int] | None:
    """Training logs rows.<split> params; older runs without a report still have them."""
    if run is None:
        return None
    sizes = {
        key.removeprefix("rows."): int(value)
        for key, value in run.data.params.items()
        if key.startswith("rows.") and value.isdigit()
    }
    return sizes or None


def calibration_from_params(run: Run | None) -> dict[str, Any] | None:
    """Without a report, the calibration method the run was trained with (before/after unknown)."""
    method = run.data.params.get("calibration.method") if run else None
    if method is None:
        return None
    return {"method": None if method == "none" else method, "before": None, "after": None}


def registry_facts(version_tags: dict[str, str]) -> dict[str, Any]:
    return {
        "gate_decision": version_tags.get("agencyml.gate.decision"),
        "gate_reason": version_tags.get("agencyml.gate.reason"),
        "approval": trace.person_tags(version_tags, "agencyml.approval"),
        "rejected": trace.person_tags(
            version_tags, "agencyml.rejection", older="agencyml.rejected"
        ),
    }


def audit_events(
    state: StateDir,
    model_name: str,
    version: str,
    version_tags: dict[str, str],
    notes: list[str],
) -> list[dict[str, Any]]:
    """Events of this version from <state>/registry/audit.jsonl (it may not exist). When the log
    holds none, the summaries the registry also tags on the version are used instead."""
    path = state.root / "registry" / "audit.jsonl"
    events: list[dict[str, Any]] = []
    if path.is_file():
        with file_lock(hashlog.lock_path(path), shared=True):  # never a line half appended
            text = path.read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError:
                notes.append(f"{path}, line {number}: not JSON, left out of the audit trail")
                continue
            if isinstance(event, dict) and concerns(event, model_name, version):
                events.append(event)
    if not events:
        tagged = [
            trace.loads_or_text(value)
            for key, value in sorted(version_tags.items())
            if key.startswith("agencyml.audit.")
        ]
        events = [event for event in tagged if isinstance(event, dict)]
        if events:
            notes.append(f"audit trail read from the version's tags ({path} has no events)")
    return events


def concerns(event: dict[str, Any], model_name: str, version: str) -> bool:
    """The event is about this model and this version (it moved an alias to or from it)."""
    if event.get("model") != model_name:
        return False
    touched = {event.get("version"), event.get("to_version"), event.get("from_version")}
    return version in {str(v) for v in touched if v is not None}


def provenance_facts(tags: dict[str, str], run_id: str) -> dict[str, Any]:
    return {
        "git_commit": tags.get("agencyml.git_commit"),
        "git_dirty": tags.get("agencyml.git_dirty"),
        "params_sha256": tags.get("agencyml.params_sha256"),
        "model_sha256": tags.get("agencyml.model_sha256"),
        "run_id": run_id or None,
        "validation_result_id": tags.get("agencyml.validation_result_id"),
    }


def obj(value: Any) -> dict[str, Any]:
    """A facts entry that should be an object; anything else (absent, or a report written
    differently) reads as empty, so the card says 'not recorded' instead of failing."""
    return value if isinstance(value, dict) else {}


def seq(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# --- limitations ------------------------------------------------------------------------------


def generated_limitations(facts: dict[str, Any]) -> list[str]:
    """Limitations that follow from the recorded facts, then any written in facts['limitations']."""
    found: list[str] = []
    datasets = [d for d in seq(obj(facts.get("data")).get("datasets")) if isinstance(d, dict)]
    for dataset in datasets:
        source = str(dataset.get("source") or "")
        if source.startswith("generator:"):
            found.append(
                f"Trained on synthetic data ({source}): performance on real cases is unknown."
            )
        status = dataset.get("dvc_status")
        if status and status != "tracked":
            found.append(
                f"The training data {dataset.get('dvc_path') or dataset.get('name')} is not the "
                f"version DVC records (status: {status}): it cannot be fetched from a DVC remote."
            )
    provenance = obj(facts.get("provenance"))
    commit = provenance.get("git_commit")
    if str(provenance.get("git_dirty")).lower() == "true":
        found.append(
            f"Trained from a working tree with uncommitted changes (commit {commit}): the exact "
            "code cannot be recovered from git."
        )
    if commit in (None, "unknown"):
        found.append("No git commit is recorded: the code that trained it cannot be identified.")
    shortfall = baseline_comparison(facts)
    if shortfall is not None and not shortfall[0]:
        found.append(f"Does not beat its best baseline: {shortfall[1]}.")
    absent = seq(obj(facts.get("classes")).get("absent"))
    if absent:
        found.append(
            f"No holdout rows for {', '.join(map(str, absent))}: how well it predicts "
            f"{'that class' if len(absent) == 1 else 'those classes'} is not measured."
        )
    slices = facts.get("slices")
    if isinstance(slices, dict):
        undefined = undefined_ratios(slices)
        for column, note in undefined.items():
            found.append(f"Groups of {column} cannot be compared: {note}.")
        flagged = [c for c in seq(slices.get("flagged_columns")) if c not in undefined]
        if flagged or (slices.get("passed") is False and not undefined):
            which = ", ".join(map(str, flagged)) or "see the slice table"
            found.append(f"Performance differs across groups beyond the set limit ({which}).")
    holdout = holdout_rows(facts)
    if holdout is not None and holdout < SMALL_HOLDOUT_ROWS:
        found.append(
            f"Small holdout ({holdout:,} rows, under {SMALL_HOLDOUT_ROWS:,}): the metrics are "
            "uncertain."
        )
    calibration = facts.get("calibration")
    if isinstance(calibration, dict) and calibration.get("method") in (None, "", "none"):
        found.append(
            "Probabilities are not calibrated: read scores as a ranking, not as probabilities."
        )
    return found + [str(item) for item in seq(facts.get("limitations"))]


def undefined_ratios(slices: dict[str, Any]) -> dict[str, str]:
    """Columns whose recall ratio is recorded as null (undefined: a group has recall 0), each
    with the report's note on why."""
    notes = obj(slices.get("notes"))
    return {
        str(column): str(notes.get(column) or "recall ratio undefined, not within limits")
        for column, ratio in obj(slices.get("disparity")).items()
        if ratio is None
    }


def baseline_comparison(facts: dict[str, Any]) -> tuple[bool, str] | None:
    """Whether the primary metric beats the best baseline, and a sentence with both values;
    None when the records lack the metric or every baseline's value."""
    metric = obj(facts.get("use_case")).get("primary_metric")
    value = obj(facts.get("metrics")).get(metric)
    measured = {
        str(name): float(values[metric])
        for name, values in obj(facts.get("baselines")).items()
        if isinstance(values, dict) and is_number(values.get(metric))
    }
    if not is_number(value) or not measured:
        return None
    pick = min if metric in LOWER_IS_BETTER else max
    best = pick(measured, key=measured.__getitem__)
    gain = measured[best] - value if metric in LOWER_IS_BETTER else value - measured[best]
    verdict = "beats" if gain > 0 else "does not beat"
    return gain > 0, (
        f"{metric} {fmt(float(value))} {verdict} the best baseline, {best} {fmt(measured[best])}"
    )


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def holdout_rows(facts: dict[str, Any]) -> int | None:
    sizes = obj(obj(facts.get("data")).get("split_sizes"))
    value = sizes.get("holdout", obj(facts.get("metrics")).get("holdout_rows"))
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


# --- the card as sections ----------------------------------------------------------------------


@dataclass(frozen=True)
class Fields:
    items: list[tuple[str, str]]


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Bullets:
    items: list[str]


@dataclass(frozen=True)
class Para:
    text: str


Block = Fields | Table | Bullets | Para


@dataclass(frozen=True)
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)


def fmt(value: Any) -> str:
    """One way to show a value in both formats: 4 decimals for rates, thousands for counts."""
    if value is None or value == "":
        return NOT_RECORDED
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "n/a"
        if value.is_integer() and abs(value) >= 10:
            return f"{int(value):,}"
        return f"{value:.4f}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


def dataset_cell(dataset: dict[str, Any], key: str) -> str:
    """Tags are text: a row count of '60000' reads better as 60,000."""
    value = dataset.get(key)
    if key == "rows" and isinstance(value, str) and value.isdigit():
        return fmt(int(value))
    return fmt(value)


def title_of(facts: dict[str, Any]) -> str:
    model = obj(facts.get("model"))
    return f"Model card: {model.get('name', 'unknown model')} v{model.get('version', '?')}"


def header_fields(facts: dict[str, Any]) -> Fields:
    model = obj(facts.get("model"))
    return Fields(
        [
            ("Aliases", ", ".join(seq(model.get("aliases"))) or "none"),
            ("Registered", fmt(model.get("registered"))),
            ("Card generated", fmt(facts.get("generated_at"))),
        ]
    )


def card_sections(facts: dict[str, Any]) -> list[Section]:
    """The card's content, format-free: both renderers draw exactly these sections."""
    return [
        intended_use(facts),
        data_section(facts),
        metrics_section(facts),
        slices_section(facts),
        calibration_section(facts),
        policy_section(facts),
        Section("Limitations", [Bullets(generated_limitations(facts) or ["none identified"])]),
        audit_section(facts),
        provenance_section(facts),
    ]


def intended_use(facts: dict[str, Any]) -> Section:
    agency = obj(facts.get("agency"))
    use_case = obj(facts.get("use_case"))
    return Section(
        "Intended use and agency",
        [
            Fields(
                [
                    ("Agency", fmt(agency.get("name"))),
                    ("Agency description", fmt(agency.get("description"))),
                    ("Use case", fmt(use_case.get("name"))),
                    ("Intended use", fmt(use_case.get("description"))),
                    ("Task", fmt(use_case.get("task"))),
                    ("Target", fmt(use_case.get("target"))),
                    ("Positive class", fmt(use_case.get("positive_class"))),
                    ("Described by", fmt(use_case.get("params_source"))),
                ]
            )
        ],
    )


def data_section(facts: dict[str, Any]) -> Section:
    data = obj(facts.get("data"))
    datasets = [d for d in seq(data.get("datasets")) if isinstance(d, dict)]
    blocks: list[Block] = []
    if datasets:
        rows = [[dataset_cell(d, key) for _, key in DATASET_COLUMNS] for d in datasets]
        blocks.append(Table([title for title, _ in DATASET_COLUMNS], rows))
    else:
        blocks.append(Para(f"Data versions: {NOT_RECORDED}."))
    window = data.get("training_window")
    shown_window = (
        f"{fmt(window.get('start'))} to {fmt(window.get('end'))}"
        if isinstance(window, dict)
        else NOT_RECORDED
    )
    sizes = data.get("split_sizes")
    shown_sizes = (
        ", ".join(f"{name} {fmt(count)}" for name, count in sizes.items())
        if isinstance(sizes, dict) and sizes
        else NOT_RECORDED
    )
    fields = [
        ("Training window", shown_window),
        ("Split sizes (rows)", shown_sizes),
        ("Final model fitted on", fitting_cell(obj(data.get("fitting")))),
    ]
    fields.append(("Rows without a label", unlabelled_cell(obj(data.get("unlabelled")))))
    blocks.append(Fields(fields))
    return Section("Data", blocks)


def fitting_cell(fitting: dict[str, Any]) -> str:
    """Which rows the final booster learned from, and where its number of trees came from."""
    if not fitting:
        return NOT_RECORDED
    parts = str(fitting.get("fitted_on", "")).replace("+", " and ")
    return (
        f"the {parts} rows ({fmt(fitting.get('fitted_rows'))}), with {fmt(fitting.get('trees'))} "
        f"trees chosen by early stopping on the validation rows; the decision threshold and the "
        f"drift reference come from the early-stopped model's scores on the validation rows"
    )


def unlabelled_cell(unlabelled: dict[str, Any]) -> str:
    """How many training rows had no label, and where they went."""
    if not unlabelled:
        return NOT_RECORDED
    rows = unlabelled.get("rows") or 0
    if not rows:
        return "none"
    where = {
        "quarantine": f"set aside in {unlabelled.get('quarantine')}",
        "drop": "dropped",
    }.get(str(unlabelled.get("policy")), str(unlabelled.get("policy")))
    return f"{fmt(rows)}, {where} (target_missing: {unlabelled.get('policy')}); not trained on"


def metrics_section(facts: dict[str, Any]) -> Section:
    metrics = obj(facts.get("metrics"))
    baselines = obj(facts.get("baselines"))
    if not metrics:
        return Section("Metrics against baselines", [Para(f"Holdout metrics: {NOT_RECORDED}.")])
    # slice and disparity figures have their own section; policy facts are under the policy
    names = [n for n in metrics if not n.startswith(("slice.", "disparity.", "baseline."))]
    for baseline in BASELINES:
        names += [n for n in obj(baselines.get(baseline)) if n not in names]
    rows = [
        [name, fmt(metrics.get(name))]
        + [fmt(obj(baselines.get(baseline)).get(name)) for baseline in BASELINES]
        for name in names
    ]
    blocks: list[Block] = [Table(["metric", "model", *BASELINES], rows)]
    if not baselines:
        blocks.append(Para(f"Baselines: {NOT_RECORDED}."))
    comparison = baseline_comparison(facts)
    if comparison is not None:
        blocks.append(Para(f"Primary metric: {comparison[1]}."))
    classes = obj(facts.get("classes"))
    if classes:
        blocks += class_blocks(classes)
    return Section("Metrics against baselines", blocks)


def class_blocks(classes: dict[str, Any]) -> list[Block]:
    """Multiclass: which classes macro F1 was averaged over, and the holdout rows of each."""
    present, absent = seq(classes.get("present")), seq(classes.get("absent"))
    averaged = (
        f"Macro F1 over the {len(present)} classes present in the holdout; absent: "
        f"{', '.join(map(str, absent))} (no holdout rows)."
        if absent
        else f"Macro F1 over all {len(present)} classes; each has holdout rows."
    )
    support = obj(classes.get("support"))
    rows = ", ".join(f"{label} {fmt(count)}" for label, count in support.items())
    return [Para(averaged), Fields([("Holdout rows per class", rows or NOT_RECORDED)])]


def slices_section(facts: dict[str, Any]) -> Section:
    slices = facts.get("slices")
    if not isinstance(slices, dict):
        return Section("Slices", [Para(f"Slice metrics: {NOT_RECORDED}.")])
    rows = [row for row in seq(slices.get("rows")) if isinstance(row, dict)]
    blocks: list[Block] = []
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        blocks.append(Table(columns, [[fmt(row.get(c)) for c in columns] for row in rows]))
    else:
        blocks.append(Para(f"Slice rows: {NOT_RECORDED}."))
    notes = obj(slices.get("notes"))  # why a ratio is null (infinite), per column
    metric = slices.get("recall_metric") or "recall"
    items = [
        (f"Disparity ({metric} max/min): {k}", fmt(v) if v is not None else fmt(notes.get(k)))
        for k, v in obj(slices.get("disparity")).items()
    ] or [("Disparity", NOT_RECORDED)]
    if "max_recall_ratio" in slices:
        limit = slices["max_recall_ratio"]
        items.append(("Largest allowed ratio", "none set" if limit is None else fmt(limit)))
    flagged = seq(slices.get("flagged_columns"))
    items.append(("Flagged columns", ", ".join(map(str, flagged)) if flagged else "none"))
    passed, undefined = slices.get("passed"), undefined_ratios(slices)
    # an undefined ratio is never within limits, even in a report that said it passed
    if undefined:
        within = f"no (ratio undefined for {', '.join(undefined)})"
    else:
        within = NOT_RECORDED if passed is None else fmt(bool(passed))
    items.append(("Within limits", within))
    blocks.append(Fields(items))
    return Section("Slices", blocks)


def calibration_section(facts: dict[str, Any]) -> Section:
    calibration = facts.get("calibration")
    if not isinstance(calibration, dict):
        return Section("Calibration", [Para(f"Calibration: {NOT_RECORDED}.")])
    method = calibration.get("method")
    items = [("Method", fmt(method) if method not in (None, "", "none") else "none (not applied)")]
    for moment in ("before", "after"):
        measured = calibration.get(moment)
        shown = (
            ", ".join(f"{k} {fmt(v)}" for k, v in measured.items())
            if isinstance(measured, dict) and measured
            else NOT_RECORDED
        )
        items.append((f"{moment.capitalize()} calibration", shown))
    return Section("Calibration", [Fields(items)])


def policy_section(facts: dict[str, Any]) -> Section:
    policy = facts.get("policy")
    if not isinstance(policy, dict) or not policy:
        return Section("Decision policy", [Para(f"Decision policy: {NOT_RECORDED}.")])
    return Section("Decision policy", [Fields([(str(k), fmt(v)) for k, v in policy.items()])])


def audit_section(facts: dict[str, Any]) -> Section:
    registry = obj(facts.get("registry"))
    blocks: list[Block] = [
        Fields(
            [
                ("Promotion gate", fmt(registry.get("gate_decision"))),
                ("Gate reason", fmt(registry.get("gate_reason"))),
                ("Approval", person_decision(registry.get("approval"))),
                ("Rejection", person_decision(registry.get("rejected"), empty="none")),
            ]
        )
    ]
    events = [e for e in seq(facts.get("audit")) if isinstance(e, dict)]
    if events:
        blocks.append(Table(list(AUDIT_COLUMNS), [audit_row(e) for e in events]))
    else:
        blocks.append(Para("No approvals recorded: the audit log has no events for this version."))
    return Section("Approvals and audit trail", blocks)


def person_decision(value: Any, empty: str = NOT_RECORDED) -> str:
    if isinstance(value, dict):
        return f"{fmt(value.get('by'))} at {fmt(value.get('time'))}: {fmt(value.get('reason'))}"
    return empty if value is None else fmt(value)


def audit_row(event: dict[str, Any]) -> list[str]:
    def version(key: str) -> str:
        value = event.get(key)
        return f"v{value}" if value not in (None, "") else "none"

    return [
        fmt(event.get("time")),
        fmt(event.get("action")),
        fmt(event.get("alias")),
        f"{version('from_version')} → {version('to_version')}",
        fmt(event.get("by")),
        fmt(event.get("reason")),
        gate_summary(event.get("gate")),
    ]


def gate_summary(gate: Any) -> str:
    if gate is None or gate == "":
        return ""
    if isinstance(gate, dict):
        passed = gate.get("passed")
        verdict = "" if passed is None else (" (passed)" if passed else " (failed)")
        return f"{fmt(gate.get('decision'))}{verdict}"
    return fmt(gate)


def provenance_section(facts: dict[str, Any]) -> Section:
    provenance = obj(facts.get("provenance"))
    model = obj(facts.get("model"))
    blocks: list[Block] = [
        Fields(
            [
                ("Git commit", fmt(provenance.get("git_commit"))),
                ("Uncommitted changes", fmt(provenance.get("git_dirty"))),
                ("Params sha256", fmt(provenance.get("params_sha256"))),
                ("Model sha256", fmt(provenance.get("model_sha256"))),
                ("Training run id", fmt(provenance.get("run_id"))),
                ("Experiment id", fmt(model.get("experiment_id"))),
                ("MLflow UI", fmt(model.get("ui_path"))),
                ("Validation result id", fmt(provenance.get("validation_result_id"))),
                ("Evaluation report", fmt(facts.get("evaluation_report"))),
            ]
        )
    ]
    notes = [str(note) for note in seq(facts.get("notes"))]
    if notes:
        blocks += [Para("Notes from collecting these facts:"), Bullets(notes)]
    return Section("Provenance", blocks)


# --- Markdown ----------------------------------------------------------------------------------

_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def md(text: str) -> str:
    """Text safe in Markdown: no raw HTML, no table breaks, one line."""
    text = _ENTITY.sub("&amp;", text)
    text = text.replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return " ".join(text.split())


def render_description(facts: dict[str, Any]) -> str:
    """A short Markdown summary for the registered version's description in MLflow, for an
    auditor who reads the registry there: the verdicts, who decided what and why, the holdout
    metrics against the baselines, the data, the code, and where the full card is."""
    model, registry = obj(facts.get("model")), obj(facts.get("registry"))
    aliases = ", ".join(seq(model.get("aliases"))) or "none"
    lines = [
        f"**{md(str(model.get('name', 'unknown model')))} v{md(str(model.get('version', '?')))}**"
        f" (aliases: {md(aliases)})",
        "",
        f"- Promotion gate: {md(fmt(registry.get('gate_decision')))}: "
        f"{md(fmt(registry.get('gate_reason')))}",
        f"- Approval: {md(person_decision(registry.get('approval'), empty='none'))}",
    ]
    if registry.get("rejected") is not None:
        lines.append(f"- Rejection: {md(person_decision(registry.get('rejected')))}")
    lines.append(
        f"- Holdout metrics ({md(holdout_rows_phrase(facts))}): {md(metric_summary(facts))}"
    )
    for dataset in seq(obj(facts.get("data")).get("datasets")):
        where = dataset.get("dvc_path") or dataset.get("source")
        lines.append(
            f"- Data `{md(fmt(dataset.get('name')))}`: {md(fmt(where))}, "
            f"md5 {md(fmt(dataset.get('md5')))}, DVC remote {md(fmt(dataset.get('dvc_remote')))}"
        )
    provenance = obj(facts.get("provenance"))
    dirty = " (uncommitted changes)" if provenance.get("git_dirty") == "true" else ""
    lines += [
        f"- Code: git commit {md(fmt(provenance.get('git_commit')))}{dirty}; params sha256 "
        f"{md(fmt(provenance.get('params_sha256')))}",
        f"- Training run: {md(fmt(model.get('run_id')))}; model card: the run's artifact "
        "`model_card/model_card.html` (and `.md`)",
        "",
        f"Refreshed {md(fmt(facts.get('generated_at')))}, when the version's status changed.",
    ]
    return "\n".join(lines)


def holdout_rows_phrase(facts: dict[str, Any]) -> str:
    rows = obj(obj(facts.get("data")).get("split_sizes")).get("holdout")
    return f"{fmt(rows)} holdout rows" if rows is not None else "holdout rows not recorded"


def metric_summary(facts: dict[str, Any]) -> str:
    """Each recorded metric, with the baselines' value of the same metric beside it."""
    metrics, baselines = obj(facts.get("metrics")), obj(facts.get("baselines"))
    wanted = [m for m in ("roc_auc", "pr_auc", "macro_f1", "accuracy", "log_loss") if m in metrics]
    if not wanted:
        return NOT_RECORDED
    parts = []
    for metric in wanted:
        against = [
            f"{name.replace('_', ' ')} {fmt(values[metric])}"
            for name, values in baselines.items()
            if isinstance(values, dict) and isinstance(values.get(metric), int | float)
        ]
        beside = f" (baselines: {', '.join(against)})" if against else ""
        parts.append(f"{metric} {fmt(metrics[metric])}{beside}")
    return "; ".join(parts)


def render_markdown(facts: dict[str, Any]) -> str:
    """The card as Markdown (GitHub flavoured tables)."""
    lines = [f"# {md(title_of(facts))}", ""]
    lines += markdown_block(header_fields(facts))
    for section in card_sections(facts):
        lines += [f"## {md(section.title)}", ""]
        for block in section.blocks:
            lines += markdown_block(block)
    return "\n".join(lines).rstrip() + "\n"


def markdown_block(block: Block) -> list[str]:
    if isinstance(block, Fields):
        return [f"- **{md(name)}:** {md(value)}" for name, value in block.items] + [""]
    if isinstance(block, Table):
        head = "| " + " | ".join(md(h) for h in block.headers) + " |"
        rule = "| " + " | ".join("---" for _ in block.headers) + " |"
        body = ["| " + " | ".join(md(cell) for cell in row) + " |" for row in block.rows]
        return [head, rule, *body, ""]
    if isinstance(block, Bullets):
        return [f"- {md(item)}" for item in block.items] + [""]
    return [md(block.text), ""]


# --- HTML --------------------------------------------------------------------------------------

CSS = """
body { font-family: system-ui, sans-serif; max-width: 64rem; margin: 2rem auto; padding: 0 1rem;
       color: #1f2328; line-height: 1.45; }
h1 { border-bottom: 2px solid #d0d7de; padding-bottom: .3rem; }
h2 { margin-top: 2rem; border-bottom: 1px solid #d0d7de; padding-bottom: .2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; font-size: .92rem; }
th, td { border: 1px solid #d0d7de; padding: .3rem .6rem; text-align: left;
         vertical-align: top; overflow-wrap: anywhere; }
th { background: #f6f8fa; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; overflow-wrap: anywhere; }
.not-recorded { color: #57606a; font-style: italic; }
"""


def h(text: str) -> str:
    """Escaped text; 'not recorded' is greyed so gaps stand out."""
    escaped = html.escape(text, quote=True)
    if text == NOT_RECORDED:
        return f'<span class="not-recorded">{escaped}</span>'
    return escaped


PLOT_TITLES = {
    "roc_curve.png": "ROC curve on the holdout rows",
    "pr_curve.png": "Precision-recall curve on the holdout rows",
    "reliability.png": "Reliability (calibration) on the holdout rows",
    "confusion_matrix.png": "Confusion matrix at the decision policy",
    "feature_importance.png": "Feature importance by gain",
    "shap_summary.png": "SHAP summary on a sample of holdout rows",
    "slices.png": "Metrics by slice",
    "baselines.png": "The model against its baselines",
}


def plots_html(plots: dict[str, bytes]) -> str:
    """The training run's plots as one section of inline PNG images, each with its title."""
    import base64

    figures = []
    known = [name for name in PLOT_TITLES if name in plots]
    for name in known + sorted(set(plots) - set(known)):
        title = h(PLOT_TITLES.get(name, name))
        data = base64.b64encode(plots[name]).decode("ascii")
        figures.append(
            f'<figure><img src="data:image/png;base64,{data}" alt="{title}" '
            f'style="max-width:100%"><figcaption>{title}</figcaption></figure>'
        )
    return "<section>\n<h2>Plots</h2>\n" + "\n".join(figures) + "\n</section>"


def render_html(facts: dict[str, Any], plots: dict[str, bytes] | None = None) -> str:
    """The card as one self-contained HTML page (inline CSS, no scripts, all text escaped),
    with the training run's plots embedded when they are given."""
    title = h(title_of(facts))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{title}</title>",
        f"<style>{CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>{title}</h1>",
        html_block(header_fields(facts)),
    ]
    for section in card_sections(facts):
        parts.append(f"<section>\n<h2>{h(section.title)}</h2>")
        parts += [html_block(block) for block in section.blocks]
        parts.append("</section>")
    if plots:
        parts.append(plots_html(plots))
    parts += ["</body>", "</html>"]
    return "\n".join(parts) + "\n"


def html_block(block: Block) -> str:
    if isinstance(block, Fields):
        items = "".join(f"<dt>{h(name)}</dt><dd>{h(value)}</dd>" for name, value in block.items)
        return f"<dl>{items}</dl>"
    if isinstance(block, Table):
        head = "".join(f"<th>{h(cell)}</th>" for cell in block.headers)
        body = "".join(
            "<tr>" + "".join(f"<td>{h(cell)}</td>" for cell in row) + "</tr>" for row in block.rows
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{h(item)}</li>" for item in block.items) + "</ul>"
    return f"<p>{h(block.text)}</p>"
