"""Batch scoring with engine local against engine dask, side by side in one run.

Both run `score` end to end (the Prefect flow with validation gate, drift, publishing and
MLflow run) on the same rows with the same model: the business-aid fraud-risk use case trained
on the shipped params (benchmarks/score.py's setup). Engine dask starts a LocalCluster of
2 single-threaded worker processes for the run, as `execution: {engine: dask}` without a
scheduler does. Each measurement runs in its own process, so its peak RSS is its own; the
workers' peak is the largest VmHWM among the worker processes, sampled while they run.
Run: python benchmarks/dask_scoring.py [--rows 10000000] [--out benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from score import prepare  # benchmarks/score.py: train fraud-risk, write unlabelled batches

ROOT = Path(__file__).resolve().parents[1]
AGENCY, USE_CASE = "business-aid", "fraud-risk"
ENGINES = {
    "local": {"engine": "local"},
    "dask": {"engine": "dask", "workers": 2},
}


class WorkerPeaks(threading.Thread):
    """Samples the peak RSS (VmHWM) of this process's Dask worker processes while they live.
    A forked child's ru_maxrss starts at its parent's size, so RUSAGE_CHILDREN cannot tell."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks: dict[int, float] = {}
        self.done = threading.Event()

    def run(self) -> None:
        import psutil

        while not self.done.wait(0.2):
            for child in psutil.Process().children(recursive=True):
                with contextlib.suppress(OSError, psutil.Error):
                    if "spawn_main" in " ".join(child.cmdline()):  # a multiprocessing child
                        self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), hwm_mb(child.pid))

    def largest(self) -> float:
        self.done.set()
        self.join()
        return max(self.peaks.values(), default=0.0)


def hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(engine: str, batch: Path, state: Path) -> dict[str, object]:
    """One end-to-end run in this process: seconds, peak RSS in MB and the manifest's timings."""
    os.environ["AGENCYML_HOME"] = str(state)
    from flows.runtime import prepare_environment
    from flows.score import score
    from pipelines.data import storage
    from pipelines.paths import StateDir

    prepare_environment(StateDir(state), verbose=False)
    workers = WorkerPeaks()
    workers.start()
    started = time.perf_counter()
    result = score(AGENCY, USE_CASE, str(batch))
    seconds = time.perf_counter() - started
    manifest = storage.read_json_file(result.output_dir / "manifest.json")
    return {
        "engine": engine,
        "rows": result.rows + result.rows_quarantined,
        "seconds": seconds,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "worker_peak_mb": workers.largest(),
        "steps": manifest["timings"],
        "scored": str(result.output_dir),
    }


def project_for(engine: str, work: Path) -> Path:
    """A project root whose params run fraud-risk on the engine; scoring reads only params."""
    root = work / f"project-{engine}"
    (root / "params").mkdir(parents=True, exist_ok=True)
    for path in (ROOT / "params").glob("*.yaml"):
        params = yaml.safe_load(path.read_text())
        if params["agency"] == AGENCY:
            params["use_cases"][USE_CASE]["execution"] = ENGINES[engine]
        (root / "params" / path.name).write_text(yaml.safe_dump(params, sort_keys=False))
    return root


def copy_with_new_bytes(batch: Path, engine: str) -> Path:
    """The same rows and row groups under other file metadata: a batch id of its own, so
    each engine scores the batch instead of finding it published."""
    import pyarrow.parquet as pq

    source = pq.ParquetFile(batch)
    schema = source.schema_arrow.with_metadata({"agencyml.benchmark": engine})
    target = batch.with_name(f"{engine}-{batch.name}")
    with pq.ParquetWriter(target, schema) as writer:
        for group in range(source.num_row_groups):
            writer.write_table(source.read_row_group(group).replace_schema_metadata(None))
    return target


def in_subprocess(engine: str, batch: Path, state: Path, project: Path) -> dict[str, object]:
    command = [sys.executable, __file__, "--measure", engine, "--batch", str(batch)]
    command += ["--state", str(state)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "AGENCYML_PROJECT_ROOT": str(project)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def same_scores(local: dict[str, object], dask: dict[str, object]) -> bool:
    """Whether both runs published the same ids, probabilities and decisions, row for row."""
    import pyarrow.dataset as ds

    columns = ["application_id", "probability", "decision"]
    tables = [
        ds.dataset(Path(str(run["scored"])) / "scored").to_table(columns=columns)
        if (Path(str(run["scored"])) / "scored").is_dir()
        else ds.dataset(Path(str(run["scored"])) / "scored.parquet").to_table(columns=columns)
        for run in (local, dask)
    ]
    return tables[0].equals(tables[1])


def table(results: list[dict[str, object]]) -> str:
    local = {r["rows"]: float(r["seconds"]) for r in results if r["engine"] == "local"}
    lines = [
        "| rows | engine | seconds | rows/s | driver peak RSS (MB) | largest worker peak RSS "
        "(MB) | time vs local |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        seconds = float(r["seconds"])
        workers = f"{float(r['worker_peak_mb']):,.0f}" if r["engine"] == "dask" else "-"
        lines.append(
            f"| {r['rows']:,} | {r['engine']} | {seconds:.2f} | {int(r['rows']) / seconds:,.0f} "
            f"| {float(r['peak_mb']):,.0f} | {workers} | {seconds / local[r['rows']]:.2f}x |"
        )
    return "\n".join(lines)


def breakdown(results: list[dict[str, object]]) -> str:
    """The manifest's per-step timings (summed over chunks), local and dask side by side."""
    lines = ["| rows | step | local seconds | dask seconds |", "| --- | --- | --- | --- |"]
    by_rows: dict[object, dict[str, dict[str, float]]] = {}
    for r in results:
        steps = r["steps"]
        assert isinstance(steps, dict)
        by_rows.setdefault(r["rows"], {})[str(r["engine"])] = steps
    for rows, engines in by_rows.items():
        names = [n for n in engines["local"] if n.endswith("_seconds") and n != "total_seconds"]
        for name in sorted(names):
            lines.append(
                f"| {rows:,} | {name.removesuffix('_seconds')} | {engines['local'][name]:.2f} "
                f"| {engines['dask'].get(name, 0.0):.2f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, action="append")
    parser.add_argument("--measure", choices=list(ENGINES))
    parser.add_argument("--batch", type=Path)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.batch, args.state)))
        return
    sizes = args.rows or [1_000_000]
    results = []
    with tempfile.TemporaryDirectory(prefix="agencyml-dask-bench-") as folder:
        work = Path(folder)
        state, batches = prepare(work, sizes)
        for rows, batch in batches.items():
            measured = {
                engine: in_subprocess(
                    engine, copy_with_new_bytes(batch, engine), state, project_for(engine, work)
                )
                for engine in ENGINES
            }
            if not same_scores(measured["local"], measured["dask"]):
                raise RuntimeError(f"{rows:,} rows: the two engines published different scores")
            results.extend(measured.values())
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = f"Machine: {machine}\n\n{table(results)}\n\n{breakdown(results)}\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(f"\n## Scoring on Dask (`benchmarks/dask_scoring.py`)\n\n{text}")


if __name__ == "__main__":
    main()
