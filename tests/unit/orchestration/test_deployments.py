"""prefect.yaml is written from the params: the committed file matches them, and each use case
gets its train, score and inbox deployment with the params' schedule and limits."""

from __future__ import annotations

from pathlib import Path

import yaml

from pipelines.config import list_use_cases
from pipelines.orchestration import deployments
from pipelines.paths import PACKAGE_ROOT


def test_the_committed_prefect_yaml_is_what_the_params_give():
    path = PACKAGE_ROOT / deployments.PREFECT_YAML
    assert not deployments.out_of_date(path, list_use_cases()), (
        "prefect.yaml differs from params/: run `agencyml deploy --write` and commit it"
    )


def test_each_use_case_gets_train_score_and_inbox_with_its_params():
    specs = list_use_cases()
    declared = yaml.safe_load(deployments.render(specs))
    by_name = {d["name"]: d for d in declared["deployments"]}
    assert len(by_name) == 3 * len(specs)
    for spec in specs:
        run = spec.params.orchestration
        train = by_name[f"{spec.agency}-{spec.name}-train"]
        assert train["parameters"] == {"agency": spec.agency, "use_case": spec.name}
        assert train["schedules"] == [{"cron": run.train_cron, "timezone": run.timezone}]
        assert train["concurrency_limit"] == {"limit": 1, "collision_strategy": "ENQUEUE"}
        score = by_name[f"{spec.agency}-{spec.name}-score"]
        assert score["schedules"] == []
        assert score["concurrency_limit"]["limit"] == run.score_concurrency
        poll = by_name[f"{spec.agency}-{spec.name}-inbox"]
        assert poll["schedules"] == [{"interval": run.inbox_poll_seconds}]
        assert poll["concurrency_limit"]["collision_strategy"] == "CANCEL_NEW"
        for deployment in (train, score, poll):  # the anchors resolve to one shared pool
            assert deployment["work_pool"]["name"] == deployments.WORK_POOL
            env = deployment["work_pool"]["job_variables"]["env"]
            assert env["PREFECT_FLOWS_HEARTBEAT_FREQUENCY"] == "30"
            module, flow = deployment["entrypoint"].split(":")
            assert f"def {flow}(" in (PACKAGE_ROOT / module).read_text()


def test_a_use_case_without_a_cron_trains_on_demand_only_and_edits_are_noticed(tmp_path: Path):
    spec = list_use_cases()[0]
    on_demand = spec.model_copy(
        update={
            "params": spec.params.model_copy(
                update={
                    "orchestration": spec.params.orchestration.model_copy(
                        update={"train_cron": None}
                    )
                }
            )
        }
    )
    declared = yaml.safe_load(deployments.render([on_demand]))
    assert declared["deployments"][0]["schedules"] == []
    path = tmp_path / "prefect.yaml"
    path.write_text(deployments.render([spec]))
    assert not deployments.out_of_date(path, [spec])
    assert deployments.out_of_date(path, [on_demand])
    assert deployments.out_of_date(tmp_path / "missing.yaml", [spec])
