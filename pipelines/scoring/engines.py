"""Where the heavy steps run: in this process, or on a Dask cluster when a use case's
execution.engine is dask. The one module that hands the Dask engine to streaming and to
training, so neither imports it; dask itself is imported only when a use case asks for it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from pipelines.config import Execution, UseCase, UseCaseSpec
from pipelines.deadline import Deadline
from pipelines.modeling import training
from pipelines.paths import StateDir
from pipelines.registry import tracking
from pipelines.scoring import streaming


def open_scorer(
    execution: Execution,
    model: tracking.LoadedModel,
    threads: int,
    resources: contextlib.ExitStack,
) -> streaming.Scorer:
    """The scorer the use case's engine asks for. A Dask scorer's client (and the LocalCluster
    it may start) is entered on `resources`, so it lives as long as the stream."""
    if execution.engine == "local":
        return streaming.NativeScorer(model, threads)
    from pipelines.scoring import dask_engine

    client = resources.enter_context(dask_engine.dask_client(execution))
    return dask_engine.DaskScorer(model, client)


def score_to_staging(
    spec: UseCaseSpec,
    path: Path,
    model: tracking.LoadedModel,
    *,
    batch_id: str,
    input_sha256: str,
    state: StateDir,
    options: streaming.StreamOptions | None = None,
    on_rows: Callable[[int], None] | None = None,
    deadline: Deadline | None = None,
) -> streaming.StagedBatch:
    """streaming.score_to_staging on the use case's engine."""
    options = options or streaming.StreamOptions()
    with contextlib.ExitStack() as resources:  # a Dask client, closed on the way out
        scorer = open_scorer(spec.params.execution, model, options.threads, resources)
        return streaming.score_to_staging(
            spec,
            path,
            model,
            batch_id=batch_id,
            input_sha256=input_sha256,
            state=state,
            options=options,
            on_rows=on_rows,
            deadline=deadline,
            scorer=scorer,
        )


def booster_fitter(execution: Execution) -> training.BoosterFitter:
    """LightGBM in this process, or on the cluster's workers."""
    if execution.engine == "local":
        return training.fit_booster
    from pipelines.scoring import dask_engine

    return dask_engine.fit_booster_dask


def fit_model(split: training.DataSplit, params: UseCase) -> training.TrainedModel:
    """training.fit_model on the use case's engine."""
    return training.fit_model(split, params, booster_fitter(params.execution))
