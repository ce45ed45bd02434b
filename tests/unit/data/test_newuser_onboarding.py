"""A new agency onboarded from public tables (scikit-learn's breast cancer and wine data, written
the way agencies deliver them), and the mistakes a new user makes in a params file: each gets
one sentence saying what to do, and nothing half-written is left in params/ or data/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from typer.testing import CliRunner

from flows.cli import app
from pipelines import config
from pipelines.data import readers, storage
from pipelines.data.onboarding import draft_params, parse_params_text, slug
from pipelines.data.profiling import ProfileError, profile_table
from pipelines.data.storage import InputFileError
from pipelines.scoring.batches import write_sample_batch

runner = CliRunner()


def clinic_table() -> pd.DataFrame:
    """Breast cancer records as a clinic exports them: capitalised names with spaces, text
    labels, an exam date, a few missing values, sorted by diagnosis, with a running number."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=str.title)
    frame["Diagnosis"] = np.where(frame.pop("Target") == 1, "Benign", "Malignant")
    frame.insert(0, "Patient ID", [f"P{index:05d}" for index in range(len(frame))])
    frame["Exam Date"] = pd.date_range("2021-01-01", periods=len(frame)).strftime("%Y-%m-%d")
    frame.loc[[3, 40, 200], "Mean Radius"] = np.nan
    frame = frame.sort_values("Diagnosis", kind="stable").reset_index(drop=True)
    frame["Sequence"] = range(len(frame))  # follows the sort: predicts the label by row order
    return frame


@pytest.fixture(scope="module")
def clinic_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("agency") / "2024 export.csv"
    clinic_table().to_csv(path, sep=";", decimal=",", index=False)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "project"
    (root / "params").mkdir(parents=True)
    monkeypatch.setenv("AGENCYML_PROJECT_ROOT", str(root))
    monkeypatch.setenv("AGENCYML_HOME", str(tmp_path / "state"))
    return root


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_a_file_named_from_a_year_drafts_valid_params(clinic_csv: Path, project: Path) -> None:
    """'2024 export.csv' made the dataset '2024-export', which params refuse: the draft was
    written anyway and stopped every command that reads all of params/."""
    draft = draft_params("clinic", clinic_csv, project, target="Diagnosis")
    params = config.load_params("clinic", project / "params")
    assert list(params.datasets) == ["data-2024-export"]
    use_case = params.use_cases["main"]
    assert use_case.id_column == "Patient ID"
    assert use_case.positive_class == "Malignant"
    assert "Mean Radius" in use_case.features.numeric
    assert use_case.batch_format.decimal == ","
    assert draft.copied and draft.data_file.read_bytes() == clinic_csv.read_bytes()
    # the running number follows the file's sort by diagnosis: flagged, not a feature
    assert "Sequence" in draft.profile.leaks
    assert "Sequence" not in use_case.features.numeric


@pytest.mark.parametrize(
    ("text", "prefix", "expected"),
    [
        ("2024 export", "data", "data-2024-export"),
        ("___", "data", "data"),
        ("Wine 2", "x", "wine-2"),
    ],
)
def test_slugs_start_with_a_letter(text: str, prefix: str, expected: str) -> None:
    assert slug(text, prefix) == expected


def test_an_invalid_draft_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(config.ParamsError, match=r"(?s)a\.yaml: .*The draft was not written"):
        parse_params_text(
            "agency: a\ndatasets: {2x: {kind: file, path: x.csv}}\nuse_cases: {}\n",
            tmp_path / "a.yaml",
        )


def test_columns_named_like_agencymls_own_are_left_out() -> None:
    frame = pd.DataFrame(
        {"row_id": [1, 2, 1, 2] * 10, "row_number": range(40), "label": ["a", "b"] * 20}
    )
    kinds = {column.name: (column.kind, column.note) for column in profile_table(frame).columns}
    assert kinds["row_id"][0] == kinds["row_number"][0] == "left out"
    assert "rename the column" in kinds["row_id"][1]


def test_a_target_spelt_another_way_is_named() -> None:
    frame = pd.DataFrame({"Cultivar": ["a", "b"] * 20, "x": range(40)})
    with pytest.raises(ProfileError, match="did you mean 'Cultivar'"):
        profile_table(frame, "cultivar")


def test_an_empty_data_file_says_it_is_empty(tmp_path: Path) -> None:
    empty = tmp_path / "claims.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputFileError, match="the file is empty"):
        readers.read_frame(empty)


