"""Row ids for a table without an id column. A row's id is the first 16 hex digits of a 64-bit
hash of its values written as text (every column but the target and agencyml's own, in name
order), with '-2', '-3', ... for the second, third, ... row holding the same values. The same
file gives the same ids, read whole or chunk by chunk; `row_number` keeps each row's position
in the file, so scores can be joined back to the rows they came from."""

from __future__ import annotations

from collections.abc import Collection

import numpy as np
import pandas as pd

from pipelines.config import ROW_ID
from pipelines.data.columns import text_column

ROW_NUMBER = "row_number"
MISSING = "\x1emissing\x1e"  # a missing value, apart from any text a cell holds


class RowIds:
    """Ids for the rows of one table, given chunk by chunk in order."""

    def __init__(self, leave_out: Collection[str] = ()) -> None:
        self.leave_out = {*leave_out, ROW_ID, ROW_NUMBER}
        self.seen = np.empty(0, dtype=np.uint64)  # sorted hashes of the rows so far
        self.rows = 0

    def of(self, chunk: pd.DataFrame) -> pd.DataFrame:
        """The chunk with `row_id` and `row_number` added (first and second)."""
        columns = sorted(str(c) for c in chunk.columns if str(c) not in self.leave_out)
        values = pd.DataFrame(
            {c: text_column(chunk[c]).fillna(MISSING) for c in columns}, index=chunk.index
        )
        hashes = pd.util.hash_pandas_object(values, index=False).to_numpy(dtype=np.uint64)
        before = np.searchsorted(self.seen, hashes, "right") - np.searchsorted(
            self.seen, hashes, "left"
        )
        within = pd.Series(hashes).groupby(hashes).cumcount().to_numpy()
        repeat = before + within
        ids = [
            f"{h:016x}" if n == 0 else f"{h:016x}-{n + 1}"
            for h, n in zip(hashes.tolist(), repeat.tolist(), strict=True)
        ]
        self.seen = np.sort(np.concatenate([self.seen, hashes]))
        numbers = np.arange(self.rows, self.rows + len(chunk), dtype=np.int64)
        self.rows += len(chunk)
        return chunk.assign(**{ROW_ID: ids, ROW_NUMBER: numbers})[
            [ROW_ID, ROW_NUMBER, *[c for c in chunk.columns if c not in (ROW_ID, ROW_NUMBER)]]
        ]


def with_row_ids(frame: pd.DataFrame, leave_out: Collection[str] = ()) -> pd.DataFrame:
    """The whole table with its row ids."""
    return RowIds(leave_out).of(frame)
