"""prefect.yaml, written from params/: three deployments per agency and use case.

- `<agency>-<use-case>-train`: trains on the cron in `orchestration.train_cron`, one run at a
  time (a second waits for the first);
- `<agency>-<use-case>-score`: scores the batch file given as `input`, at most
  `orchestration.score_concurrency` at once;
- `<agency>-<use-case>-inbox`: polls the inbox every `orchestration.inbox_poll_seconds`; a poll
  that finds the last one still busy is cancelled.

They share the work pool, the heartbeat setting and the concurrency rules through anchors in
`definitions:`. The file is generated so the params stay the one place a schedule is set; a
test fails when the two disagree."""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.config import UseCaseSpec

WORK_POOL = "agencyml"  # a process pool here; a kubernetes pool of the same name on a cluster
PREFECT_YAML = "prefect.yaml"
HEARTBEAT_SECONDS = 30  # the least Prefect allows; a run silent for longer is a zombie
FLOWS = {
    "train": "flows/deployed.py:deployed_train",
    "score": "flows/deployed.py:deployed_score",
    "inbox": "flows/deployed.py:inbox_poll",
}
FLOW_NAMES = {"train": "deployed-train", "score": "deployed-score", "inbox": "inbox"}

HEADER = f"""\
# Prefect deployments, written from params/ by `agencyml deploy --write`: edit the params
# (orchestration: train_cron, timezone, inbox_poll_seconds, score_concurrency), not this file.
# A test fails when the two disagree.
#
# Register them on a Prefect server with `agencyml deploy`, or by hand from the project root:
#   prefect work-pool create {WORK_POOL} --type process
#   PWD=$(pwd) prefect --no-prompt deploy --all
# (PWD is where runs start; on a cluster, the project's folder in the image: docs/scaling.md)
# then start a worker: `agencyml worker` (or prefect worker start --pool {WORK_POOL}).
name: agencyml
prefect-version: 3.9.1

build: null
push: null
pull:
  - prefect.deployments.steps.set_working_directory:
      directory: "{{{{ $PWD }}}}"

definitions:
  work_pools:
    agencyml: &pool
      name: {WORK_POOL}
      work_queue_name: default
      job_variables:
        env:
          # runs send a heartbeat; the automation `agencyml deploy` adds marks a run
          # that stops sending them (its worker was killed) Crashed
          PREFECT_FLOWS_HEARTBEAT_FREQUENCY: "{HEARTBEAT_SECONDS}"
  concurrency:
    one_at_a_time: &one_at_a_time {{limit: 1, collision_strategy: ENQUEUE}}
    skip_if_busy: &skip_if_busy {{limit: 1, collision_strategy: CANCEL_NEW}}

deployments:
"""


def deployment_name(spec: UseCaseSpec, kind: str) -> str:
    return f"{spec.agency}-{spec.name}-{kind}"


def full_name(spec: UseCaseSpec, kind: str) -> str:
    """`flow/deployment`, as `prefect deployment run` and the API name it."""
    return f"{FLOW_NAMES[kind]}/{deployment_name(spec, kind)}"


def _quoted(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def _deployment(spec: UseCaseSpec, kind: str, description: str, extra: list[str]) -> str:
    lines = [
        f"  - name: {deployment_name(spec, kind)}",
        f"    description: {_quoted(description)}",
        f"    entrypoint: {FLOWS[kind]}",
        f"    parameters: {{agency: {spec.agency}, use_case: {spec.name}}}",
        f"    tags: [agencyml, {spec.agency}, {spec.name}, {kind}]",
        *extra,
        "    work_pool: *pool",
    ]
    return "\n".join(lines) + "\n"


def render(specs: list[UseCaseSpec]) -> str:
    """The whole prefect.yaml for these use cases, deterministically."""
    parts = [HEADER]
    for spec in specs:
        run = spec.params.orchestration
        parts.append(f"  # {spec.agency} / {spec.name}\n")
        if run.train_cron is not None:
            schedule = [
                "    schedules:",
                f"      - cron: {_quoted(run.train_cron)}",
                f"        timezone: {run.timezone}",
            ]
            when = f"on '{run.train_cron}' ({run.timezone})"
        else:
            schedule = ["    schedules: []"]
            when = "on demand"
        parts.append(
            _deployment(
                spec,
                "train",
                f"Train {spec.model_name} {when}; one training at a time, "
                f"{run.train_timeout_minutes:g} min at most.",
                [*schedule, "    concurrency_limit: *one_at_a_time"],
            )
        )
        parts.append(
            _deployment(
                spec,
                "score",
                f"Score one batch file (parameter 'input') with {spec.model_name}'s champion; "
                f"{run.score_timeout_minutes:g} min at most.",
                [
                    "    schedules: []",
                    f"    concurrency_limit: {{limit: {run.score_concurrency}, "
                    "collision_strategy: ENQUEUE}",
                ],
            )
        )
        parts.append(
            _deployment(
                spec,
                "inbox",
                f"Score each batch file dropped in the {spec.agency}/{spec.name} inbox, once.",
                [
                    "    schedules:",
                    f"      - interval: {run.inbox_poll_seconds}",
                    "    concurrency_limit: *skip_if_busy",
                ],
            )
        )
    return "".join(parts)


def out_of_date(path: Path, specs: list[UseCaseSpec]) -> bool:
    """True when prefect.yaml is missing or differs from what the params give."""
    return not path.is_file() or path.read_text(encoding="utf-8") != render(specs)