def test_new_agency_refuses_bad_input_and_writes_nothing(clinic_csv: Path, project: Path) -> None:
    empty = project.parent / "empty.csv"
    empty.write_bytes(b"")
    code, output = invoke("new-agency", "clinic", "--from", str(empty))
    assert code == 3 and "the file is empty" in output
    code, output = invoke("new-agency", "clinic", "--from", str(project.parent / "missing.csv"))
    assert code == 3 and "input file not found" in output
    code, output = invoke("new-agency", "clinic", "--from", str(clinic_csv), "-t", "diagnosis")
    assert code == 2 and "did you mean 'Diagnosis'" in output
    assert not any((project / "params").iterdir()) and not (project / "data").exists()


def write_params(project: Path, agency: str, **use_case: object) -> Path:
    params = {
        "agency": agency,
        "datasets": {"rows": {"kind": "file", "path": "data/rows.csv"}},
        "use_cases": {
            "main": {
                "dataset": "rows",
                "target": "label",
                "task": "binary",
                "positive_class": "yes",
                "features": {"numeric": ["x"]},
                "split": {"method": "random"},
                "decision": {"kind": "threshold", "threshold": 0.5},
                **use_case,
            }
        },
    }
    path = project / "params" / f"{agency}.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("line", "key"),
    [
        ("positive_class: yes", "use_cases.main.positive_class"),
        (
            "positive_class: 'no'\n    decision: {kind: threshold, threshold: 0.5, flag_label: on}",
            "use_cases.main.decision.flag_label",
        ),
    ],
)
def test_an_unquoted_yes_or_no_label_says_to_quote_it(project: Path, line: str, key: str) -> None:
    """YAML reads an unquoted yes as true: it became positive_class '1', and training said the
    data had no class '1'."""
    path = write_params(project, "clinic")
    text = path.read_text().replace("positive_class: 'yes'", line)
    if "decision:" in line:
        text = text.replace("    decision:\n      kind: threshold\n      threshold: 0.5\n", "")
    path.write_text(text)
    with pytest.raises(config.ParamsError) as caught:
        config.load_params("clinic", project / "params")
    assert f"{key}:" in str(caught.value) and 'put the label in quotes, e.g. "yes"' in str(
        caught.value
    )
    path.write_text(
        text.replace(line.split("\n")[0], "positive_class: 'yes'").replace("on}", "'on'}")
    )
    assert (
        config.load_params("clinic", project / "params").use_cases["main"].positive_class == "yes"
    )


def test_an_empty_or_broken_params_file_is_named_for_every_agency(project: Path) -> None:
    write_params(project, "clinic")
    (project / "params" / "draft.yaml").write_text("")
    with pytest.raises(config.ParamsError, match=r"draft\.yaml: the file is empty; write"):
        config.load_params("draft", project / "params")
    code, output = invoke("agencies")
    assert code == 2
    assert "draft.yaml: the file is empty" in output
    assert "This command reads every file in params/: fix draft.yaml" in output
    (project / "params" / "draft.yaml").unlink()
    code, output = invoke("agencies")
    assert code == 0 and "clinic.main" in output


@pytest.mark.parametrize(("sheet", "named"), [("Data", "'Data'"), (2, "number 2 (counted from 0)")])
def test_a_sheet_the_workbook_lacks_is_named_with_the_sheets_it_has(
    tmp_path: Path, sheet: str | int, named: str
) -> None:
    path = tmp_path / "wine.xlsx"
    wine = load_wine(as_frame=True).frame
    with pd.ExcelWriter(path) as workbook:
        wine.head(20).to_excel(workbook, sheet_name="Lots", index=False)
        wine.tail(5).to_excel(workbook, sheet_name="Notes", index=False)
    with pytest.raises(InputFileError) as caught:
        readers.read_frame(path, config.TableFormat(sheet=sheet))
    assert f"no sheet {named}; its sheets are 'Lots', 'Notes'" in str(caught.value)
    assert len(readers.read_frame(path, config.TableFormat(sheet="Notes"))) == 5


@pytest.mark.parametrize(
    ("agency", "use_case", "message"),
    [
        (
            "2024",
            "main",
            "'2024' cannot be an agency name: use lower-case letters, digits and "
            "dashes, starting with a letter, e.g. 'agency-2024'",
        ),
        (
            "clinic",
            "First Model",
            "'First Model' cannot be a use case name: use lower-case "
            "letters, digits and dashes, starting with a letter, e.g. 'first-model'",
        ),
    ],
)
def test_a_name_params_refuse_gets_one_they_accept(
    clinic_csv: Path, project: Path, agency: str, use_case: str, message: str
) -> None:
    with pytest.raises(config.ParamsError) as caught:
        draft_params(agency, clinic_csv, project, use_case=use_case)
    assert str(caught.value) == message
    assert not any((project / "params").iterdir()) and not (project / "data").exists()


