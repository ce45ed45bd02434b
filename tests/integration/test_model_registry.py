"""The registry for auditors, end to end on a real MLflow registry: the promotion gate, approval,
rejection, rollback, and which version was champion at any moment."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime

import yaml
from mlflow.tracking import MlflowClient
from typer.testing import CliRunner

from flows.cli import app
from flows.train import train
from pipelines.paths import state_dir
from pipelines.registry.promotion import audit_path, read_events

MODEL = "business-aid.fraud-risk"
runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def set_params(project, **changes) -> None:
    """Change the fraud-risk use case's params in the small project's params file."""
    path = project / "params" / "business-aid.yaml"
    params = yaml.safe_load(path.read_text())
    use_case = params["use_cases"]["fraud-risk"]
    for section, value in changes.items():
        use_case[section] = {**use_case.get(section, {}), **value}
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def aliases(client: MlflowClient) -> dict[str, str]:
    return {a: str(v) for a, v in client.get_registered_model(MODEL).aliases.items()}


def moment() -> str:
    time.sleep(0.01)
    now = datetime.now(UTC).isoformat()
    time.sleep(0.01)
    return now


def test_gate_approval_rejection_rollback_and_history(prefect_server, small_project):
    client = MlflowClient(state_dir().tracking_uri, state_dir().tracking_uri)
    before_any = moment()

    # v1: a weak model (three stumps); with no champion yet the gate promotes it
    leaves = yaml.safe_load((small_project / "params" / "business-aid.yaml").read_text())[
        "use_cases"
    ]["fraud-risk"]["lightgbm"]["num_leaves"]
    set_params(
        small_project, lightgbm={"num_iterations": 3, "early_stopping_round": 3, "num_leaves": 2}
    )
    first = train("business-aid", "fraud-risk")
    assert first.gate["decision"] == "promote" and "no champion yet" in first.gate["reason"]
    assert aliases(client) == {"champion": "1"}
    after_first = moment()

    # v2: the full model beats it on the same holdout and is promoted
    set_params(
        small_project,
        lightgbm={"num_iterations": 60, "early_stopping_round": 10, "num_leaves": leaves},
    )
    second = train("business-aid", "fraud-risk")
    assert second.gate["decision"] == "promote", second.gate["reason"]
    assert second.gate["champion_version"] == "1"
    assert second.metrics["roc_auc"] > first.metrics["roc_auc"]
    assert aliases(client) == {"champion": "2"}
    after_second = moment()

    # v3: the same training again ties with the champion: it stays challenger, with the reason
    third = train("business-aid", "fraud-risk")
    assert third.gate["decision"] == "hold" and "does not beat" in third.gate["reason"]
    assert aliases(client) == {"champion": "2", "challenger": "3"}
    tags = client.get_model_version(MODEL, "3").tags
    assert tags["agencyml.gate.decision"] == "hold"
    assert "difference +0.0000" in tags["agencyml.gate.reason"]

    # a held version cannot be approved; it can be rejected
    code, output = invoke("approve", MODEL, "3", "--by", "ana", "--reason", "looks fine")
    assert code == 10 and "cannot be approved: the gate's decision was 'hold'" in output
    code, output = invoke("reject", MODEL, "3", "--by", "ana", "--reason", "no better")
    assert code == 0, output
    assert aliases(client) == {"champion": "2"}
    rejected = client.get_model_version(MODEL, "3")
    assert rejected.tags["agencyml.rejection.by"] == "ana"
    assert rejected.tags["agencyml.rejection.reason"] == "no better"
    assert "- Rejection: ana at " in rejected.description

    # rollback: champion goes back to v1, the version v2 replaced
    code, output = invoke("rollback", MODEL, "--by", "bo", "--reason", "complaints about v2")
    assert code == 0, output
    assert "champion v2 -> v1" in output
    assert aliases(client) == {"champion": "1"}
    after_rollback = moment()

    # an agency that requires approval: v4 passes the gate but waits for a person
    set_params(small_project, promotion={"require_approval": True})
    fourth = train("business-aid", "fraud-risk")
    assert fourth.gate["decision"] == "await-approval", fourth.gate["reason"]
    assert aliases(client) == {"champion": "1", "challenger": "4"}
    code, output = invoke("approve", MODEL, "4", "--by", "", "--reason", "ok")
    assert code == 10 and "say who decides" in output
    code, output = invoke("approve", MODEL, "4", "--by", "cy", "--reason", "reviewed slices")
    assert code == 0, output
    assert aliases(client) == {"champion": "4"}
    approved = client.get_model_version(MODEL, "4")
    # readable tags, not JSON, and a summary in the version's description
    assert approved.tags["agencyml.approval.by"] == "cy"
    assert approved.tags["agencyml.approval.reason"] == "reviewed slices"
    assert approved.tags["agencyml.approval.time"]
    assert approved.description.startswith(f"**{MODEL} v4** (aliases: champion)")
    assert "- Approval: cy at " in approved.description
    assert ": reviewed slices" in approved.description
    assert "- Promotion gate: await-approval:" in approved.description
    assert "md5 " in approved.description and "git commit " in approved.description
    assert "model_card/model_card.html" in approved.description
    code, output = invoke("approve", MODEL, "4", "--by", "cy", "--reason", "again")
    assert code == 10 and "already the champion" in output

    # each record holds who, when, why and, for the gate's own moves, its verdict
    promotions = [e for e in read_events(state_dir(), MODEL) if e["action"] == "promote"]
    assert [e["to_version"] for e in promotions] == ["1", "2"]
    assert promotions[1]["from_version"] == "1" and promotions[1]["by"] == "gate"
    assert promotions[1]["gate"]["decision"] == "promote" and promotions[1]["time"]

    # the timeline, and the champion at moments before, between and after the promotions
    code, output = invoke("history", MODEL)
    assert code == 0, output
    for action in ("register", "promote", "reject", "rollback", "approve"):
        assert action in output
    expected = {
        before_any: "no champion",
        after_first: "v1",
        after_second: "v2",
        after_rollback: "v1",
        moment(): "v4",
    }
    for at, champion in expected.items():
        code, output = invoke("history", MODEL, "--at", at)
        assert code == 0 and f"at {datetime.fromisoformat(at).isoformat()}: {champion}" in output

    # every alias change is also a tag on the versions it touched
    v1_tags = client.get_model_version(MODEL, "1").tags
    audit = [json.loads(v) for k, v in sorted(v1_tags.items()) if k.startswith("agencyml.audit.")]
    # registered, promoted, replaced by v2, rolled back to, replaced by v4
    assert [e["action"] for e in audit] == ["register", "promote", "promote", "rollback", "approve"]

    # the log is append-only: an edit is detected by every reader
    log = audit_path(state_dir())
    log.write_text(log.read_text().replace('"by": "bo"', '"by": "someone else"'))
    code, output = invoke("history", MODEL)
    assert code == 11 and "does not match its hash chain" in output


def test_rollback_without_an_earlier_champion_says_so(prefect_server, small_project):
    train("business-aid", "fraud-risk")

    code, output = invoke("rollback", MODEL, "--reason", "test")

    assert code == 10 and "first champion on record" in output
    code, output = invoke("history", MODEL, "--at", "yesterday")
    assert code == 10 and "ISO 8601" in output


def test_a_version_logged_before_the_move_to_wings_still_loads(
    small_project, tmp_path, monkeypatch
):
    """A logged model runs its own copy of tracking_model.py; one logged by an older release
    imports `pipelines.model`, which is now pipelines.modeling.model."""
    import lightgbm as lgb
    import mlflow
    import numpy as np
    import pandas as pd

    from pipelines.config import Features, ThresholdPolicy
    from pipelines.modeling.features import fit_transform_spec
    from pipelines.modeling.model import ModelBundle
    from pipelines.registry import tracking

    older_code = tmp_path / "tracking_model.py"
    current = tracking.MODEL_CODE.read_text()
    assert "from pipelines.modeling.model import" in current
    older_code.write_text(current.replace("pipelines.modeling.model", "pipelines.model"))
    monkeypatch.setattr(tracking, "MODEL_CODE", older_code)
    frame = pd.DataFrame({"case_id": [f"c{i}" for i in range(60)], "x": np.arange(60.0)})
    transform = fit_transform_spec(frame, Features(numeric=["x"]))
    booster = lgb.train(
        {"objective": "binary", "num_threads": 1, "min_data_in_leaf": 2, "verbosity": -1},
        lgb.Dataset(transform.transform(frame), (np.arange(60) >= 30).astype(int)),
        num_boost_round=3,
    )
    policy = ThresholdPolicy(threshold=0.5, flag_label="inspect", pass_label="release")
    bundle = ModelBundle("binary", ["no", "yes"], "case_id", transform, booster, policy)
    tracking.configure(state_dir())
    with monkeypatch.context() as older_release:  # where the older release had the module
        older_release.setitem(sys.modules, "pipelines.model", sys.modules[ModelBundle.__module__])
        with mlflow.start_run():
            logged = tracking._log_bundle(bundle, frame[["x"]].head(5))
    mlflow.register_model(logged.model_uri, "older.release")
    monkeypatch.delitem(sys.modules, "pipelines.model", raising=False)  # as in a new process

    loaded = tracking.load_model("older.release", state_dir(), version="1")

    assert loaded.bundle.classes == ["no", "yes"]
    pd.testing.assert_frame_equal(
        tracking.predict(loaded, frame), bundle.probability_frame(frame[["x"]])
    )
