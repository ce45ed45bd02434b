"""Bad inputs through `agencyml score`, on one trained project: a cell that will not cast sends
its row to quarantine with its reason; every other bad file ends in exit 4 with one line saying
what to do, its input kept in quarantine. Never a traceback, never anything half-published,
and every row counted as scored or quarantined."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from flows.train import train
from pipelines.config import load_use_case
from pipelines.data.readers import MAX_COLUMNS
from pipelines.paths import state_dir
from pipelines.scoring.batches import write_holdout_batch

AGENCY, USE_CASE = "business-aid", "fraud-risk"
DAY_FIRST = "%d/%m/%Y"
ROWS = 40  # the declared limit is 10% quarantined: up to 4 faulty rows are scored around


@pytest.fixture(scope="module")
def project(prefect_server, tmp_path_factory, make_small_project):
    """fraud-risk trained once, its dates declared day-first; 40 holdout rows to spoil."""
    root = tmp_path_factory.mktemp("bad-inputs")
    project = make_small_project(root / "project")
    params_file = project / "params" / f"{AGENCY}.yaml"
    params = yaml.safe_load(params_file.read_text())
    use_case = params["use_cases"][USE_CASE]
    use_case["features"] = {**use_case["features"], "date_formats": {"application_date": DAY_FIRST}}
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AGENCYML_PROJECT_ROOT", str(project))
        patch.setenv("AGENCYML_HOME", str(root / "state"))
        train(AGENCY, USE_CASE)
        holdout = pd.read_parquet(write_holdout_batch(load_use_case(AGENCY, USE_CASE), state_dir()))
        yield {"rows": holdout.head(ROWS).reset_index(drop=True)}


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows as an agency's export writes them: dates day-first, everything text."""
    text = frame.astype(object).where(frame.notna(), None)
    text["application_date"] = frame["application_date"].dt.strftime(DAY_FIRST)
    return text


def csv_bytes(frame: pd.DataFrame, encoding: str = "utf-8", **options) -> bytes:
    return as_text(frame).to_csv(index=False, **options).encode(encoding)


def score_file(path: Path) -> tuple[int, str, object]:
    result = CliRunner().invoke(app, ["score", "-a", AGENCY, "-u", USE_CASE, "-i", str(path)])
    return result.exit_code, " ".join(result.output.split()), result.exception


def assert_nothing_half_published() -> None:
    state = state_dir()
    for area in (state.output_dir(AGENCY, USE_CASE), state.quarantine(AGENCY, USE_CASE)):
        if not area.exists():
            continue
        staging = [p.name for p in area.iterdir() if p.name.endswith(".staging")]
        assert staging == [], f"staging left in {area}: {staging}"
    outputs = state.output_dir(AGENCY, USE_CASE)
    for batch in outputs.iterdir() if outputs.exists() else []:
        assert (batch / "manifest.json").is_file(), f"{batch} has no manifest"
    scratch = state.scratch_dir
    assert not scratch.exists() or list(scratch.iterdir()) == []


# a cell that will not cast: its row goes to quarantine with the expectation and the value;
# each case spoils its own row of one batch, scored once (7 of 80 rows: under the 10% limit)
ROW_FAULTS = {
    "words-in-a-number": ("employees", "12 employees", "'employees' holds numbers"),
    "thousands-not-declared": (
        "prior_revenue_dkk",
        "11,838.37",
        "'prior_revenue_dkk' holds numbers, found '11,838.37'",
    ),
    "true-in-a-number": (
        "applicants_sharing_phone",
        "TRUE",
        "'applicants_sharing_phone' holds numbers, found 'TRUE'",
    ),
    "no-such-day": (
        "application_date",
        "30/02/2021",
        "'application_date' holds dates written '%d/%m/%Y', found '30/02/2021'",
    ),
    "iso-where-day-first-is-declared": (
        "application_date",
        "2021-02-03",
        "holds dates written '%d/%m/%Y', found '2021-02-03'",
    ),
    "epoch-seconds-not-declared": (
        "application_date",
        "1633046400",
        "epoch seconds are read only where features.date_formats says '%s'), found '1633046400'",
    ),
    "words-and-a-bad-date-in-one-row": (
        "employees",
        "many",
        "'employees' holds numbers, found 'many'",
    ),
}
SPOILED_ROWS = {case: 5 + 10 * index for index, case in enumerate(ROW_FAULTS)}


