"""The heads of the state directory's chained logs (pipelines.hashlog), kept a second time in the
MLflow tracking store: one tag per log on the experiment `agencyml-log-heads`, rewritten at each
append. A log cut back together with an old copy of its head file still disagrees with it.

MLflow is imported only when a log is first appended or read, so registering costs nothing."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.hashlog import Head, LogAnchorError
from pipelines.paths import StateDir

EXPERIMENT = "agencyml-log-heads"
TAG_PREFIX = "agencyml.head."


@dataclass(eq=True)
class MlflowHeads:
    """hashlog's Anchor for the logs under one state directory, in its tracking store."""

    state: StateDir
    _client: Any = field(default=None, compare=False, repr=False)
    _experiment_id: str | None = field(default=None, compare=False, repr=False)

    def save(self, path: Path, head: Head) -> None:
        tag = self.tag(path)
        if tag is None:
            return
        try:
            client = self.client()
            client.set_experiment_tag(self.experiment_id(create=True), tag, _text(head))
        except Exception as error:  # any failure of the store: the append must not pass
            raise LogAnchorError(self._problem("saved to", path, error)) from error

    def load(self, path: Path) -> Head | None:
        tag = self.tag(path)
        if tag is None:
            return None
        try:
            experiment_id = self.experiment_id(create=False)
            if experiment_id is None:
                return None
            stored = self.client().get_experiment(experiment_id).tags.get(tag)
        except Exception as error:
            raise LogAnchorError(self._problem("read from", path, error)) from error
        if stored is None:
            return None
        try:
            return Head(**json.loads(stored))
        except (ValueError, TypeError) as error:
            raise LogAnchorError(
                f"the tag {tag} of MLflow experiment {EXPERIMENT} is not a log head; it was "
                "edited outside agencyml"
            ) from error

    def tag(self, path: Path) -> str | None:
        """The tag that keeps the head of the log at `path`; None outside the state directory."""
        try:
            inside = Path(path).resolve().relative_to(self.state.root.resolve())
        except ValueError:
            return None
        return TAG_PREFIX + inside.as_posix()

    def client(self) -> Any:
        if self._client is None:
            from mlflow.tracking import MlflowClient

            from pipelines.registry import tracking

            tracking.configure(self.state)
            uri = self.state.tracking_uri
            self._client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        return self._client

    def experiment_id(self, *, create: bool) -> str | None:
        if self._experiment_id is None:
            experiment = self.client().get_experiment_by_name(EXPERIMENT)
            if experiment is None and not create:
                return None
            self._experiment_id = (
                experiment.experiment_id if experiment is not None else self._create()
            )
        return self._experiment_id

    def _create(self) -> str:
        from mlflow.exceptions import MlflowException

        try:
            return self.client().create_experiment(
                EXPERIMENT, artifact_location=self.state.artifact_location(EXPERIMENT)
            )
        except MlflowException:  # another process made it first
            return self.client().get_experiment_by_name(EXPERIMENT).experiment_id

    def _problem(self, done: str, path: Path, error: Exception) -> str:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return (
            f"the head of {path} could not be {done} the MLflow tracking store at "
            f"{self.state.tracking_uri} ({reason}); check that the store answers and try again"
        )


def _text(head: Head) -> str:
    return json.dumps(asdict(head), sort_keys=True)
