"""Progress bars for long work: rows done, rows per second and the time left."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pipelines.data.storage import count_rows


class RowsColumn(ProgressColumn):
    """'1,250,000 / 10,000,000 rows' (or without the total when it is not known)."""

    def render(self, task: Task) -> Text:
        total = f" / {int(task.total):,}" if task.total is not None else ""
        return Text(f"{int(task.completed):,}{total} rows", style="progress.download", no_wrap=True)


class RowsPerSecondColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        shown = f"{speed:,.0f} rows/s" if speed else "- rows/s"
        return Text(shown, style="progress.data.speed", no_wrap=True)


@contextlib.contextmanager
def row_progress(path: Path, description: str, enabled: bool) -> Iterator[Callable[[int], None]]:
    """Yield a callback that advances a bar by a number of rows. The total comes from a
    parquet footer; a CSV shows rows and speed without an ETA."""
    if not enabled:
        yield lambda rows: None
        return
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=20),
        RowsColumn(),
        RowsPerSecondColumn(),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        task = progress.add_task(description, total=count_rows(path))
        yield lambda rows: progress.advance(task, rows)
