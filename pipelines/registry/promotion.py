"""The model registry's rules: the promotion gate, approvals, rollbacks and the audit trail.

A new version is registered as `challenger`. The gate compares it with the current `champion` and
the baselines on the same holdout and promotes it only when it wins by the configured margin,
beats the best baseline, and passes the floors and slice limits; otherwise it stays challenger
with the reason as a tag. Every alias change is an event in an append-only, hash-chained log
(`<state>/registry/audit.jsonl`) and a tag on the model version, so `history --at` can say which
version was champion at any moment."""

from __future__ import annotations

import getpass
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pipelines import hashlog
from pipelines.config import LOWER_IS_BETTER, UseCase
from pipelines.durable import file_lock
from pipelines.paths import StateDir
from pipelines.registry import tracking
from pipelines.registry.log_heads import MlflowHeads

CHAMPION = tracking.CHAMPION
CHALLENGER = "challenger"
CHAMPION_ACTIONS = ("promote", "approve", "rollback")


class RegistryError(RuntimeError):
    """A registry action that the rules do not allow; the message says why and what to do."""


class AuditLogError(hashlog.LogTamperedError):
    """The audit log was edited: a line no longer chains to the one before it."""

    entry = "event"


# The audit log's field names predate pipelines.hashlog; existing logs must keep verifying.
AUDIT_CHAIN = hashlog.Chain(prev="prev_sha256", hash="sha256", first_prev=None)


# --- the gate ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str
    # False: the check is reported on the verdict but cannot hold the version
    enforced: bool = True


@dataclass(frozen=True)
class GateResult:
    decision: Literal["promote", "hold", "await-approval"]
    primary_metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks if check.enforced)

    @property
    def reason(self) -> str:
        failed = [check.detail for check in self.checks if check.enforced and not check.passed]
        if failed:
            return "; ".join(failed)
        summary = "; ".join(check.detail for check in self.checks)
        if self.decision == "await-approval":
            return f"passed the gate ({summary}); awaiting approval"
        return f"passed the gate ({summary})"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed, "reason": self.reason}


def better_by(metric: str, challenger: float, champion: float) -> float:
    """How much better the challenger is; positive means better, whichever way the metric runs."""
    return champion - challenger if metric in LOWER_IS_BETTER else challenger - champion


def judge(
    params: UseCase,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None = None,
    slices: tuple[bool, str] | None = None,
    baselines: dict[str, dict[str, float]] | None = None,
) -> GateResult:
    """The gate's decision from metrics measured on one holdout; pure, so it is easy to test.
    `baselines` ({'class_prior': metrics, 'logistic_regression': metrics}) adds the check that
    the challenger beats the best of them; without them it is not made."""
    metric = params.primary_metric
    checks = [_beats(metric, params.promotion.min_improvement, challenger, champion)]
    if baselines:
        checks.append(
            _beats_baselines(metric, challenger, baselines, params.promotion.must_beat_baselines)
        )
    for name, limit in sorted(params.promotion.floors.items()):
        value = challenger.get(name, math.nan)
        lower = name in LOWER_IS_BETTER
        ok = not math.isnan(value) and (value <= limit if lower else value >= limit)
        bound = "at most" if lower else "at least"
        verdict = "within" if ok else "below" if not lower else "above"
        checks.append(
            Check(
                f"floor:{name}",
                ok,
                f"{name} {value:.4f} is {verdict} its floor ({bound} {limit})",
            )
        )
    if slices is not None:
        passed, detail = slices
        checks.append(Check("slices", passed, detail))
    if not all(check.passed for check in checks if check.enforced):
        decision: Literal["promote", "hold", "await-approval"] = "hold"
    elif params.promotion.require_approval:
        decision = "await-approval"
    else:
        decision = "promote"
    return GateResult(decision, metric, challenger, champion, champion_version, checks)


def _beats(
    metric: str,
    margin: float,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
) -> Check:
    value = challenger.get(metric, math.nan)
    if math.isnan(value):
        return Check("beats-champion", False, f"the challenger has no {metric}")
    if champion is None:
        return Check("beats-champion", True, f"no champion yet; {metric} {value:.4f}")
    current = champion.get(metric, math.nan)
    if math.isnan(current):
        return Check("beats-champion", True, f"the champion has no {metric}; {value:.4f}")
    gain = better_by(metric, value, current)
    ok = gain > margin
    verb = "beats" if ok else "does not beat"
    return Check(
        "beats-champion",
        ok,
        f"{metric} {value:.4f} {verb} the champion's {current:.4f} by more than {margin:g} "
        f"(difference {gain:+.4f})",
    )


