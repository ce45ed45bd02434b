"""What a user waits for, command by command, against the least a script could do the same work in.

Each figure is a new process, as a user runs it, and the minimum of `--repeats` runs taken in
turn (agencyml, reference, agencyml, ...), so both sides see the same load:

- score a 10-row batch: `agencyml score` (a new batch each run) against a script doing the
  least (pyarrow read, the model's transform, booster.predict, parquet write);
- rescore a published batch: `agencyml score` on the same file again (no reference: a lookup);
- score the large batch end to end: `agencyml score` against the same minimal script;
- validate the large batch: `agencyml validate` against a pyarrow read of the same file;
- train fraud-risk and risk-triage: `agencyml train` against bare lightgbm.train with early
  stopping on the same rows and params.

agencyml's commands use the state directory's background Prefect server, started before the
first measurement (a user's first command pays for that once; it is reported apart).
Run from the project root: `.venv/bin/python benchmarks/commands.py [--rows 2000000]`.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AGENCYML = [sys.executable, "-m", "flows"]

MINIMAL_SCORE = """
import sys, time
from pathlib import Path
import pyarrow.parquet as pq, pyarrow as pa
from pipelines.modeling.model import ModelBundle
folder, batch, out = map(Path, sys.argv[1:4])
bundle = ModelBundle.from_texts({p.name: p.read_text() for p in folder.iterdir()})
frame = pq.read_table(batch).to_pandas()
scores = bundle.booster.predict(bundle.transform.transform(frame))
pq.write_table(pa.table({bundle.id_column: frame[bundle.id_column], "probability": scores}), out)
"""

READ = "import sys, pyarrow.parquet as pq; pq.read_table(sys.argv[1])"

BARE_TRAIN = """
import sys
import lightgbm as lgb
from pipelines.config import load_use_case
from pipelines.data.sources import training_table
from pipelines.modeling.features import fit_transform_spec
from pipelines.modeling.training import (
    encode_target, lightgbm_params, split_data, target_classes,
)
spec = load_use_case(sys.argv[1], sys.argv[2]); params = spec.params
split = split_data(training_table(spec), params)
classes = target_classes(split.train, params)
transform = fit_transform_spec(split.train, params.features)
train = lgb.Dataset(transform.transform(split.train),
                    encode_target(split.train[params.target], params, classes),
                    categorical_feature=transform.categorical_indices)
valid = lgb.Dataset(transform.transform(split.validation),
                    encode_target(split.validation[params.target], params, classes),
                    reference=train)
lgb.train(lightgbm_params(params, len(classes)), train, params.lightgbm.num_iterations,
          valid_sets=[valid], callbacks=[lgb.early_stopping(params.lightgbm.early_stopping_round,
          first_metric_only=True, verbose=False)])
