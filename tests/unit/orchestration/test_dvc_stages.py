"""dvc.yaml is written from the params: the committed file matches them, a new agency's datasets
and use cases get their stages with no hand edit, and work that DVC must record refuses to start
while dvc.yaml is out of date."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.config import load_all_params
from pipelines.orchestration import dvc_stages
from pipelines.paths import PACKAGE_ROOT


def test_the_committed_dvc_yaml_is_what_the_params_give():
    path = PACKAGE_ROOT / dvc_stages.DVC_YAML
    assert not dvc_stages.out_of_date(path, load_all_params()), (
        "dvc.yaml differs from params/: run `agencyml sync` and commit it"
    )


def add_agency(project: Path, name: str) -> None:
    """A new agency whose data is a CSV file it brings, with one use case."""
    params = yaml.safe_load((project / "params" / "business-aid.yaml").read_text())
    use_case = params["use_cases"]["fraud-risk"]
    params["agency"] = name
    params["datasets"] = {
        "claims": {"kind": "file", "reader": "csv", "path": f"data/{name}/claims.csv"}
    }
    params["use_cases"] = {"claim-risk": {**use_case, "dataset": "claims"}}
    (project / "params" / f"{name}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def test_a_new_agency_gets_its_ingest_and_use_case_stages(small_project: Path):
    add_agency(small_project, "tax-office")

    stages = yaml.safe_load(dvc_stages.render(load_all_params()))["stages"]

    ingest = stages["ingest"]["foreach"]["tax-office-claims"]
    assert ingest == {
        "agency": "tax-office",
        "dataset": "claims",
        "source": "data/tax-office/claims.csv",
    }
    item = {"agency": "tax-office", "use_case": "claim-risk", "dataset": "claims"}
    for stage in ("validate", "train", "evaluate"):  # the anchor: one list for three stages
        assert stages[stage]["foreach"]["tax-office-claim-risk"] == item
    # a project without agencyml's source: the generated data follows its params file
    assert stages["ingest"]["foreach"]["business-aid-applications"]["source"] == (
        "params/business-aid.yaml"
    )
    assert "- pipelines/" not in dvc_stages.render(load_all_params())


def test_in_this_repository_the_stages_depend_on_the_code_too(small_project: Path):
    text = dvc_stages.render(load_all_params(), code_deps=True)
    stages = yaml.safe_load(text)["stages"]

    assert stages["ingest"]["foreach"]["business-aid-applications"]["source"] == (
        "pipelines/data/business_aid.py"
    )
    assert "pipelines/modeling/training.py" in stages["train"]["do"]["deps"]
    assert dvc_stages.has_code(PACKAGE_ROOT) and not dvc_stages.has_code(small_project)


def test_work_dvc_must_record_refuses_to_start_while_dvc_yaml_is_out_of_date(
    small_project: Path,
):
    path = small_project / dvc_stages.DVC_YAML
    with pytest.raises(dvc_stages.PipelineOutOfDateError, match=r"is missing.*agencyml sync"):
        dvc_stages.require_in_sync(path, load_all_params(), "ingesting tax-office")

    path.write_text(dvc_stages.render(load_all_params()), encoding="utf-8")
    dvc_stages.require_in_sync(path, load_all_params(), "ingesting business-aid")  # in sync

    add_agency(small_project, "tax-office")
    with pytest.raises(dvc_stages.PipelineOutOfDateError) as raised:
        dvc_stages.require_in_sync(path, load_all_params(), "ingesting tax-office")
    message = str(raised.value)
    assert "does not match params/" in message and "nothing was written" in message
    assert "ingesting tax-office" in message and "`agencyml sync`" in message
