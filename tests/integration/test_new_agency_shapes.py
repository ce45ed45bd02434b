"""Tables in the shapes agencies have, each built here, each taken from `agencyml new-agency`
through ingest, train, sample and score with no hand edit: a whitespace-separated credit file of
1,000 rows without header or id, an Excel workbook, and a semicolon-separated `.txt` export
with a decimal comma, day-first dates, sixteen classes whose labels carry punctuation and one
row without a label."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from test_onboarding_shapes import claims_table
from typer.testing import CliRunner

from flows.cli import app
from pipelines.paths import state_dir

runner = CliRunner()


def credit(path: Path) -> str:
    """1,000 rows, runs of spaces, no header, no id; good (1) or bad (2) credit follows from
    the account status and the duration together."""
    rng = np.random.default_rng(11)
    status = rng.choice(["A11", "A12", "A14"], 1_000)
    months = rng.integers(6, 60, 1_000)
    amount = rng.integers(250, 15_000, 1_000)
    bad = ((status == "A11") & (months > 24)) | ((status == "A14") & (months <= 12))
    bad ^= rng.random(1_000) < 0.03
    lines = [
        f"{s}  {m} A3{rng.integers(0, 5)} {a}  {2 if b else 1}"
        for s, m, a, b in zip(status, months, amount, bad, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return "column_5"


def workbook(path: Path) -> str:
    """An .xlsx workbook with a header and an id; three routes follow from the region and the
    amount together."""
    rng = np.random.default_rng(12)
    region = rng.choice(["north", "south", "east"], 900)
    amount = rng.gamma(2.0, 400.0, 900).round(2)
    route = np.where(
        region == "north",
        np.where(amount > 800, "audit", "pay"),
        np.where(amount > 400, "review", "pay"),
    )
    pd.DataFrame(
        {
            "case_no": [f"C{i:05d}" for i in range(900)],
            "region": region,
            "amount": amount,
            "route": route,
        }
    ).to_excel(path.with_suffix(".xlsx"), index=False)
    return "route"


def export(path: Path) -> str:
    """The claims export of test_onboarding_shapes: ';' separated, decimal commas, day-first
    dates, sixteen punctuated classes, one row without a label."""
    table = claims_table(1_600)
    table.loc[17, "program"] = None
    table.to_csv(path.with_suffix(".txt"), sep=";", index=False)
    return "program"


SHAPES: dict[str, tuple[Callable[[Path], str], str, str]] = {
    "whitespace-credit": (credit, "german.data", "binary"),
    "excel": (workbook, "cases.xlsx", "multiclass"),
    "semicolon-export": (export, "claims.txt", "multiclass"),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_a_table_goes_from_new_agency_to_scored_batches_with_no_hand_edit(
    prefect_server, small_project, tmp_path, shape
):
    make, name, task = SHAPES[shape]
    source = tmp_path / name
    target = make(source)
    agency = f"agency-{shape}"

    def agencyml(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, f"{args}: {' '.join(result.output.split())}"
        return result.output

    agencyml("new-agency", agency, "--from", str(source), "--target", target)
    params = yaml.safe_load((small_project / "params" / f"{agency}.yaml").read_text())
    assert params["use_cases"]["main"]["task"] == task
    agencyml("ingest", "--agency", agency)
    agencyml("train", "-a", agency, "-u", "main")
    sample = tmp_path / "sample.csv"
    agencyml("sample", "-a", agency, "-u", "main", "--rows", "60", "-o", str(sample))
    agencyml("score", "-a", agency, "-u", "main", "-i", str(sample))

    (batch,) = state_dir().output_dir(agency, "main").iterdir()
    manifest = yaml.safe_load((batch / "manifest.json").read_text())
    assert manifest["rows"]["in"] == 60
    assert manifest["rows"]["scored"] + manifest["rows"]["quarantined"] == 60
    if shape == "whitespace-credit":
        assert "id_column" not in params["use_cases"]["main"]
        assert params["datasets"]["german"]["separator"] == "whitespace"
    if shape == "semicolon-export":
        assert params["datasets"]["claims"]["decimal"] == ","
        assert params["use_cases"]["main"]["features"]["dayfirst"] is True
        assert len(params["use_cases"]["main"]["features"]["numeric"]) == 1
        quarantined = state_dir().quarantine(agency, "main")
        assert len(list(quarantined.glob("training-unlabelled-*"))) == 1
