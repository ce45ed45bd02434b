"""Batch scoring throughput and peak memory, side by side in one run.

(a) `score` end to end: the Prefect flow with validation gate, drift, publishing and MLflow run
(b) a minimal script doing the same read, transform, booster.predict and parquet write
(c) bare booster.predict on the already-transformed matrix
(d) the MLflow pyfunc's predict on the whole DataFrame

Each measurement runs in its own process, so its peak RSS is its own. The model is the
business-aid fraud-risk use case trained on the shipped params into a scratch state directory.
Run: python benchmarks/score.py [--rows 2000000 --rows 10000000] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "e2e": "(a) agencyml score, end to end",
    "minimal": "(b) read + transform + booster.predict + write",
    "bare": "(c) booster.predict on the transformed matrix",
    "pyfunc": "(d) MLflow pyfunc predict on the whole DataFrame",
}


def measure(mode: str, batch: Path, state: Path) -> dict[str, float]:
    """One measurement in this process; returns rows, seconds and peak RSS in MB."""
    os.environ["AGENCYML_HOME"] = str(state)
    from pipelines.data import storage
    from pipelines.paths import StateDir
    from pipelines.registry import tracking

    model = tracking.load_model("business-aid.fraud-risk", StateDir(state))
    bundle = model.bundle
    timed = 0.0
    steps: dict[str, float] = {}
    if mode == "e2e":
        from flows.runtime import prepare_environment
        from flows.score import score

        prepare_environment(StateDir(state), verbose=False)
        started = time.perf_counter()
        result = score("business-aid", "fraud-risk", str(batch))
        timed = time.perf_counter() - started
        rows = result.rows + result.rows_quarantined
        steps = storage.read_json_file(result.output_dir / "manifest.json")["timings"]
    elif mode == "minimal":
        started = time.perf_counter()
        frame = storage.read_table(batch)
        scores = bundle.booster.predict(bundle.transform.transform(frame))
        out = state / "minimal.parquet"
        storage.write_parquet(frame[[bundle.id_column]].assign(probability=scores), out)
        timed = time.perf_counter() - started
        rows = len(frame)
    else:
        frame = storage.read_table(batch)
        if mode == "bare":
            matrix = bundle.transform.transform(frame)
            started = time.perf_counter()
            bundle.booster.predict(matrix)
        else:
            conformed = bundle.transform.conform(frame)
            started = time.perf_counter()
            tracking.predict(model, conformed)
        timed = time.perf_counter() - started
        rows = len(frame)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": timed, "peak_mb": peak_mb, "steps": steps}


def in_subprocess(mode: str, batch: Path, state: Path) -> dict[str, float]:
    command = [sys.executable, __file__, "--measure", mode, "--batch", str(batch)]
    command += ["--state", str(state)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENCYML_PROJECT_ROOT": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(work: Path, sizes: list[int]) -> tuple[Path, dict[int, Path]]:
    """Train fraud-risk into a scratch state and write unlabelled batches of each size."""
    state = work / "state"
    env = {**os.environ, "AGENCYML_HOME": str(state), "AGENCYML_PROJECT_ROOT": str(ROOT)}
    # a background Prefect server would outlive the scratch state directory
    env["AGENCYML_PREFECT_SERVER"] = "temporary"
    train = [sys.executable, "-m", "flows", "train", "-a", "business-aid", "-u", "fraud-risk"]
    subprocess.run(train, cwd=ROOT, env=env, check=True, capture_output=True)
    batches = {}
    for rows in sizes:
        path = work / f"batch-{rows}.parquet"
        generate = [sys.executable, "-m", "flows", "generate", "-o", str(path)]
        generate += ["--rows", str(rows), "--seed", "99"]
        subprocess.run(generate, cwd=ROOT, env=env, check=True, capture_output=True)
        batches[rows] = strip_labels(path)
    return state, batches


def strip_labels(path: Path) -> Path:
    """An incoming batch has no answers: drop the targets, chunk by chunk."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    source = pq.ParquetFile(path)
    target = path.with_name(f"unlabelled-{path.name}")
    schema = source.schema_arrow
    keep = [c for c in schema.names if c not in ("is_fraud", "review_track")]
    with pq.ParquetWriter(target, pa.schema([schema.field(c) for c in keep])) as writer:
        for batch in source.iter_batches(batch_size=500_000, columns=keep):
            writer.write_batch(batch)
    path.unlink()
    return target


def table(results: list[dict[str, object]]) -> str:
    lines = [
        "| rows | path | seconds | rows/s | peak RSS (MB) | time vs (b) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        lines.append(
            f"| {result['rows']:,} | {MODES[str(result['mode'])]} | {result['seconds']:.2f} | "
            f"{result['rows'] / result['seconds']:,.0f} | {result['peak_mb']:,.0f} | "
            f"{result['vs_minimal']:.2f}x |"
        )
    return "\n".join(lines)


def breakdown(results: list[dict[str, object]]) -> str:
    """Where (a)'s time goes, from the manifest's timings, next to (b)'s whole run."""
    lines = [
        "| rows | step of (a) | seconds | vs (b) |",
        "| --- | --- | --- | --- |",
    ]
    minimal = {r["rows"]: r["seconds"] for r in results if r["mode"] == "minimal"}
    for result in results:
        steps = result.get("steps") or {}
        assert isinstance(steps, dict)
        for name, value in steps.items():
            if name.endswith("_seconds") and name != "total_seconds":
                share = float(value) / float(minimal[result["rows"]])
                label = name.removesuffix("_seconds")
                lines.append(
                    f"| {result['rows']:,} | {label} | {float(value):.2f} | {share:.2f}x |"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--measure", choices=list(MODES))
    parser.add_argument("--batch", type=Path)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.batch, args.state)))
        return
    sizes = args.rows or [2_000_000]
    with tempfile.TemporaryDirectory(prefix="agencyml-score-bench-") as folder:
        state, batches = prepare(Path(folder), sizes)
        results = []
        for rows, batch in batches.items():
            measured = {mode: in_subprocess(mode, batch, state) for mode in MODES}
            for mode, result in measured.items():
                ratio = result["seconds"] / measured["minimal"]["seconds"]
                results.append({"mode": mode, **result, "rows": rows, "vs_minimal": ratio})
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = f"Machine: {machine}\n\n{table(results)}\n\n{breakdown(results)}\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(f"\n## Batch scoring, streaming (`benchmarks/score.py`)\n\n{text}")


if __name__ == "__main__":
    main()