"""


class Bench:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "AGENCYML_PROJECT_ROOT": str(ROOT),
            "AGENCYML_HOME": str(work / "state"),
        }
        for name in ("PREFECT_API_URL", "AGENCYML_PREFECT_SERVER"):
            self.env.pop(name, None)

    def run(self, command: list[str]) -> float:
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, env=self.env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{command} failed:\n{done.stdout[-1500:]}\n{done.stderr[-3000:]}")
        return seconds

    def agencyml(self, *args: str) -> float:
        return self.run([*AGENCYML, *args])

    def script(self, code: str, *args: str) -> float:
        return self.run([sys.executable, "-c", code, *args])


def prepare(bench: Bench, rows: int) -> tuple[dict[str, Path], float]:
    """Train fraud-risk once (the first command, which starts the background Prefect server:
    its time is returned), export the champion's texts for the minimal script, and write the
    batches: ten rows (one per run) and `rows` rows."""
    first_command = bench.agencyml("train", "-a", "business-aid", "-u", "fraud-risk")
    export = bench.work / "bundle"
    bench.script(
        "import sys; from pathlib import Path\n"
        "from pipelines.paths import StateDir\n"
        "from pipelines.registry import tracking\n"
        "model = tracking.load_model('business-aid.fraud-risk', StateDir(Path(sys.argv[2])))\n"
        "out = Path(sys.argv[1]); out.mkdir()\n"
        "[(out / n).write_text(t) for n, t in model.bundle.to_texts().items()]",
        str(export),
        str(bench.work / "state"),
    )
    paths = {"bundle": export}
    big = bench.work / f"applications-{rows}.parquet"
    bench.agencyml("generate", "-o", str(big), "--rows", str(rows), "--seed", "99")
    paths["big"] = strip_labels(big)
    for run in range(10):
        small = bench.work / f"ten-{run}.parquet"
        bench.agencyml("generate", "-o", str(small), "--rows", "10", "--seed", str(1000 + run))
        paths[f"ten-{run}"] = strip_labels(small)
    return paths, first_command


def strip_labels(path: Path) -> Path:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    target = path.with_name(f"unlabelled-{path.name}")
    pq.write_table(table.drop_columns(["is_fraud", "review_track"]), target)
    path.unlink()
    return target


@dataclass(frozen=True)
class Timing:
    work: str
    agencyml: float  # the fastest run
    reference: float | None  # None: nothing to compare with (a lookup)


def measure(bench: Bench, paths: dict[str, Path], repeats: int) -> list[Timing]:
    score = ("score", "-a", "business-aid", "-u", "fraud-risk", "-i")
    out = bench.work / "minimal.parquet"
    cases = {
        "score a 10-row batch": (
            lambda run: bench.agencyml(*score, str(paths[f"ten-{run}"])),
            lambda run: bench.script(
                MINIMAL_SCORE, str(paths["bundle"]), str(paths[f"ten-{run}"]), str(out)
            ),
        ),
        "rescore a published batch": (
            lambda run: bench.agencyml(*score, str(paths["ten-0"])),
            None,
        ),
        "train fraud-risk": (
            lambda run: bench.agencyml("train", "-a", "business-aid", "-u", "fraud-risk"),
            lambda run: bench.script(BARE_TRAIN, "business-aid", "fraud-risk"),
        ),
        "train risk-triage": (
            lambda run: bench.agencyml("train", "-a", "product-safety", "-u", "risk-triage"),
            lambda run: bench.script(BARE_TRAIN, "product-safety", "risk-triage"),
        ),
        "validate the large batch": (
            lambda run: bench.agencyml(
                "validate", "-a", "business-aid", "-u", "fraud-risk", "-i", str(paths["big"])
            ),
            lambda run: bench.script(READ, str(paths["big"])),
        ),
        "score the large batch": (
            # a rescore would only look the batch up: each run scores a copy with its last
            # `run` rows left out
            lambda run: bench.agencyml(*score, str(variant(paths["big"], run))),
            lambda run: bench.script(
                MINIMAL_SCORE, str(paths["bundle"]), str(paths["big"]), str(out)
            ),
        ),
    }
    results = []
    for work, (ours, reference) in cases.items():
        if work == "rescore a published batch":
            bench.agencyml(*score, str(paths["ten-0"]))  # published once first
        timings: dict[str, list[float]] = {"agencyml": [], "reference": []}
        for run in range(repeats):
            timings["agencyml"].append(ours(run + 1))
            if reference is not None:
                timings["reference"].append(reference(run + 1))
        reference_runs = timings["reference"]
        results.append(
            Timing(work, min(timings["agencyml"]), min(reference_runs) if reference_runs else None)
        )
        print(f"done: {work}", file=sys.stderr)
    return results


def variant(path: Path, run: int) -> Path:
    """The batch without its last `run` rows: new content (ids stay unique), the same work."""
    import pyarrow.parquet as pq

    target = path.with_name(f"run-{run}-{path.name}")
    if not target.exists():
        table = pq.read_table(path)
        pq.write_table(table.slice(0, table.num_rows - run), target)
    return target


def report(results: list[Timing], rows: int, first_command: float) -> str:
    load = os.getloadavg()
    lines = [
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {load[0]:.2f} / {load[1]:.2f} (1 / 5 min) "
        f"at the end; large batch: {rows:,} rows. Minimum of the runs.",
        "",
        "| work | agencyml (s) | reference (s) | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for r in results:
        ratio = f"{r.agencyml / r.reference:.2f}x" if r.reference else "-"
        shown = f"{r.reference:.2f}" if r.reference else "(a lookup)"
        lines.append(f"| {r.work} | {r.agencyml:.2f} | {shown} | {ratio} |")
    lines.append("")
    lines.append(
        f"The first command of the run, `agencyml train` of fraud-risk, which also started the "
        f"background Prefect server, took {first_command:.1f} s."
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        bench = Bench(Path(folder))
        try:
            paths, first_command = prepare(bench, args.rows)
            results = measure(bench, paths, args.repeats)
        finally:
            bench.agencyml("server", "--stop")
    print(report(results, args.rows, first_command))


if __name__ == "__main__":
    main()
