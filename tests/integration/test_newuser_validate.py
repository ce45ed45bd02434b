"""`agencyml validate --input` on a batch whose header spells a column another way: refused
(exit 4) naming the column it meant, with no empty '()' where the counts go."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from flows.cli import app
from pipelines.config import load_use_case


def test_a_misspelt_header_is_rejected_with_the_column_meant(prefect_server, small_project):
    params = load_use_case("product-safety", "risk-triage").params
    columns = params.required_columns(with_target=False)
    misspelt = columns[-1].upper()
    batch = small_project.parent / "batch.csv"
    pd.DataFrame([["x"] * len(columns)] * 3, columns=[*columns[:-1], misspelt]).to_csv(
        batch, index=False
    )
    result = CliRunner().invoke(
        app, ["validate", "-a", "product-safety", "-u", "risk-triage", "-i", str(batch)]
    )
    output = " ".join(result.output.split())
    assert result.exit_code == 4, output
    assert f"did you mean '{columns[-1]}'" in output
    assert "Checked against the file itself: rejected - the header has" in output
