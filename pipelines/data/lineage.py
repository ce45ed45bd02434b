"""What data a model was trained on, as facts an auditor can check: where the rows came from,
the DVC-versioned file they were read from (path, md5, stage, remote) and a content digest."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from pipelines.config import DatasetSpec, FileSource, GeneratorSource, UseCaseSpec
from pipelines.data.storage import file_sha256
from pipelines.data.versioning import TrackedData, tracked_data
from pipelines.paths import project_root


@dataclass(frozen=True)
class DataLineage:
    name: str
    source: str  # the raw source: a project-relative path or a generator call
    digest: str  # sha256 of the table's content, whatever file format carried it
    rows: int
    file_sha256: str | None = None  # of the raw source file
    dvc: TrackedData | None = None  # the ingested file the rows were read from

    def as_tags(self) -> dict[str, str]:
        prefix = f"agencyml.data.{self.name}"
        tags = {
            f"{prefix}.source": self.source,
            f"{prefix}.digest": self.digest,
            f"{prefix}.rows": str(self.rows),
        }
        if self.file_sha256:
            tags[f"{prefix}.file_sha256"] = self.file_sha256
        if self.dvc is not None:
            tags.update(
                {
                    f"{prefix}.dvc_path": self.dvc.path,
                    f"{prefix}.md5": self.dvc.md5,
                    f"{prefix}.dvc_status": self.dvc.status,
                    f"{prefix}.dvc_md5": self.dvc.lock_md5 or "none",
                    f"{prefix}.dvc_stage": self.dvc.stage or "none",
                    f"{prefix}.dvc_remote": self.dvc.remote or "none",
                    f"{prefix}.dvc_remote_url": self.dvc.remote_url or "none",
                }
            )
        return tags

    @property
    def dataset_source(self) -> str:
        """What MLflow shows as the dataset's source: the DVC path when there is one."""
        return self.dvc.path if self.dvc is not None else self.source

    @property
    def dataset_digest(self) -> str:
        """What MLflow shows as the dataset's digest: DVC's md5 when there is one."""
        return self.dvc.md5 if self.dvc is not None else self.digest[:32]


def table_digest(frame: pd.DataFrame) -> str:
    """A content hash of rows and columns, stable across runs and file formats."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def describe_source(dataset: DatasetSpec) -> tuple[str, str | None]:
    """The raw source as text, with the sha256 of its file when it is one."""
    source = dataset.source
    if isinstance(source, GeneratorSource):
        return f"generator:{source.generator}?rows={source.rows}&seed={source.seed}", None
    assert isinstance(source, FileSource)
    path = source.resolved_path()
    try:
        shown = str(path.relative_to(project_root()))
    except ValueError:
        shown = str(path)
    return shown, file_sha256(path)


def training_data_lineage(
    spec: UseCaseSpec, frame: pd.DataFrame, name: str = "training"
) -> DataLineage:
    """`frame` (all rows read, or a split of them, named by `name`) and the files behind it."""
    source, raw_sha256 = describe_source(spec.data)
    ingested = spec.data.resolved_path()
    dvc = tracked_data(project_root(), spec.data.path) if ingested.is_file() else None
    return DataLineage(name, source, table_digest(frame), len(frame), raw_sha256, dvc)