@pytest.fixture(scope="module")
def row_faults(project, tmp_path_factory):
    """One batch of 80 rows with a spoiled cell in each case's row, scored once."""
    rows = pd.concat(
        [
            project["rows"],
            project["rows"].assign(application_id=lambda f: f["application_id"] + "-b"),
        ]
    )
    text = as_text(rows.reset_index(drop=True))
    for case, (column, value, _) in ROW_FAULTS.items():
        text.loc[SPOILED_ROWS[case], column] = value
    text.loc[SPOILED_ROWS["words-and-a-bad-date-in-one-row"], "application_date"] = "31/04/2021"
    path = tmp_path_factory.mktemp("row-faults") / "batch.csv"
    text.to_csv(path, index=False)
    code, output, error = score_file(path)
    assert code == 0, (output, error)
    manifest = json.loads(next(_batches_with(output)).joinpath("manifest.json").read_text())
    kept = pd.read_parquet(
        state_dir().quarantine(AGENCY, USE_CASE) / manifest["batch_id"] / "rows.parquet"
    )
    return {"manifest": manifest, "kept": kept.set_index("application_id"), "text": text}


def test_cells_that_will_not_cast_quarantine_their_rows_and_the_rest_is_scored(row_faults):
    faulty = len(ROW_FAULTS)
    rows = row_faults["manifest"]["rows"]
    assert rows == {"in": 2 * ROWS, "scored": 2 * ROWS - faulty, "quarantined": faulty}
    assert_nothing_half_published()


@pytest.mark.parametrize("case", ROW_FAULTS, ids=list(ROW_FAULTS))
def test_the_quarantined_row_says_which_cell_and_why(row_faults, case):
    column, value, reason = ROW_FAULTS[case]
    row_id = row_faults["text"].loc[SPOILED_ROWS[case], "application_id"]
    kept = row_faults["kept"].loc[row_id]
    assert reason in kept["failed_expectations"], kept["failed_expectations"]
    assert kept[column] == value  # the raw value, as the file had it


def test_a_row_with_two_bad_cells_names_both(row_faults):
    row_id = row_faults["text"].loc[
        SPOILED_ROWS["words-and-a-bad-date-in-one-row"], "application_id"
    ]
    reasons = row_faults["kept"].loc[row_id, "failed_expectations"]
    assert "found 'many'" in reasons and "found '31/04/2021'" in reasons
    assert "is not empty" not in reasons  # the empty cell a failed cast leaves is not blamed


def _batches_with(output: str):
    outputs = state_dir().output_dir(AGENCY, USE_CASE)
    return (batch for batch in outputs.iterdir() if batch.name in output)


