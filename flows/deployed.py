"""The flows prefect.yaml deploys: training and scoring with the use case's time limit, and the
inbox poll. Each runs the ordinary flow as a subflow, so a deployed run and a CLI run do the
same work; the limit comes from the params (orchestration.*_timeout_minutes)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger

from flows.errors import EXIT_CODES, explained, is_bad_input, is_over_time_limit
from flows.score import score
from flows.tasks import is_transient
from flows.train import train
from pipelines import config
from pipelines.deadline import backstop_seconds, run_deadline
from pipelines.orchestration import inbox
from pipelines.paths import state_dir
from pipelines.registry.records import ScoreResult, TrainResult
from pipelines.scoring.streaming import StreamOptions


def timed(spec: config.UseCaseSpec, kind: Literal["train", "score"]) -> Any:
    """The train or score flow with Prefect's timeout as a backstop: the flow keeps the use
    case's time limit itself, and Prefect stops it only if a step hangs well past it."""
    limit = run_deadline(spec, kind).limit_seconds
    flow_fn = train if kind == "train" else score
    return flow_fn.with_options(timeout_seconds=backstop_seconds(limit))


@flow(name="deployed-train", flow_run_name="deployed-train-{agency}-{use_case}")
def deployed_train(agency: str, use_case: str) -> TrainResult:
    """Train one use case within its time limit (the scheduled deployment)."""
    return timed(config.load_use_case(agency, use_case), "train")(agency, use_case)


@flow(name="deployed-score", flow_run_name="deployed-score-{agency}-{use_case}")
def deployed_score(
    agency: str,
    use_case: str,
    input: str,
    chunk_rows: int = StreamOptions.chunk_rows,
    part_rows: int = StreamOptions.part_rows,
) -> ScoreResult:
    """Score one batch file within the use case's time limit; a rerun of the same file returns
    the published batch."""
    spec = config.load_use_case(agency, use_case)
    return timed(spec, "score")(agency, use_case, input, chunk_rows=chunk_rows, part_rows=part_rows)


@dataclass
class InboxResult:
    """What one poll did with each file it found."""

    scored: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    busy: bool = False


class InboxError(RuntimeError):
    """Some files could not be scored for a reason that is not theirs; they wait, claimed,
    for the next poll."""


def inbox_of(spec: config.UseCaseSpec) -> inbox.Inbox:
    state = state_dir()
    return inbox.Inbox(
        state.inbox(spec.agency, spec.name), state.inbox_lock(spec.agency, spec.name)
    )


@flow(name="inbox", flow_run_name="inbox-{agency}-{use_case}")
def inbox_poll(
    agency: str,
    use_case: str,
    settle_seconds: float | None = None,
    chunk_rows: int = StreamOptions.chunk_rows,
) -> InboxResult:
    """Score every finished batch file in the use case's inbox once, then file it under
    processed/ or quarantine/ with a receipt. Files still being written are left for later."""
    logger = get_run_logger()
    spec = config.load_use_case(agency, use_case)
    settle = spec.params.orchestration.inbox_settle_seconds
    settle = settle if settle_seconds is None else settle_seconds
    box = inbox_of(spec)
    result = InboxResult()
    try:
        with inbox.polling(box):
            found = inbox.scan(box, settle)
            result.waiting = [path.name for path in found.waiting]
            for path in found.leftovers:
                logger.info("finishing %s, claimed by a poll that stopped", path.name)
                score_claimed(spec, box, path, chunk_rows, result)
            for path in found.ready:
                claimed = inbox.claim(box, path)
                if claimed is not None:
                    score_claimed(spec, box, claimed, chunk_rows, result)
    except inbox.InboxBusyError as busy:
        logger.info("%s", busy)
        result.busy = True
        return result
    logger.info(
        "inbox %s/%s: %d scored, %d quarantined, %d failed, %d still being written",
        agency,
        use_case,
        len(result.scored),
        len(result.quarantined),
        len(result.failed),
        len(result.waiting),
    )
    if result.failed:
        names = ", ".join(item["file"] for item in result.failed)
        raise InboxError(
            f"could not score {names}: {result.failed[0]['error']}. The files stay in "
            f"{box.claimed} and the next poll tries again (a file that fails "
            f"{inbox.POISON_ATTEMPTS} times without a known cause goes to quarantine)."
        )
    return result


