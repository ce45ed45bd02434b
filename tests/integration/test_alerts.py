"""Alerts for real: `agencyml server` on 127.0.0.1 with its automation services, `agencyml
deploy` registering each agency's webhook block and automations from the params, a worker, and
two small HTTP receivers standing in for the agencies' chat webhooks. A rejected batch, a batch
quarantining more rows than its limit, a drifted batch, a version awaiting approval and a
crashed deployed run each reach their agency's webhook once, readable, and never the other's."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psutil
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from servers import wait_until_up
from test_orchestration import BIN, TERMINAL, Platform

from pipelines.config import load_all_params
from pipelines.data.business_aid import generate_applications
from pipelines.orchestration import alert_automations

TARGETS = ["is_fraud", "review_track"]


class Receiver:
    """A webhook on 127.0.0.1 that records the JSON documents POSTed to it."""

    def __init__(self, name: str) -> None:
        self.messages: list[dict[str, Any]] = []
        lock = threading.Lock()
        received = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with lock:
                    received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/{name}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def about(self, text: str) -> list[dict[str, Any]]:
        return [message for message in self.messages if text in message["subject"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for_messages(receiver: Receiver, count: int, timeout: float = 120) -> None:
    """Automations fire asynchronously: poll the receiver until `count` messages arrived."""
    deadline = time.monotonic() + timeout
    while len(receiver.messages) < count:
        assert time.monotonic() < deadline, (
            f"{receiver.url} got {len(receiver.messages)} of {count} messages: "
            f"{[m['subject'] for m in receiver.messages]}"
        )
        time.sleep(0.5)


def applications(rows: int, seed: int) -> Any:
    return generate_applications(rows, seed=seed).drop(columns=TARGETS)


def kill_flow_run_processes(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the flow-run processes the worker started (`python -m prefect.engine`) and
    theirs, as a machine's OOM killer would; the worker itself stays up and reports the run."""
    for process in psutil.Process(worker.pid).children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if "prefect.engine" in process.cmdline():
                for child in [*process.children(recursive=True), process]:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        child.send_signal(signal.SIGKILL)


