"""The engines module hands each use case's engine to training and streaming: this process for
engine local, the Dask engine's fitter for engine dask."""

from __future__ import annotations

import pytest

from pipelines.config import Execution
from pipelines.modeling import training
from pipelines.scoring import engines


def test_a_local_use_case_fits_in_this_process() -> None:
    assert engines.booster_fitter(Execution(engine="local")) is training.fit_booster


def test_a_dask_use_case_fits_on_the_cluster() -> None:
    from pipelines.scoring import dask_engine

    assert engines.booster_fitter(Execution(engine="dask")) is dask_engine.fit_booster_dask


def test_an_unknown_engine_is_refused_by_the_params() -> None:
    with pytest.raises(ValueError, match="engine"):
        Execution(engine="spark")  # type: ignore[arg-type]
