"""Validation time against parquet read time, and peak memory of chunked validation.

Each measurement runs in its own process, so its peak RSS is its own.
Run: python benchmarks/validation_scale.py [--rows 1000000]
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
from datetime import UTC, datetime
from pathlib import Path


def measure(mode: str, path: Path, state: Path, chunk_rows: int) -> dict[str, float]:
    """One measurement in this process: 'read' the whole file, or 'validate' it in chunks."""
    import pyarrow.parquet as pq

    from pipelines.config import load_use_case
    from pipelines.data import storage
    from pipelines.data.columns import conform_columns
    from pipelines.paths import StateDir
    from pipelines.validation.expectations import column_kinds, derive_profile, scoring_checks
    from pipelines.validation.gx import run_checks_in_chunks

    started = time.perf_counter()
    if mode == "read":
        rows = pq.read_table(path).num_rows
    else:
        params = load_use_case("business-aid", "fraud-risk").params
        profile = derive_profile(next(storage.iter_table(path, 50_000)), params)
        checks = scoring_checks(params, profile, datetime.now(UTC))
        kinds = column_kinds(params)
        chunks = (conform_columns(c, kinds)[0] for c in storage.iter_table(path, chunk_rows))
        outcome = run_checks_in_chunks(
            chunks, checks, agency="benchmark", suite_name="scale", state=StateDir(state)
        )
        rows = outcome.rows
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"rows": rows, "seconds": seconds, "peak_mb": peak_mb}


def in_subprocess(mode: str, path: Path, state: Path, chunk_rows: int) -> dict[str, float]:
    command = [
        sys.executable,
        __file__,
        "--measure",
        mode,
        "--path",
        str(path),
        "--state",
        str(state),
        "--chunk-rows",
        str(chunk_rows),
    ]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--measure", choices=["read", "validate"])
    parser.add_argument("--path", type=Path)
    parser.add_argument("--state", type=Path)
    parser.add_argument("--chunk-rows", type=int, default=250_000)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.path, args.state, args.chunk_rows)))
        return
    from pipelines.data.business_aid import iter_application_chunks
    from pipelines.data.storage import write_parquet_stream

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}\n"
    )
    print("| rows | step | chunk rows | seconds | peak RSS (MB) | time vs read |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for rows in (args.rows, 3 * args.rows):
            path = Path(folder) / f"batch-{rows}.parquet"
            write_parquet_stream(iter_application_chunks(rows, 7), path)
            read = in_subprocess("read", path, Path(folder) / "state", args.chunk_rows)
            print(
                f"| {rows:,} | parquet read | - | {read['seconds']:.2f} | "
                f"{read['peak_mb']:,.0f} | 1.0x |"
            )
            for chunk_rows in (args.chunk_rows, 4 * args.chunk_rows):
                check = in_subprocess("validate", path, Path(folder) / "state", chunk_rows)
                print(
                    f"| {rows:,} | conform + GX validation | {chunk_rows:,} | "
                    f"{check['seconds']:.2f} | {check['peak_mb']:,.0f} | "
                    f"{check['seconds'] / read['seconds']:.1f}x |"
                )


if __name__ == "__main__":
    main()
