"""A run's time limit, kept by the run itself: the flow starts a Deadline from the use case's
params and checks it at the points where stopping is safe (between chunks, before anything is
published or registered). Prefect's own timeout stays as a later backstop for a step that hangs."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pipelines.config import UseCaseSpec

# Prefect's timeout fires only this long after the limit the run checks itself, so it never
# races the run's own checks; it is there for a step that hangs between two checks.
BACKSTOP_GRACE_SECONDS = 120.0
BACKSTOP_GRACE_FRACTION = 0.25


class TimeLimitError(RuntimeError):
    """A run went past its use case's time limit and stopped before publishing anything."""


@dataclass(frozen=True)
class Deadline:
    """`limit_seconds` after `started` on `clock` (monotonic; a test passes a fake one)."""

    what: str  # the run, for messages: "scoring business-aid.fraud-risk"
    setting: str  # the params key that sets the limit
    limit_seconds: float
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    started: float = field(default=-1.0)

    def __post_init__(self) -> None:
        if self.limit_seconds <= 0:
            raise ValueError(f"a time limit must be positive, got {self.limit_seconds} s")
        if self.started < 0:
            object.__setattr__(self, "started", self.clock())

    @classmethod
    def from_minutes(
        cls,
        what: str,
        setting: str,
        minutes: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> Deadline:
        return cls(what, setting, minutes * 60, clock)

    def elapsed(self) -> float:
        return self.clock() - self.started

    def passed(self) -> bool:
        return self.elapsed() > self.limit_seconds

    def check(self, progress: str) -> None:
        """Raise TimeLimitError if the limit has passed; `progress` says how far the run got."""
        if not self.passed():
            return
        raise TimeLimitError(
            f"{self.what} ran past its time limit ({self.setting} = "
            f"{describe_seconds(self.limit_seconds)}) after {describe_seconds(self.elapsed())}; "
            f"it stopped {progress}. Raise {self.setting} in the agency's params file, or give "
            "the run less work (split a large batch)."
        )


def run_deadline(
    spec: UseCaseSpec, kind: Literal["train", "score"], clock: Callable[[], float] = time.monotonic
) -> Deadline:
    """The deadline of a training or scoring run of the use case, starting now."""
    run = spec.params.orchestration
    minutes = run.train_timeout_minutes if kind == "train" else run.score_timeout_minutes
    doing = "training" if kind == "train" else "scoring"
    return Deadline.from_minutes(
        f"{doing} {spec.agency}.{spec.name}",
        f"orchestration.{kind}_timeout_minutes",
        minutes,
        clock,
    )


def backstop_seconds(limit_seconds: float) -> float:
    """Prefect's own timeout for a run whose limit is `limit_seconds`."""
    return limit_seconds + max(BACKSTOP_GRACE_SECONDS, BACKSTOP_GRACE_FRACTION * limit_seconds)


def describe_seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
