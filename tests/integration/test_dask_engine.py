"""The Dask engine against a real two-worker LocalCluster, real MLflow and Prefect: scoring on
the workers publishes exactly the local path's scores, training on them registers a sound
model, and a scheduler that is not there fails before anything is written."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest
import yaml
from distributed import Client, LocalCluster
from mlflow.tracking import MlflowClient
from servers import free_port

from flows.score import score
from flows.train import train
from pipelines.data.business_aid import generate_applications
from pipelines.data.storage import read_json_file
from pipelines.paths import state_dir
from pipelines.registry import tracking
from pipelines.scoring.dask_engine import DaskEngineError, DaskScorer
from pipelines.scoring.streaming import NativeScorer

FRAUD = ("business-aid", "fraud-risk")
ROWS, CHUNK_ROWS = 30_000, 4_000  # eight chunks


@pytest.fixture(scope="module")
def cluster():
    """Two single-threaded worker processes, shared by the module's runs."""
    with LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
    ) as local_cluster:
        yield local_cluster


@pytest.fixture(scope="module")
def project(prefect_server, tmp_path_factory, make_small_project):
    """fraud-risk trained in this process, and a batch of generated applications."""
    root = tmp_path_factory.mktemp("dask")
    with pytest.MonkeyPatch.context() as patch:
        project_root = make_small_project(root / "project")
        patch.setenv("AGENCYML_PROJECT_ROOT", str(project_root))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        trained = train(*FRAUD)
        frame = generate_applications(ROWS, seed=5).drop(columns=["is_fraud", "review_track"])
        yield {"root": root, "params": project_root / "params", "frame": frame, "local": trained}


def use_execution(project: dict, execution: dict) -> None:
    """Set fraud-risk's execution section in the project's params file."""
    path = project["params"] / f"{FRAUD[0]}.yaml"
    params = yaml.safe_load(path.read_text())
    params["use_cases"][FRAUD[1]]["execution"] = execution
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def write_batch(project: dict, name: str, row_group_size: int) -> Path:
    """The same rows in a file of its own bytes, so it gets its own batch id."""
    path = project["root"] / name
    project["frame"].to_parquet(path, row_group_size=row_group_size)
    return path


def visible_and_staging(folder: Path) -> tuple[list[str], list[str]]:
    names = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    return [n for n in names if not n.startswith(".")], [n for n in names if n.startswith(".")]


def test_scoring_on_the_workers_publishes_the_local_scores_and_records_the_cluster(
    project, cluster
):
    use_execution(project, {"engine": "local"})
    local = score(*FRAUD, str(write_batch(project, "local.parquet", 5_000)), chunk_rows=CHUNK_ROWS)
    use_execution(project, {"engine": "dask", "scheduler": cluster.scheduler_address})
    on_dask = score(*FRAUD, str(write_batch(project, "dask.parquet", 7_000)), chunk_rows=CHUNK_ROWS)

    assert on_dask.batch_id != local.batch_id and on_dask.newly_published
    expected = pd.read_parquet(local.output_dir / "scored.parquet")
    scored = pd.read_parquet(on_dask.output_dir / "scored.parquet")
    assert len(scored) == on_dask.rows > 6 * CHUNK_ROWS
    assert scored["application_id"].tolist() == expected["application_id"].tolist()
    assert np.array_equal(scored["probability"].to_numpy(), expected["probability"].to_numpy())
    assert scored["decision"].tolist() == expected["decision"].tolist()
    assert on_dask.decisions == local.decisions
    manifest = read_json_file(on_dask.output_dir / "manifest.json")
    assert manifest["scoring"]["execution"] == {
        "engine": "dask",
        "scheduler": cluster.scheduler_address,
        "workers": 2,
        "threads": 2,
    }
    assert manifest["rows"] == read_json_file(local.output_dir / "manifest.json")["rows"]
    local_manifest = read_json_file(local.output_dir / "manifest.json")
    assert local_manifest["scoring"]["execution"] == {"engine": "local"}

    # chunks with fewer rows than workers, and an empty one, come back whole and in order
    model = tracking.load_model(f"{FRAUD[0]}.{FRAUD[1]}", state_dir())
    conformed = model.bundle.transform.conform(project["frame"].head(3))
    with Client(cluster, set_as_default=False) as client:
        scorer = DaskScorer(model, client)
        for rows in (conformed.head(1), conformed, conformed.head(0)):
            assert np.array_equal(scorer.scores(rows), NativeScorer(model, 2).scores(rows))


def test_training_on_the_workers_registers_a_sound_model_that_scores(project, cluster):
    use_execution(project, {"engine": "dask", "scheduler": cluster.scheduler_address})
    trained = train(*FRAUD)

    local_auc = project["local"].metrics["roc_auc"]
    assert trained.metrics["roc_auc"] > 0.7
    assert abs(trained.metrics["roc_auc"] - local_auc) < 0.05
    run = MlflowClient(state_dir().tracking_uri).get_run(trained.run_id)
    assert run.data.params["execution.engine"] == "dask"
    model = tracking.load_model(trained.model_name, state_dir(), version=trained.model_version)
    assert model.bundle.booster.current_iteration() == trained.best_iteration
    assert "[machines: ]" in model.bundle.booster.model_to_string()  # no ports of the run
    conformed = model.bundle.transform.conform(project["frame"].head(500))
    scores = NativeScorer(model, 2).scores(conformed)  # the logged pyfunc agrees, row one
    assert scores.shape == (500,) and ((scores > 0) & (scores < 1)).all()


def test_an_unreachable_scheduler_fails_clearly_and_nothing_is_published(project):
    address = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    use_execution(project, {"engine": "dask", "scheduler": address})
    state = state_dir()
    outputs, quarantine = state.output_dir(*FRAUD), state.quarantine(*FRAUD)
    before = (visible_and_staging(outputs), visible_and_staging(quarantine))
    registry = MlflowClient(state.tracking_uri)
    versions = len(registry.search_model_versions(f"name = '{FRAUD[0]}.{FRAUD[1]}'"))
    batch = write_batch(project, "unreachable.parquet", 3_000)

    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        named = re.escape(f"cannot reach the Dask scheduler at {address}")
        with pytest.raises(DaskEngineError, match=named):
            score(*FRAUD, str(batch), chunk_rows=CHUNK_ROWS)
        with pytest.raises(DaskEngineError, match=named):
            train(*FRAUD)

    assert (visible_and_staging(outputs), visible_and_staging(quarantine)) == before
    assert len(registry.search_model_versions(f"name = '{FRAUD[0]}.{FRAUD[1]}'")) == versions
