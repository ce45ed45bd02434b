"""`agencyml new-agency` drafts a params file from an agency's own table, built here in the test
in the shapes agencies have: it is then ingested, trained, sampled and scored with no hand edit.
What it cannot decide (a table without an id) it says in the draft and in the command's output."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from flows.cli import app
from pipelines.config import load_params
from pipelines.data.profiling import profile_table

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def recall_notices(rows: int, seed: int = 5) -> pd.DataFrame:
    """A recall register: an id, dates, free-text descriptions, a category and units sold; the
    hazard class follows from the category and the units together (so a model of
    interactions beats a linear one), plus a code filled in after the decision."""
    rng = np.random.default_rng(seed)
    category = rng.choice(["toys", "appliances"], rows)
    units = rng.integers(10, 50_000, rows)
    large = units > 25_000
    hazard = np.select(
        [(category == "toys") & large, category == "toys", large],
        ["choking", "chemical", "fire"],
        "electrical",
    )
    published = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), "D")
    return pd.DataFrame(
        {
            "notice_id": [f"N{index:06d}" for index in range(rows)],
            "published": published.strftime("%Y-%m-%d"),
            "category": category,
            "description": [
                f"notice about batch {rng.integers(1, 999)} of model {rng.integers(100, 9999)}"
                for _ in range(rows)
            ],
            "units_sold": units,
            "country": "DK",
            "hazard": hazard,
            "hazard_code": [f"H-{h[:3].upper()}" for h in hazard],  # written after the decision
        }
    )


@pytest.fixture
def project(prefect_server, small_project):
    return small_project


def test_a_tab_separated_register_goes_from_the_draft_to_scored_batches(project, tmp_path):
    source = tmp_path / "recalls export.txt"
    recall_notices(900).to_csv(source, sep="\t", index=False)

    code, output = invoke("new-agency", "consumer-safety", "--from", str(source), "-t", "hazard")

    assert code == 0, output
    assert "hazard_code" in output and "may leak the target" in output
    draft = (project / "params" / "consumer-safety.yaml").read_text()
    params = yaml.safe_load(draft)
    use_case = params["use_cases"]["main"]
    assert use_case["id_column"] == "notice_id" and use_case["task"] == "multiclass"
    assert use_case["features"]["text"] == ["description"]
    assert use_case["features"]["date"] == ["published"]
    assert "category" in use_case["features"]["categorical"]
    assert "units_sold" in use_case["features"]["numeric"]
    every_feature = [
        c for kind in use_case["features"].values() if isinstance(kind, list) for c in kind
    ]
    assert "hazard_code" not in every_feature and "country" not in every_feature
    assert "country: constant" in draft
    assert use_case["split"] == {"method": "time", "date_column": "published"}
    load_params("consumer-safety")  # the draft is valid params as it stands
    assert (project / "data" / "consumer-safety" / "recalls export.txt").is_file()

    sample = tmp_path / "s.csv"
    for command in (
        ["ingest", "--agency", "consumer-safety"],
        ["train", "-a", "consumer-safety", "-u", "main"],
        [
            "sample",
            "-a",
            "consumer-safety",
            "-u",
            "main",
            "--rows",
            "50",
            "-o",
            str(tmp_path / "s.csv"),
        ],
        ["score", "-a", "consumer-safety", "-u", "main", "-i", str(sample)],
    ):
        code, output = invoke(*command)
        assert code == 0, f"{command}: {output}"
    assert "rows 50" in output or "rows: 50" in output or " 50 " in output


def test_a_table_without_a_target_gets_a_draft_that_says_what_to_fill_in(project, tmp_path):
    census = "39, State-gov, 77516, Bachelors, <=50K\n50, Self-emp, 83311, Masters, >50K\n" * 60
    source = tmp_path / "adult.data"
    source.write_text(census)

    code, output = invoke("new-agency", "statistics", "--from", str(source))

    assert code == 0, output
    assert "CHANGE_ME" in output and "target" in output
    draft = (project / "params" / "statistics.yaml").read_text()
    assert "header: false" in draft and "skip_initial_space: true" in draft
    assert "target: CHANGE_ME" in draft
    assert "id_column" not in yaml.safe_load(draft)["use_cases"]["main"]  # row_id is made


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["new-agency", "Tax Office", "--from", "{src}"], 2, "e.g. 'tax-office'"),
        (["new-agency", "tax", "--from", "{src}", "-t", "nope"], 2, "no column 'nope'"),
        (["new-agency", "tax", "--from", "{missing}"], 3, "input file not found"),
        (["new-agency", "business-aid", "--from", "{src}"], 2, "exists already"),
    ],
    ids=["bad-name", "no-such-target", "no-such-file", "exists"],
)
def test_bad_input_is_refused_and_writes_nothing(project, tmp_path, args, code, message):
    source = tmp_path / "claims.csv"
    recall_notices(40).to_csv(source, index=False)
    before = sorted(p.name for p in (project / "params").iterdir())
    filled = [a.format(src=source, missing=tmp_path / "missing.csv") for a in args]

    got, output = invoke(*filled)

    assert got == code, output
    assert message in output
    assert sorted(p.name for p in (project / "params").iterdir()) == before
    assert not (project / "data" / "tax").exists()


def test_the_profile_reads_each_kind_of_column():
    profile = profile_table(recall_notices(300), target="hazard")
    kinds = {column.name: column.kind for column in profile.columns}
    assert kinds == {
        "notice_id": "id",
        "published": "date",
        "category": "categorical",
        "description": "text",
        "units_sold": "numeric",
        "country": "left out",
        "hazard_code": "categorical",
    }
    assert list(profile.leaks) == ["hazard_code"]
    assert profile.task == "multiclass" and sum(profile.classes.values()) == 300


def census(rows: int, seed: int = 8) -> str:
    """', '-separated, no header, no id: age, work class, hours, education, income band, with
    some rows repeated word for word, as in the public census extracts."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(rows):
        age, hours = int(rng.integers(18, 80)), int(rng.integers(10, 70))
        work = rng.choice(["Private", "State-gov", "Self-emp"])
        education = rng.choice(["Bachelors", "HS-grad", "Masters"])
        rich = (hours > 40) != (work == "Self-emp") and education != "HS-grad"
        income = ">50K" if rich ^ (rng.random() < 0.05) else "<=50K"
        lines.append(f"{age}, {work}, {hours}, {education}, {income}")
    return "\n".join([*lines, lines[0], lines[0]]) + "\n"  # two exact repeats