def _beats_baselines(
    metric: str,
    challenger: dict[str, float],
    baselines: dict[str, dict[str, float]],
    enforced: bool,
) -> Check:
    """The challenger must be strictly better than the best baseline on the primary metric: a
    model that cannot beat the class prior learned nothing, and one that cannot beat a logistic
    regression on its own features is not worth its complexity."""
    value = challenger.get(metric, math.nan)
    measured = {
        name: float(values[metric])
        for name, values in baselines.items()
        if not math.isnan(values.get(metric, math.nan))
    }
    if math.isnan(value):
        return Check("beats-baselines", False, f"the challenger has no {metric}", enforced)
    if not measured:
        return Check("beats-baselines", True, f"no baseline has {metric}; not compared", enforced)
    pick = min if metric in LOWER_IS_BETTER else max
    best = pick(measured, key=measured.__getitem__)
    gain = better_by(metric, value, measured[best])
    ok = gain > 0
    detail = (
        f"{metric} {value:.4f} {'beats' if ok else 'does not beat'} the best baseline, "
        f"{best} {measured[best]:.4f} (difference {gain:+.4f})"
    )
    if not ok and not enforced:
        detail += "; reported only, as promotion.must_beat_baselines is false"
    return Check("beats-baselines", ok, detail, enforced)


# --- the audit log -------------------------------------------------------------------------


def audit_path(state: StateDir) -> Path:
    return state.root / "registry" / "audit.jsonl"


def model_lock(state: StateDir, model_name: str) -> Path:
    """Held while a model's aliases move and their event is appended, and (shared) while they
    are compared: a scoring that looked between the two saw an alias the log did not name yet
    and refused it as moved outside agencyml."""
    return state.root / "locks" / "registry" / f"{model_name}.lock"


def append_event(state: StateDir, event: dict[str, Any]) -> dict[str, Any]:
    """Append one event; each line carries the hash of the line before it, so an edit or a
    deleted line breaks the chain and `read_events` says where. A log that was already edited
    is refused rather than extended."""
    read_events(state)
    record = {
        "time": event.get("time") or datetime.now(UTC).isoformat(),
        **{k: v for k, v in event.items() if k != "time"},
    }
    return AUDIT_CHAIN.append(audit_path(state), record)


def read_events(state: StateDir, model_name: str | None = None) -> list[dict[str, Any]]:
    """Every event in order (of one model, if named), after checking the whole chain and its
    head, which appends also keep in the tracking store (a deployed run has no CLI to say so)."""
    hashlog.keep_heads_in(MlflowHeads(state))
    try:
        events = AUDIT_CHAIN.read(audit_path(state))
    except hashlog.LogTamperedError as error:
        raise AuditLogError(error.path, error.line, error.detail) from error
    return [e for e in events if model_name is None or e.get("model") == model_name]


