"""Ingest an agency's raw sources into the parquet files DVC versions and training reads."""

from __future__ import annotations

from prefect import flow

from flows import tasks
from pipelines import config
from pipelines.data import versioning
from pipelines.data.sources import Ingested
from pipelines.orchestration import dvc_stages
from pipelines.paths import project_root, state_dir


@flow(name="ingest", flow_run_name="ingest-{agency}")
def ingest(agency: str, dataset: str | None = None) -> list[Ingested]:
    """Write one dataset of the agency (or all of them) to data/ingested/<agency>/; in a DVC
    repository, outside `dvc repro`, record the files in dvc.lock and push them."""
    params = config.load_params(agency)
    names = [dataset] if dataset else sorted(params.datasets)
    datasets = [params.dataset(name) for name in names]
    tracked = versioning.can_track(project_root())
    if tracked:  # DVC records what ingest writes only if dvc.yaml has its stage
        dvc_stages.require_in_sync(
            project_root() / dvc_stages.DVC_YAML, config.load_all_params(), f"ingesting {agency}"
        )
    written = [tasks.ingest_dataset(spec) for spec in datasets]
    if tracked:
        tasks.follow_state_remote(project_root(), state_dir().dvc_remote)
        tasks.commit_with_dvc(project_root(), [spec.stage for spec in datasets])
    return written