def test_a_table_without_an_id_is_scored_with_row_ids_and_row_numbers(project, tmp_path):
    source = tmp_path / "adult.data"
    source.write_text(census(1_200))

    code, output = invoke("new-agency", "statistics", "--from", str(source), "-t", "column_5")

    assert code == 0, output
    use_case = yaml.safe_load((project / "params" / "statistics.yaml").read_text())["use_cases"]
    assert "id_column" not in use_case["main"] and use_case["main"]["task"] == "binary"
    sample = tmp_path / "try.csv"
    for command in (
        ["ingest", "--agency", "statistics"],
        ["train", "-a", "statistics", "-u", "main"],
        ["sample", "-a", "statistics", "-u", "main", "--rows", "80", "-o", str(sample)],
    ):
        code, output = invoke(*command)
        assert code == 0, f"{command}: {output}"
    batch = pd.read_csv(sample, dtype=str)
    assert "row_id" not in batch.columns  # a batch brings only its own columns
    repeated = pd.concat([batch, batch.head(3)])  # the same rows twice in one batch
    repeated.to_csv(sample, index=False)

    code, output = invoke("score", "-a", "statistics", "-u", "main", "-i", str(sample))

    assert code == 0, output
    from pipelines.paths import state_dir

    (batch_dir,) = state_dir().output_dir("statistics", "main").iterdir()
    scored = pd.read_parquet(batch_dir / "scored.parquet")
    assert list(scored.columns[:2]) == ["row_id", "row_number"]
    assert len(scored) == 83 and scored["row_id"].is_unique
    assert sorted(scored["row_number"]) == list(range(83))
    first = scored.set_index("row_number").loc[0, "row_id"]
    assert scored.set_index("row_number").loc[80, "row_id"] == f"{first}-2"
