"""What data a model was trained on, as facts an auditor can check: source, digest, size."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pandas as pd

from pipelines.config import FileSource, GeneratorSource, UseCaseSpec
from pipelines.paths import project_root
from pipelines.storage import file_sha256


@dataclass(frozen=True)
class DataLineage:
    name: str
    source: str  # where the rows came from: a project-relative path or a generator call
    digest: str  # sha256 of the table's content, whatever file format carried it
    rows: int
    file_sha256: str | None = None

    def as_tags(self) -> dict[str, str]:
        prefix = f"agencyml.data.{self.name}"
        tags = {
            f"{prefix}.source": self.source,
            f"{prefix}.digest": self.digest,
            f"{prefix}.rows": str(self.rows),
        }
        if self.file_sha256:
            tags[f"{prefix}.file_sha256"] = self.file_sha256
        return tags


def table_digest(frame: pd.DataFrame) -> str:
    """A content hash of rows and columns, stable across runs and file formats."""
    digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def training_data_lineage(spec: UseCaseSpec, frame: pd.DataFrame) -> DataLineage:
    source = spec.params.source
    if isinstance(source, GeneratorSource):
        call = f"generator:{source.generator}?rows={source.rows}&seed={source.seed}"
        return DataLineage("training", call, table_digest(frame), len(frame))
    assert isinstance(source, FileSource)
    path = source.resolved_path()
    try:
        shown = str(path.relative_to(project_root()))
    except ValueError:
        shown = str(path)
    return DataLineage("training", shown, table_digest(frame), len(frame), file_sha256(path))