def record_alias_change(
    state: StateDir,
    *,
    model_name: str,
    action: str,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    by: str,
    reason: str,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One alias change: appended to the registry log and tagged on the versions it touches."""
    event = append_event(
        state,
        {
            "model": model_name,
            "action": action,
            "alias": alias,
            "from_version": from_version,
            "to_version": to_version,
            "by": by,
            "reason": reason,
            "gate": gate,
        },
    )
    summary = {k: event[k] for k in ("time", "action", "alias", "from_version", "to_version")}
    summary.update(by=by, reason=reason[:500])
    tag = {f"agencyml.audit.{event['seq']:06d}": json.dumps(summary, sort_keys=True)}
    for version in {from_version, to_version} - {None}:
        tracking.set_version_tags(model_name, str(version), tag, state)
    return event


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# --- actions -------------------------------------------------------------------------------


def apply_gate(model_name: str, version: str, result: GateResult, state: StateDir) -> list[str]:
    """Register the version as challenger, record the gate's verdict, promote if it says so;
    returns the version's aliases afterwards."""
    with file_lock(model_lock(state, model_name)):
        return _apply_gate(model_name, version, result, state)


def _apply_gate(model_name: str, version: str, result: GateResult, state: StateDir) -> list[str]:
    previous = tracking.alias_version(model_name, CHALLENGER, state)
    tracking.set_alias(model_name, CHALLENGER, version, state)
    tracking.set_version_tags(
        model_name,
        version,
        {
            "agencyml.gate.decision": result.decision,
            "agencyml.gate.reason": result.reason,
            "agencyml.gate.result": json.dumps(result.as_dict(), sort_keys=True, default=str),
        },
        state,
    )
    record_alias_change(
        state,
        model_name=model_name,
        action="register",
        alias=CHALLENGER,
        from_version=previous,
        to_version=version,
        by="gate",
        reason=result.reason,
        gate=result.as_dict(),
    )
    if result.decision == "promote":
        _promote(
            model_name,
            version,
            state,
            action="promote",
            by="gate",
            reason=result.reason,
            gate=result.as_dict(),
        )
    return tracking.version_aliases(model_name, version, state)


def promote(
    model_name: str,
    version: str,
    state: StateDir,
    *,
    action: str,
    by: str,
    reason: str,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Move champion to `version`; a challenger alias on it is removed (it has won)."""
    with file_lock(model_lock(state, model_name)):
        return _promote(model_name, version, state, action=action, by=by, reason=reason, gate=gate)


def _promote(
    model_name: str,
    version: str,
    state: StateDir,
    *,
    action: str,
    by: str,
    reason: str,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    before = tracking.alias_version(model_name, CHAMPION, state)
    tracking.set_alias(model_name, CHAMPION, version, state)
    if tracking.alias_version(model_name, CHALLENGER, state) == str(version):
        tracking.remove_alias(model_name, CHALLENGER, state)
    return record_alias_change(
        state,
        model_name=model_name,
        action=action,
        alias=CHAMPION,
        from_version=before,
        to_version=str(version),
        by=by,
        reason=reason,
        gate=gate,
    )


def approve(model_name: str, version: str, by: str, reason: str, state: StateDir) -> dict:
    """A person approves a version the gate passed; it becomes champion."""
    with file_lock(model_lock(state, model_name)):
        return _approve(model_name, version, by, reason, state)


def _approve(model_name: str, version: str, by: str, reason: str, state: StateDir) -> dict:
    tags = tracking.model_version_tags(model_name, version, state)
    decision = tags.get("agencyml.gate.decision")
    if tracking.alias_version(model_name, CHAMPION, state) == str(version):
        raise RegistryError(f"{model_name} v{version} is already the champion")
    if tags.get("agencyml.rejection.by") or tags.get("agencyml.rejected"):
        raise RegistryError(f"{model_name} v{version} was rejected; train a new version instead")
    if decision != "await-approval":
        why = tags.get("agencyml.gate.reason", "it never went through the gate")
        raise RegistryError(
            f"{model_name} v{version} cannot be approved: the gate's decision was "
            f"'{decision or 'none'}' ({why}). Only a version that passed the gate and awaits "
            "approval can be approved."
        )
    _check_person(by, reason)
    tracking.set_version_tags(
        model_name,
        version,
        person_tags("agencyml.approval", by, reason),
        state,
    )
    return _promote(model_name, version, state, action="approve", by=by, reason=reason)


def approval_queue(state: StateDir, agency: str | None = None) -> list[dict[str, Any]]:
    """Versions that passed the gate and wait for a person (not approved, rejected or champion
    yet), oldest first; of one agency's models, or of all. Each with the gate's whole verdict."""
    queue = []
    for entry in tracking.versions_tagged(state, "agencyml.gate.decision", "await-approval"):
        if agency is not None and not entry.name.startswith(f"{agency}."):
            continue
        tags = entry.tags
        if CHAMPION in entry.aliases or tags.get("agencyml.rejection.by"):
            continue
        if tags.get("agencyml.rejected") or tags.get("agencyml.approval.by"):
            continue
        try:
            gate = json.loads(tags.get("agencyml.gate.result") or "{}")
        except ValueError:
            gate = {}
        queue.append(
            {
                "model": entry.name,
                "version": entry.version,
                "aliases": entry.aliases,
                "registered_ms": entry.registered_ms,
                "reason": tags.get("agencyml.gate.reason", ""),
                "gate": gate if isinstance(gate, dict) else {},
            }
        )
    return sorted(queue, key=lambda item: (item["registered_ms"], item["model"]))


def reject(model_name: str, version: str, by: str, reason: str, state: StateDir) -> dict:
    """A person rejects a version: it loses the challenger alias and can never be approved."""
    with file_lock(model_lock(state, model_name)):
        return _reject(model_name, version, by, reason, state)


def _reject(model_name: str, version: str, by: str, reason: str, state: StateDir) -> dict:
    tracking.model_version_tags(model_name, version, state)  # exists, or ModelNotFoundError
    if tracking.alias_version(model_name, CHAMPION, state) == str(version):
        raise RegistryError(
            f"{model_name} v{version} is the champion; use `agencyml rollback {model_name}` to "
            "put the previous champion back"
        )
    _check_person(by, reason)
    tracking.set_version_tags(
        model_name,
        version,
        person_tags("agencyml.rejection", by, reason),
        state,
    )
    was_challenger = tracking.alias_version(model_name, CHALLENGER, state) == str(version)
    if was_challenger:
        tracking.remove_alias(model_name, CHALLENGER, state)
    return record_alias_change(
        state,
        model_name=model_name,
        action="reject",
        alias=CHALLENGER,
        from_version=str(version) if was_challenger else None,
        to_version=None,
        by=by,
        reason=reason,
    )


def rollback(model_name: str, by: str, reason: str, state: StateDir) -> dict:
    """Champion goes back to the version it replaced most recently."""
    with file_lock(model_lock(state, model_name)):
        return _rollback(model_name, by, reason, state)


def _rollback(model_name: str, by: str, reason: str, state: StateDir) -> dict:
    current = tracking.alias_version(model_name, CHAMPION, state)
    if current is None:
        raise RegistryError(f"{model_name} has no champion to roll back")
    moves = [
        e
        for e in read_events(state, model_name)
        if e["alias"] == CHAMPION and e["action"] in CHAMPION_ACTIONS and e["to_version"] == current
    ]
    previous = moves[-1]["from_version"] if moves else None
    if previous is None:
        raise RegistryError(
            f"{model_name} v{current} is the first champion on record; there is nothing to roll "
            "back to"
        )
    _check_person(by, reason)
    return _promote(model_name, previous, state, action="rollback", by=by, reason=reason)


def champion_at(events: list[dict[str, Any]], moment: datetime) -> str | None:
    """Which version was champion at `moment`, from the log alone."""
    champion = None
    for event in events:
        if event["alias"] != CHAMPION or event["action"] not in CHAMPION_ACTIONS:
            continue
        if datetime.fromisoformat(event["time"]) > moment:
            break
        champion = event["to_version"]
    return champion


class AliasMovedError(AuditLogError):
    """The registry's champion alias is not where the audit log last put it: it was moved or
    deleted outside agencyml, which records every move it makes."""

    def __init__(self, message: str, path: Path) -> None:
        RuntimeError.__init__(self, message)
        self.message = message
        self.path = Path(path)
        self.line = 0
        self.detail = message

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.message, self.path))


def alias_disagreement(model_name: str, state: StateDir) -> str | None:
    """Why the registry's champion of a model is not the one the audit log last recorded, or
    None when they agree. Reads (and so checks) the whole log: AuditLogError if it was edited."""
    with file_lock(model_lock(state, model_name), shared=True):
        return _disagreement(model_name, state)


def _disagreement(model_name: str, state: StateDir) -> str | None:
    logged = champion_at(read_events(state, model_name), datetime.max.replace(tzinfo=UTC))
    registered = tracking.alias_version(model_name, CHAMPION, state)
    if registered == logged:
        return None
    said = f"version {logged}" if logged else "there is none (no champion move is recorded)"
    if registered is None:
        found = f"the registry has no champion of {model_name} (its alias was deleted)"
    else:
        found = f"the registry's champion of {model_name} is version {registered}"
    if logged:
        fix = (
            f"Put the alias back on version {logged} (in `agencyml ui --allow-writes` or with "
            "MLflow's client), then move it only with `agencyml approve` or `agencyml rollback`, "
            "which record every move"
        )
    else:
        fix = (
            "Remove the alias (in `agencyml ui --allow-writes` or with MLflow's client) and let "
            "the promotion gate or `agencyml approve` choose a champion, which is recorded"
        )
    return (
        f"{found}, but the audit log says {said}: the alias was moved outside agencyml, so "
        f"nothing is scored with it. {fix}."
    )


def find_champion(model_name: str, state: StateDir) -> tracking.ModelRef:
    """The champion's version, once its alias agrees with the audit log: a batch is never
    scored by a version that no recorded promotion chose."""
    with file_lock(model_lock(state, model_name), shared=True):
        disagreement = _disagreement(model_name, state)
        if disagreement is not None:
            raise AliasMovedError(disagreement, audit_path(state))
        return tracking.find_model(model_name, state)


def parse_moment(text: str) -> datetime:
    """An ISO date or date-time; without a zone it is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise RegistryError(
            f"'{text}' is not a date or time; use ISO 8601, e.g. 2026-11-29 or "
            "2026-11-29T14:30:00+01:00"
        ) from error
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def person_tags(prefix: str, by: str, reason: str) -> dict[str, str]:
    """A person's decision as readable version tags: <prefix>.by, .reason and .time."""
    return {f"{prefix}.by": by, f"{prefix}.reason": reason, f"{prefix}.time": _now()}


def _check_person(by: str, reason: str) -> None:
    if not by.strip() or not reason.strip():
        raise RegistryError("say who decides (--by) and why (--reason); both go in the audit log")


def _now() -> str:
    return datetime.now(UTC).isoformat()