def test_day_first_dates_are_read_as_declared_not_month_first(project, tmp_path):
    """13/10/2021 and 07/10/2021 are 13 and 7 October: the scores equal those of the same rows
    with the dates as dates."""
    rows = project["rows"].copy()
    rows.loc[: ROWS // 2, "application_date"] = pd.Timestamp("2021-10-13")
    rows.loc[ROWS // 2 :, "application_date"] = pd.Timestamp("2021-10-07")
    text, typed = tmp_path / "day-first.csv", tmp_path / "typed.parquet"
    text.write_bytes(csv_bytes(rows))
    rows.to_parquet(typed)
    assert "07/10/2021" in text.read_text() and "13/10/2021" in text.read_text()
    scores = []
    for path in (text, typed):
        code, output, error = score_file(path)
        assert code == 0, (output, error)
        scored = pd.read_parquet(next(_batches_with(output)) / "scored.parquet")
        scores.append(scored.set_index("application_id")["probability"].sort_index())
    pd.testing.assert_series_equal(scores[0], scores[1])
    assert_nothing_half_published()


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _duplicated_parquet(frame: pd.DataFrame, path: Path) -> Path:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    arrays = [*table.columns, table.column("employees")]
    pq.write_table(pa.Table.from_arrays(arrays, names=[*table.column_names, "employees"]), path)
    return path


def _wide(frame: pd.DataFrame, path: Path, columns: int) -> Path:
    text = as_text(frame.head(5))
    extra = columns - text.shape[1]
    header = ",".join([*text.columns, *(f"x{index}" for index in range(extra))])
    lines = [header, *(",".join(map(_cell, row)) + "," * extra for row in text.itertuples(False))]
    return _write(path, ("\n".join(lines) + "\n").encode())


def _wide_header(frame: pd.DataFrame, path: Path, columns: int) -> Path:
    """A header of `columns` names over rows that hold only the declared ones."""
    text = as_text(frame.head(5))
    names = [*text.columns, *(f"x{index}" for index in range(columns - text.shape[1]))]
    body = text.to_csv(index=False, header=False)
    return _write(path, (",".join(names) + "\n" + body).encode())


def _cell(value: object) -> str:
    return "" if value is None else str(value)


def _with_huge_cell(frame: pd.DataFrame, path: Path) -> Path:
    text = as_text(frame).assign(notes="")
    text.loc[2, "notes"] = "x" * (50 << 20)
    text.to_csv(path, index=False)
    return path


def _truncated_gzip(frame: pd.DataFrame, path: Path) -> Path:
    whole = gzip.compress(csv_bytes(frame))
    return _write(path, whole[: len(whole) // 2])


# files that are refused whole: exit 4, one line that says what to do, input in quarantine
REJECTED = {
    "upper-case-header": (
        lambda f, d: _write(d / "b.csv", csv_bytes(f.rename(columns={"employees": "EMPLOYEES"}))),
        "the header has 'EMPLOYEES'; column names are matched exactly - did you mean 'employees'?",
    ),
    "latin-1-bytes": (
        lambda f, d: _write(
            d / "b.csv",
            csv_bytes(f.assign(region=["Sjælland"] * len(f))).decode().encode("latin-1"),
        ),
        "is not UTF-8: set `encoding`",
    ),
    "truncated-gzip": (
        lambda f, d: _truncated_gzip(f, d / "b.csv.gz"),
        "is truncated or damaged",
    ),
    "duplicated-column-csv": (
        lambda f, d: _write(
            d / "b.csv",
            csv_bytes(f).replace(b"employees", b"prior_revenue_dkk", 1),
        ),
        "has 2 columns named 'prior_revenue_dkk'",
    ),
    "duplicated-column-parquet": (
        lambda f, d: _duplicated_parquet(f, d / "b.parquet"),
        "has 2 columns named 'employees'",
    ),
    "epoch-seconds-in-a-parquet": (
        lambda f, d: _write(
            d / "b.parquet",
            _parquet_bytes(
                f.assign(application_date=f["application_date"].astype("int64") // 10**9)
            ),
        ),
        "epoch seconds are read only where features.date_formats says '%s')",
    ),
    "a-million-columns": (
        lambda f, d: _wide_header(f, d / "b.csv", 1_000_000),
        f"has 1,000,000 columns; at most {MAX_COLUMNS:,} are read",
    ),
    "too-many-columns": (
        lambda f, d: _wide(f, d / "b.csv", MAX_COLUMNS * 10),
        f"has {MAX_COLUMNS * 10:,} columns; at most {MAX_COLUMNS:,} are read",
    ),
}


def _epoch_seconds(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(application_date=frame["application_date"].astype("int64") // 10**9)


def _parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


@pytest.mark.parametrize("case", REJECTED, ids=list(REJECTED))
def test_a_file_that_cannot_be_scored_is_refused_in_one_line(project, tmp_path, case):
    make, reason = REJECTED[case]
    path = make(project["rows"], tmp_path)
    code, output, error = score_file(path)
    assert code == 4, (output, error)
    assert reason in output, output
    assert "Traceback" not in output
    kept = [p for p in state_dir().quarantine(AGENCY, USE_CASE).rglob("input*") if p.is_file()]
    assert any(p.read_bytes() == path.read_bytes() for p in kept), "the input is kept"
    assert_nothing_half_published()


# files that look wrong but hold what the model needs: scored in full
SCORED = {
    "padded-header": lambda f, d: _write(
        d / "b.csv", as_text(f).rename(columns=lambda c: f"  {c} ").to_csv(index=False).encode()
    ),
    "tab-separated-named-csv": lambda f, d: _write(d / "b.csv", csv_bytes(f, sep="\t")),
    # names agencyml writes itself, and a repeated name, in columns it does not read
    "reserved-and-repeated-names-unread": lambda f, d: _write(
        d / "b.csv",
        csv_bytes(
            f.assign(failed_expectations="x", row_number=1, decision="y", note=1, remark=2)
        ).replace(b",remark", b",note", 1),
    ),
    "huge-cell-in-an-unused-column": lambda f, d: _with_huge_cell(f, d / "b.csv"),
    "wide-header": lambda f, d: _wide(f, d / "b.csv", MAX_COLUMNS),
}


@pytest.mark.parametrize("case", SCORED, ids=list(SCORED))
def test_a_file_that_looks_wrong_but_holds_the_columns_is_scored(project, tmp_path, case):
    path = SCORED[case](project["rows"], tmp_path)
    code, output, error = score_file(path)
    assert code == 0, (output, error)
    manifest = json.loads(next(_batches_with(output)).joinpath("manifest.json").read_text())
    rows = manifest["rows"]
    assert rows["in"] == rows["scored"] + rows["quarantined"] and rows["quarantined"] == 0
    assert rows["in"] in (ROWS, 5)
    assert_nothing_half_published()
