"""The time limit a run keeps itself, driven by a fake clock: the deadline passes only after its
limit, says how far the run got, and a run past it before publishing publishes nothing."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from pipelines.config import load_use_case
from pipelines.data.storage import StagedDirectory
from pipelines.deadline import (
    BACKSTOP_GRACE_SECONDS,
    Deadline,
    TimeLimitError,
    backstop_seconds,
    run_deadline,
)
from pipelines.scoring.batches import check_time_left
from pipelines.scoring.streaming import QuarantineStage, StagedBatch, StreamOptions


class FakeClock:
    """A monotonic clock that moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def scoring_deadline(clock: FakeClock, limit_seconds: float = 60) -> Deadline:
    return Deadline(
        "scoring business-aid.fraud-risk",
        "orchestration.score_timeout_minutes",
        limit_seconds,
        clock,
    )


def test_a_deadline_passes_only_after_its_limit() -> None:
    clock = FakeClock()
    deadline = scoring_deadline(clock)
    clock.advance(59.9)
    deadline.check("after 1,000 rows")  # within the limit: no error
    assert not deadline.passed()
    clock.advance(0.1)  # exactly at the limit is still within it
    deadline.check("after 2,000 rows")
    clock.advance(0.5)
    assert deadline.passed()
    with pytest.raises(TimeLimitError) as raised:
        deadline.check("after 3,000 rows were read")
    message = str(raised.value)
    assert "scoring business-aid.fraud-risk ran past its time limit" in message
    assert "orchestration.score_timeout_minutes = 60.0 s" in message
    assert "after 60.5 s" in message
    assert "it stopped after 3,000 rows were read" in message
    assert "Raise orchestration.score_timeout_minutes" in message


def test_long_limits_are_said_in_minutes() -> None:
    clock = FakeClock()
    deadline = Deadline.from_minutes(
        "training x.y", "orchestration.train_timeout_minutes", 90, clock
    )
    assert deadline.limit_seconds == 5400
    clock.advance(5460)
    with pytest.raises(TimeLimitError, match=r"= 90\.0 min\) after 91\.0 min"):
        deadline.check("before registering a version")


@pytest.mark.parametrize("limit", [0, -1.5])
def test_a_limit_that_is_not_positive_is_refused(limit: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        Deadline("scoring", "orchestration.score_timeout_minutes", limit, FakeClock())


@pytest.mark.parametrize(
    ("limit", "backstop"),
    [(1.2, 1.2 + BACKSTOP_GRACE_SECONDS), (7200, 9000)],
)
def test_prefects_backstop_fires_well_after_the_runs_own_limit(
    limit: float, backstop: float
) -> None:
    assert backstop_seconds(limit) == pytest.approx(backstop)


@pytest.mark.parametrize(
    ("kind", "setting", "minutes"),
    [("train", "train_timeout_minutes", 45), ("score", "score_timeout_minutes", 0.02)],
)
def test_a_runs_deadline_comes_from_its_use_cases_params(
    small_project: Path, kind: str, setting: str, minutes: float
) -> None:
    params_file = small_project / "params" / "business-aid.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["use_cases"]["fraud-risk"]["orchestration"].update(
        train_timeout_minutes=45, score_timeout_minutes=0.02
    )
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    spec = load_use_case("business-aid", "fraud-risk")
    clock = FakeClock()
    deadline = run_deadline(spec, kind, clock)  # type: ignore[arg-type]
    assert deadline.setting == f"orchestration.{setting}"
    assert deadline.limit_seconds == pytest.approx(minutes * 60)
    assert deadline.what.endswith("business-aid.fraud-risk")
    assert deadline.started == clock.now


# --- the last check before publishing ------------------------------------------------------------


def staged_batch(root: Path) -> StagedBatch:
    """A batch scored into staging as the stream leaves it, with one quarantined row."""
    output = StagedDirectory(root / "outputs" / "batch-1")
    scored = pa.table({"case_id": ["a", "b"], "probability": [0.1, 0.9]})
    pq.write_table(scored, output.path / "scored.parquet")
    quarantine = QuarantineStage(root / "quarantine" / "batch-1")
    quarantine.write(pa.table({"case_id": ["c"], "reason": ["amount is negative"]}))
    quarantine.close()
    return StagedBatch(
        batch_id="batch-1",
        input_path=root / "batch.parquet",
        input_sha256="0" * 64,
        staged=output,
        quarantine=quarantine,
        files=["scored.parquet"],
        counts={"in": 3, "scored": 2, "quarantined": 1},
        outcome=None,  # type: ignore[arg-type]  # the check does not look at it
        summary={},
        drift=None,
        timings={},
        options=StreamOptions(),
        scoring={},
    )


def everything_under(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_past_the_deadline_before_publishing_nothing_is_published_and_staging_is_gone(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    deadline = scoring_deadline(clock, limit_seconds=30)
    staged = staged_batch(tmp_path)
    assert staged.staged.path.is_dir() and staged.quarantine.staged is not None
    clock.advance(31)

    with pytest.raises(TimeLimitError, match=r"with all 3 rows scored, just before publishing"):
        check_time_left(staged, deadline)

    assert not staged.staged.path.exists()
    assert not (tmp_path / "outputs" / "batch-1").exists()
    assert not (tmp_path / "quarantine" / "batch-1").exists()
    assert everything_under(tmp_path) == ["outputs", "quarantine"]  # empty folders only


def test_within_the_deadline_the_staged_batch_is_kept_for_publishing(tmp_path: Path) -> None:
    clock = FakeClock()
    deadline = scoring_deadline(clock, limit_seconds=30)
    staged = staged_batch(tmp_path)
    clock.advance(29)

    check_time_left(staged, deadline)

    assert (staged.staged.path / "scored.parquet").is_file()
    assert staged.quarantine.staged is not None
    assert (staged.quarantine.staged.path / "rows.parquet").is_file()