def launch(platform: Platform, *args: str) -> subprocess.Popen[str]:
    """An agencyml command started in the platform's project; several may run at once."""
    return subprocess.Popen(
        [str(BIN / "agencyml"), *args],
        cwd=platform.project,
        env={**platform.env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def alerted(tmp_path_factory, make_small_project) -> Iterator[dict[str, Any]]:
    """Everything happened once: the receivers, the platform, and what each step returned."""
    root = tmp_path_factory.mktemp("alerts")
    receivers = {"business-aid": Receiver("business-aid"), "product-safety": Receiver("ps")}
    platform = Platform(root, make_small_project)
    for agency, receiver in receivers.items():
        path = platform.project / "params" / f"{agency}.yaml"
        params = yaml.safe_load(path.read_text())
        params["alerts"] = {"webhook_url": receiver.url}
        for use_case in params["use_cases"].values():
            use_case["orchestration"]["inbox_poll_seconds"] = 86_400  # no poll during the test
        if agency == "business-aid":
            params["use_cases"]["fraud-risk"]["alerts"] = {"quarantined_fraction_above": 0.02}
        else:  # a person approves each new version; no floor a small model might miss
            promotion = params["use_cases"]["risk-triage"]["promotion"]
            promotion.pop("floors", None)
            promotion["require_approval"] = True
        path.write_text(yaml.safe_dump(params, sort_keys=False))
    done: dict[str, Any] = {"receivers": receivers, "platform": platform}
    try:
        server = platform.start("server", "server", "--port", str(platform.port), "--no-ui")
        wait_until_up(f"{platform.url}/health", server, platform.logs / "server.log")
        deployed = platform.agencyml("deploy", "--write")  # before anything worth an alert
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        done["deploy_output"] = deployed.stdout
        worker = platform.start("worker", "worker")
        trainings = [
            launch(platform, "train", "-a", agency, "-u", use_case)
            for agency, use_case in (
                ("business-aid", "fraud-risk"),
                ("product-safety", "risk-triage"),
            )
        ]
        # meanwhile a deployed training is killed once it runs: the worker reports it Crashed
        crashing = platform.run("train")
        platform.wait_for(crashing.id, {"RUNNING"} | TERMINAL, timeout=120)
        kill_flow_run_processes(worker)
        done["crashed"] = platform.wait_for(crashing.id, TERMINAL, timeout=120)
        for training in trainings:
            out, err = training.communicate(timeout=600)
            assert training.returncode == 0, (out + err)[-3000:]

        batches = root / "batches"
        batches.mkdir()
        rejected = applications(500, seed=11).drop(columns=["scheme"])
        rejected.to_parquet(batches / "no-scheme.parquet")
        quarantined = applications(2_000, seed=12)
        quarantined.loc[quarantined.index[:100], "employees"] = -1  # 5%: above 2%, below 10%
        quarantined.to_parquet(batches / "some-bad-rows.parquet")
        big = applications(12_000, seed=13)  # the largest requests only: in range, but drifted
        big.nlargest(2_000, "requested_amount_dkk").to_parquet(batches / "large-requests.parquet")
        scoring = {
            name: launch(
                platform,
                "score",
                "-a",
                "business-aid",
                "-u",
                "fraud-risk",
                "--json",
                "-i",
                str(batches / f"{name}.parquet"),
            )
            for name in ("no-scheme", "some-bad-rows", "large-requests")
        }
        done["scored"] = {}
        for name, process in scoring.items():
            out, err = process.communicate(timeout=600)
            done["scored"][name] = subprocess.CompletedProcess(
                process.args, process.returncode, out, err
            )
        quarantine = platform.state / "quarantine" / "business-aid" / "fraud-risk"
        rejected_inputs = [
            folder.name
            for folder in (quarantine.iterdir() if quarantine.is_dir() else ())
            if (folder / "input.parquet").is_file()
        ]
        assert rejected_inputs, f"no rejected input under {quarantine}: " + "\n".join(
            f"{name}: exit {run.returncode}\n{(run.stdout + run.stderr)[-2000:]}"
            for name, run in done["scored"].items()
        )
        done["rejected_batch"] = rejected_inputs[0]

        wait_for_messages(receivers["business-aid"], 4)
        wait_for_messages(receivers["product-safety"], 1)
        yield done
    finally:
        platform.stop()
        for receiver in receivers.values():
            receiver.close()


def only_subjects(receiver: Receiver) -> list[str]:
    return sorted(message["subject"] for message in receiver.messages)


def test_deploy_registers_one_webhook_block_and_five_automations_per_agency(alerted):
    platform = alerted["platform"]
    assert "alert automations" in alerted["deploy_output"]
    with temporary_settings(updates={PREFECT_API_URL: platform.url}):
        with get_client(sync_client=True) as client:
            before = {a.name: a.id for a in client.read_automations()}
        # registering again (a second `agencyml deploy`) updates them in place, by name
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AGENCYML_PROJECT_ROOT", str(platform.project))
            registered = alert_automations.register_automations(load_all_params())
        with get_client(sync_client=True) as client:
            after = {a.name: a.id for a in client.read_automations()}
            blocks = {
                agency: client.read_block_document_by_name(
                    alert_automations.block_name(agency), "custom-webhook"
                )
                for agency in registered
            }
    ours = {name for name in after if name.startswith(alert_automations.AUTOMATION_PREFIX)}
    assert len(ours) == 10 and sorted(registered) == ["business-aid", "product-safety"]
    assert before == after
    for agency, block in blocks.items():
        assert block.data["secrets"]["webhook_url"] == alerted["receivers"][agency].url


def test_a_rejected_batch_reaches_its_agency_once_with_the_batch_and_the_failed_check(alerted):
    assert alerted["scored"]["no-scheme"].returncode == 4
    (message,) = alerted["receivers"]["business-aid"].about("batch rejected")
    assert message["subject"] == "agencyml: batch rejected for business-aid/fraud-risk"
    text = message["text"]
    assert f"rejected batch {alerted['rejected_batch']} (no-scheme.parquet)" in text
    assert "of business-aid/fraud-risk: nothing was scored or published" in text
    assert "expected column 'scheme' is present" in text


def test_quarantined_rows_above_the_limit_reach_the_agency_with_the_counts(alerted):
    scored = alerted["scored"]["some-bad-rows"]
    assert scored.returncode == 0, scored.stdout + scored.stderr
    batch = json.loads(scored.stdout)
    (message,) = alerted["receivers"]["business-aid"].about("many rows quarantined")
    quarantined = batch["rows_quarantined"]  # the 100 spoiled rows, and any the gate finds
    assert 100 <= quarantined < 200
    assert (
        f"Batch {batch['batch_id']} of business-aid/fraud-risk (model business-aid.fraud-risk "
        f"v1) was published with {quarantined} of 2,000 rows quarantined "
        f"({quarantined / 2000:.1%}), above the alert limit of 2.0%" in message["text"]
    )
    assert "expected 'employees' is at least 0 (100 rows failed)" in message["text"]


def test_a_drifted_batch_reaches_the_agency_naming_the_drifted_columns(alerted):
    scored = alerted["scored"]["large-requests"]
    assert scored.returncode == 0, scored.stdout + scored.stderr
    batch = json.loads(scored.stdout)
    (message,) = alerted["receivers"]["business-aid"].about("drift alert")
    assert f"Batch {batch['batch_id']} of business-aid/fraud-risk (model " in message["text"]
    assert "requested_amount_dkk" in message["text"] and "drift.html" in message["text"]


def test_a_version_awaiting_approval_reaches_its_own_agency_only(alerted):
    (message,) = alerted["receivers"]["product-safety"].messages
    assert message["subject"] == "agencyml: product-safety.risk-triage v1 awaits approval"
    assert "agencyml approve product-safety.risk-triage 1" in message["text"]


def test_a_crashed_deployed_run_reaches_the_agency_with_the_run_and_use_case(alerted):
    crashed = alerted["crashed"]
    assert crashed.state_type.value == "CRASHED", alerted["platform"].log("worker")
    (message,) = alerted["receivers"]["business-aid"].about("crashed")
    assert message["subject"] == f"agencyml: a run of business-aid crashed: {crashed.name}"
    assert f"The run {crashed.name} of business-aid/fraud-risk crashed" in message["text"]
    assert str(crashed.id) in message["text"]


def test_each_agency_hears_only_of_its_own_use_cases_and_no_row_data(alerted):
    business_aid = alerted["receivers"]["business-aid"]
    assert len(business_aid.messages) == 4, only_subjects(business_aid)
    assert len(alerted["receivers"]["product-safety"].messages) == 1
    sent = json.dumps(business_aid.messages)
    assert "product-safety" not in sent
    frame = applications(2_000, seed=12)
    assert not any(str(value) in sent for value in frame["application_id"].head(50))