def score_claimed(
    spec: config.UseCaseSpec,
    box: inbox.Inbox,
    claimed: Path,
    chunk_rows: int,
    result: InboxResult,
) -> None:
    """Score one claimed file and file it away; a bad batch goes to the inbox's quarantine,
    and so does a file the scorer crashed on inbox.POISON_ATTEMPTS times."""
    logger = get_run_logger()
    if len(inbox.failed_attempts(claimed)) >= inbox.POISON_ATTEMPTS:
        set_aside_poison(box, claimed, result)  # its last polls died scoring it
        return
    inbox.begin_attempt(claimed)
    try:
        scored = timed(spec, "score")(spec.agency, spec.name, str(claimed), chunk_rows=chunk_rows)
    except Exception as error:
        kind = type(error).__name__
        # a bad batch, or one past the time limit, is filed in the inbox's quarantine with the
        # reason; anything else (no champion yet, the tracking server down) stays claimed
        if not (is_bad_input(error) or is_over_time_limit(error)):
            crashed = is_crash(error)
            failures = inbox.end_attempt(claimed, f"{kind}: {error}" if crashed else None)
            if crashed and failures >= inbox.POISON_ATTEMPTS:
                set_aside_poison(box, claimed, result)
                return
            logger.warning("%s stays claimed: %s: %s", claimed.name, kind, error)
            result.failed.append({"file": claimed.name, "error": f"{kind}: {error}"})
            return
        receipt = {"error": kind, "reason": str(error)}
        filed = inbox.file_away(box, claimed, "quarantine", receipt)
        logger.warning("%s refused (%s); filed as %s", claimed.name, kind, filed)
        result.quarantined.append({"file": claimed.name, **receipt, "filed_as": str(filed)})
        return
    except BaseException:
        inbox.end_attempt(claimed, None)  # stopped (Ctrl+C), not crashed by the file
        raise
    receipt = {
        "batch_id": scored.batch_id,
        "newly_published": scored.newly_published,
        "rows": scored.rows,
        "rows_quarantined": scored.rows_quarantined,
        "model": f"{scored.model_name} v{scored.model_version}",
        "scoring_run_id": scored.run_id,
        "output_dir": str(scored.output_dir),
    }
    filed = inbox.file_away(box, claimed, "processed", receipt)
    if scored.newly_published:
        logger.info("%s scored as batch %s", claimed.name, scored.batch_id)
    else:
        logger.info("%s was already published as batch %s", claimed.name, scored.batch_id)
    result.scored.append({"file": claimed.name, **receipt, "filed_as": str(filed)})


def is_crash(error: Exception) -> bool:
    """A failure agencyml does not know (a traceback) and that is not worth retrying: the file
    may be what crashes the scorer. Known platform faults (no champion, a full disk, the
    tracking server down) never count against a file."""
    return type(explained(error)).__name__ not in EXIT_CODES and not is_transient(error)


def set_aside_poison(box: inbox.Inbox, claimed: Path, result: InboxResult) -> None:
    """File a claimed file the scorer keeps failing on in the inbox's quarantine, with its
    attempts, so that later polls go on with the other files."""
    attempts = inbox.failed_attempts(claimed)
    receipt = {
        "error": "ScorerCrashed",
        "reason": (
            f"scoring this file failed {len(attempts)} times without a known cause (last: "
            f"{attempts[-1]['error']}), so it was set aside; report it with this receipt, and "
            "drop it in the inbox again once scoring is fixed"
        ),
        "attempts": attempts,
    }
    filed = inbox.file_away(box, claimed, "quarantine", receipt)
    get_run_logger().error("%s set aside after %d failed attempts", claimed.name, len(attempts))
    result.quarantined.append({"file": claimed.name, **receipt, "filed_as": str(filed)})