def test_a_table_in_windows_1252_is_drafted_with_its_encoding(
    tmp_path: Path, project: Path
) -> None:
    """A Windows export could not be drafted at all: the error said to set `encoding` in
    params that did not exist yet, and new-agency has no such option."""
    table = clinic_table().sample(200, random_state=0).drop(columns="Sequence")
    table["Clinic"] = ["Universitätsklinikum Köln", "Charité", "Hôpital Nord", "Zürich"] * 50
    source = tmp_path / "kliniken.csv"
    table.to_csv(source, sep=";", decimal=",", index=False, encoding="cp1252")
    code, output = invoke("new-agency", "kliniken", "--from", str(source), "-t", "Diagnosis")
    assert code == 0, output
    assert "kliniken.csv is not UTF-8: read as cp1252" in output
    params = config.load_params("kliniken", project / "params")
    dataset = params.datasets["kliniken"]
    assert dataset.encoding == "cp1252"
    assert params.use_cases["main"].batch_format.encoding == "cp1252"
    frame = readers.read_frame(project / dataset.path, dataset)
    assert set(frame["Clinic"]) == {
        "Universitätsklinikum Köln",
        "Charité",
        "Hôpital Nord",
        "Zürich",
    }
    # the sample batch new-agency suggests scoring is written the way batches are read: in
    # UTF-8 it was read as cp1252, 'Köln' became 'KÃ¶ln', a category the model never saw
    spec = params.use_case("main")
    storage.write_parquet(frame, spec.data.resolved_path())
    batch, _ = write_sample_batch(spec, tmp_path / "batch.csv", rows=30)
    sample = readers.read_frame(batch, spec.params.batch_format)
    assert set(sample["Clinic"]) <= {
        "Universitätsklinikum Köln",
        "Charité",
        "Hôpital Nord",
        "Zürich",
    }


def test_a_table_under_the_minimum_rows_is_drafted_with_the_setting_to_change(
    tmp_path: Path, project: Path
) -> None:
    """90 rows drafted silently, then training refused them with 'expected between 100 and
    any rows, but found 90' and no word of min_training_rows."""
    iris = load_iris(as_frame=True)
    table = iris.frame.assign(species=iris.target_names[iris.target]).drop(columns="target")
    source = tmp_path / "iris.csv.gz"
    table.sample(90, random_state=0).to_csv(source, index=False, compression="gzip")
    code, output = invoke("new-agency", "flowers", "--from", str(source), "-t", "species")
    assert code == 0, output
    assert "only 90 rows: training needs 100 unless the use case sets min_training_rows" in output
    params_file = project / "params" / "flowers.yaml"
    assert "    # min_training_rows: 90   # the table has 90 rows" in params_file.read_text()
    params_file.write_text(
        params_file.read_text().replace("# min_training_rows: 90", "min_training_rows: 90")
    )
    assert (
        config.load_params("flowers", project / "params").use_cases["main"].min_training_rows == 90
    )


def test_params_named_yml_are_named_with_the_rename_to_make(project: Path) -> None:
    write_params(project, "clinic").rename(project / "params" / "clinic.yml")
    code, output = invoke("train", "-a", "clinic", "-u", "main")
    assert code == 2
    assert "its params are named clinic.yml, but agencyml reads only .yaml files in params/: " in (
        output
    )
    assert "rename it clinic.yaml" in output


def test_numbers_with_a_dash_for_missing_are_not_drafted_as_categories() -> None:
    """'-' among 569 measurements made the column a category of ~500 unrelated labels."""
    table = clinic_table().astype({"Mean Texture": str, "Worst Area": str})
    table.loc[range(0, 569, 25), "Mean Texture"] = "-"
    table.loc[[4, 9], "Worst Area"] = "?"
    table["Grade"] = ["-", "low", "high"] * 189 + ["low", "high"]  # a category with a dash
    columns = {c.name: c for c in profile_table(table, "Diagnosis").columns}
    assert columns["Mean Texture"].kind == "left out"
    assert columns["Mean Texture"].note.startswith("numbers with '-' for a missing value")
    assert "empty those cells in the file" in columns["Mean Texture"].note
    assert columns["Worst Area"].kind == "left out" and "'?'" in columns["Worst Area"].note
    assert columns["Grade"].kind == "categorical"
    assert columns["Mean Radius"].kind == "numeric"


def test_a_project_without_agencies_says_how_to_draft_one(project: Path) -> None:
    code, output = invoke("agencies")
    assert code == 0
    assert "no agencies yet" in output and "agencyml new-agency NAME --from FILE" in output
