"""The champion alias against the audit log, on a real (SQLite) registry: agreement, an alias
set with no recorded move, and the error scoring raises, which the CLI maps to exit 11."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.errors import EXIT_CODES
from pipelines.paths import StateDir
from pipelines.registry import promotion, tracking


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> StateDir:
    """One registry for the module (its tables are made once); each test has its own model."""
    state = StateDir(tmp_path_factory.mktemp("alias-agreement") / "state")
    tracking.configure(state)
    return state


@pytest.fixture
def model(state: StateDir, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A model with two versions and nothing recorded in the audit log."""
    name = f"tiny.{request.node.name.replace('_', '-')}"[:100]
    client = client_of(state)
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, str(tmp_path))
    return name


def client_of(state: StateDir) -> MlflowClient:
    return MlflowClient(state.tracking_uri, state.tracking_uri)


def test_no_champion_and_no_recorded_move_agree(state: StateDir, model: str) -> None:
    assert promotion.alias_disagreement(model, state) is None
    assert promotion.alias_disagreement("never.trained", state) is None


def test_a_champion_moved_through_agencyml_agrees(state: StateDir, model: str) -> None:
    promotion.promote(model, "1", state, action="promote", by="gate", reason="first")
    promotion.promote(model, "2", state, action="promote", by="gate", reason="better")
    promotion.rollback(model, "ana", "v2 misbehaves", state)

    assert promotion.alias_disagreement(model, state) is None
    assert promotion.find_champion(model, state).version == "1"


def test_a_champion_set_with_no_recorded_move_is_refused(state: StateDir, model: str) -> None:
    client_of(state).set_registered_model_alias(model, "champion", "2")

    said = promotion.alias_disagreement(model, state)
    with pytest.raises(promotion.AliasMovedError) as raised:
        promotion.find_champion(model, state)

    assert said is not None
    assert f"the registry's champion of {model} is version 2" in said
    assert "the audit log says there is none" in said and "Remove the alias" in said
    assert str(raised.value) == said
    assert EXIT_CODES[type(raised.value).__name__] == 11
    copy = pickle.loads(pickle.dumps(raised.value))  # crosses Prefect's task boundary intact
    assert str(copy) == said and isinstance(copy, promotion.AuditLogError)


def test_a_champion_moved_after_a_recorded_move_names_both_versions(
    state: StateDir, model: str
) -> None:
    promotion.promote(model, "1", state, action="promote", by="gate", reason="first")
    client_of(state).set_registered_model_alias(model, "champion", "2")

    said = promotion.alias_disagreement(model, state)

    assert said is not None
    assert f"champion of {model} is version 2, but the audit log says version 1" in said
    assert "Put the alias back on version 1" in said


@pytest.mark.parametrize(
    ("decision", "reason", "said"),
    [
        (
            "hold",
            "roc_auc 0.9 does not beat the best baseline, logistic_regression 0.9.",
            "the promotion gate held the newest (version 2): roc_auc 0.9 does not beat the best "
            "baseline, logistic_regression 0.9. Change the model or the use case's promotion "
            "settings in its params file, then train again",
        ),
        (
            "await-approval",
            "first version; a person approves it",
            "Version 2 passed the promotion gate and awaits a person's approval: agencyml approve "
            "{model} 2 --by WHO --reason TEXT",
        ),
        (None, None, "none is '@champion' (the newest is version 2, gate decision: none recorded)"),
    ],
    ids=["held", "awaiting-approval", "no-gate"],
)
def test_trained_versions_without_a_champion_say_what_the_gate_did(
    state: StateDir, model: str, decision: str | None, reason: str | None, said: str
) -> None:
    """Not 'train one first' when versions were trained: the user did, and the gate held them."""
    if decision is not None:
        client_of(state).set_model_version_tag(model, "2", "agencyml.gate.decision", decision)
        client_of(state).set_model_version_tag(model, "2", "agencyml.gate.reason", reason)

    with pytest.raises(tracking.ModelNotFoundError) as raised:
        tracking.find_model(model, state)

    message = str(raised.value)
    assert message.startswith(f"no model version '{model}@champion' in the registry. ")
    assert said.format(model=model) in message and "Train one first" not in message


def test_a_model_never_trained_is_told_to_train_one(state: StateDir) -> None:
    with pytest.raises(tracking.ModelNotFoundError, match="Train one first: agencyml train"):
        tracking.find_model("never.trained", state)
