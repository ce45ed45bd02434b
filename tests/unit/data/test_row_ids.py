"""Row ids for tables without an id column: from each row's values and its ordinal among
identical rows, the same whether the table is read whole or chunk by chunk."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.data.row_ids import ROW_NUMBER, RowIds, with_row_ids

TABLE = pd.DataFrame(
    {"sector": ["x", "y", "x", "x", "y"], "amount": [1.0, 2.0, 1.0, 1.0, 3.0], "y": list("abcde")}
)


def test_identical_rows_get_the_same_id_with_their_ordinal() -> None:
    ids = with_row_ids(TABLE, leave_out={"y"})["row_id"].tolist()
    assert ids[2] == f"{ids[0]}-2" and ids[3] == f"{ids[0]}-3"
    assert len(set(ids)) == 5 and len(ids[0]) == 16


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_chunk_by_chunk_gives_the_ids_and_row_numbers_of_the_whole(chunk_rows: int) -> None:
    whole = with_row_ids(TABLE, leave_out={"y"})
    row_ids = RowIds({"y"})
    chunks = [
        row_ids.of(TABLE.iloc[start : start + chunk_rows])
        for start in range(0, len(TABLE), chunk_rows)
    ]
    pd.testing.assert_frame_equal(pd.concat(chunks), whole)
    assert whole[ROW_NUMBER].tolist() == [0, 1, 2, 3, 4]


def test_ids_depend_on_the_values_not_on_the_column_order_the_target_or_number_types() -> None:
    reordered = TABLE[["amount", "y", "sector"]].assign(y=list("vwxyz"))
    as_text = TABLE.assign(amount=["1", "2", "1", "1", "3"])
    expected = with_row_ids(TABLE, leave_out={"y"})["row_id"].tolist()
    assert with_row_ids(reordered, leave_out={"y"})["row_id"].tolist() == expected
    assert with_row_ids(as_text, leave_out={"y"})["row_id"].tolist() == expected
    changed = TABLE.assign(amount=[1.0, 2.0, 1.0, 1.0, 4.0])
    assert with_row_ids(changed, leave_out={"y"})["row_id"].tolist()[4] != expected[4]


def test_missing_values_are_values_too() -> None:
    table = pd.DataFrame({"a": [None, "", None]})
    ids = with_row_ids(table)["row_id"].tolist()
    assert ids[2] == f"{ids[0]}-2" and ids[1] != ids[0]
