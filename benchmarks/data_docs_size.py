"""What a validation logs as its Data Docs, as an agency's batches pile up: the run's own
folder (what agencyml logs) against the agency's whole GX site (what it logged before, and
what any run logging the site would), measured side by side after each validation.

One agency, two use cases' suites, N small validations in one state directory; the figures
are file sizes, so the machine matters little. Run from the project root:
`.venv/bin/python benchmarks/data_docs_size.py [--validations 200]`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipelines.paths import StateDir
from pipelines.validation.expectations import Check
from pipelines.validation.gx import run_checks


def size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--validations", type=int, default=200)
    args = parser.parse_args()
    checks = [
        Check("exists:case_id", "column_exists", "batch", "case_id"),
        Check("unique:case_id", "unique", "batch", "case_id"),
        Check("not_null:case_id", "not_null", "row", "case_id"),
    ]
    report = {1, 10, 50, 100, args.validations}
    print(f"machine: {platform.machine()}, Python {platform.python_version()}")
    print("| validations so far | run's own Data Docs (KB) | agency's GX site (KB) | ratio | s |")
    print("| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as root:
        state = StateDir(Path(root) / "state")
        for n in range(1, args.validations + 1):
            frame = pd.DataFrame({"case_id": [f"{n}-{i}" for i in range(100)]})
            start = time.perf_counter()
            outcome = run_checks(
                frame, checks, agency="alpha", suite_name=f"use-case-{n % 2}", state=state
            )
            took = time.perf_counter() - start
            if n in report:
                own = size(outcome.data_docs)
                site = size(data_docs_site_of(outcome.data_docs))
                print(
                    f"| {n} | {own / 1e3:,.0f} | {site / 1e3:,.0f} | {site / own:,.0f}x |"
                    f" {took:.2f} |"
                )
        print(
            f"\nRebuilding GX's site index over {args.validations} validations: "
            f"{index_build_seconds(state):.2f} s; the last validation, without it: {took:.2f} s"
        )


def index_build_seconds(state: StateDir) -> float:
    """What rebuilding GX's site index costs now (the gate did it after every validation)."""
    from pipelines.validation.gx import agency_context

    context = agency_context("alpha", state)
    start = time.perf_counter()
    context.build_data_docs(build_index=True)
    return time.perf_counter() - start


def data_docs_site_of(folder: Path) -> Path:
    """runs/<suite>/<run>/<batch> -> the local_site beside runs/."""
    while folder.name != "runs":
        folder = folder.parent
    return folder.parent / "local_site"


if __name__ == "__main__":
    main()
