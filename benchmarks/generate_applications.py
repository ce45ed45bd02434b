"""Writing synthetic business-aid applications in chunks: time and peak memory by chunk size.

Each setting runs in its own process (`agencyml generate`), so peak memory is its own.
Run: python benchmarks/generate_applications.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK_SIZES = (50_000, 250_000, 1_000_000)


def run_once(rows: int, chunk_rows: int, folder: Path) -> tuple[float, float, int]:
    """Seconds, peak RSS in MB and bytes written for one `agencyml generate` run."""
    output = folder / f"applications-{chunk_rows}.parquet"
    command = [
        sys.executable,
        "-m",
        "flows",
        "generate",
        "-o",
        str(output),
        "--rows",
        str(rows),
        "--chunk-rows",
        str(chunk_rows),
    ]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    size = output.stat().st_size
    output.unlink()
    return seconds, peak_mb, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    rows = parser.parse_args().rows
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; rows: {rows:,}\n"
    )
    print("| chunk rows | seconds | rows per second | peak RSS (MB) | parquet size (MB) |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as folder:
        for chunk_rows in CHUNK_SIZES:
            # RUSAGE_CHILDREN keeps the maximum over all children, so run the smallest first
            seconds, peak_mb, size = run_once(rows, chunk_rows, Path(folder))
            print(
                f"| {chunk_rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | {peak_mb:,.0f} "
                f"| {size / 1e6:,.0f} |"
            )


if __name__ == "__main__":
    main()
