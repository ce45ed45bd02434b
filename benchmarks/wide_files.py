"""What a wide batch costs to read: agencyml's batch reader (the header, then only the use
case's declared columns) against parsing every column of the same file (pyarrow's CSV reader,
all columns as text, which is what reading a whole file costs at best).

The files are fraud-risk's holdout rows (the declared columns) with K extra columns nobody
uses, K = 0, 1,000 and 9,900 (just under the 10,000-column limit). Each read runs in a fresh
process, so its peak resident memory (VmHWM, which unlike ru_maxrss is not inherited from
the parent across exec) is its own, imports included: agencyml's reader imports pandas and
its own modules, so its floor is higher. The time is the read alone, the interpreter's start-up
and imports excluded. Both readers run in turn on each file, best of 3.
Run from the project root: `.venv/bin/python benchmarks/wide_files.py [--rows 2000]`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
EXTRA = (0, 1_000, 9_900)

READ = """
import json, sys, time
from pathlib import Path
path, how, columns = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
if how == "agencyml":
    from pipelines.data.batch_columns import check_names, iter_columns, read_header
    start = time.perf_counter()
    header = read_header(path)
    check_names(header, columns)
    rows = sum(batch.num_rows for batch in iter_columns(header, 50_000, columns=columns))
else:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    start = time.perf_counter()
    names = pacsv.open_csv(path).schema.names
    table = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names})
    )
    rows = table.num_rows
seconds = time.perf_counter() - start
status = Path("/proc/self/status").read_text().splitlines()
peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM")) / 1024
print(json.dumps({"rows": rows, "seconds": seconds, "peak_mb": peak}))
"""


def wide_file(folder: Path, frame: pd.DataFrame, extra: int) -> Path:
    rng = np.random.default_rng(extra)
    unused = pd.DataFrame(
        rng.integers(0, 1_000, size=(len(frame), extra)).astype(str),
        columns=[f"unused_{i}" for i in range(extra)],
    )
    path = folder / f"wide-{extra}.csv"
    pd.concat([frame.reset_index(drop=True), unused], axis=1).to_csv(path, index=False)
    return path


def read(path: Path, how: str, columns: list[str]) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", READ, str(path), how, json.dumps(columns)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    if done.returncode:
        raise SystemExit(f"reading {path.name} ({how}) failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from pipelines.data.business_aid import generate_applications

    frame = generate_applications(args.rows, seed=7).drop(columns=["is_fraud", "review_track"])
    columns = list(frame.columns)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; load average {os.getloadavg()[0]:.2f} at start; "
        f"{args.rows:,} rows, {len(columns)} declared columns"
    )
    print("| extra columns | file MB | agencyml s | all columns s | time ratio | "
          "agencyml peak MB | all columns peak MB | memory ratio |")  # fmt: skip
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as scratch:
        for extra in EXTRA:
            path = wide_file(Path(scratch), frame, extra)
            best: dict[str, dict[str, float]] = {}
            for _ in range(args.repeats):
                for how in ("agencyml", "all"):  # interleaved, so load hits both alike
                    result = read(path, how, columns)
                    assert result["rows"] == args.rows, result
                    if how not in best or result["seconds"] < best[how]["seconds"]:
                        best[how] = result
            ours, whole = best["agencyml"], best["all"]
            print(
                f"| {extra:,} | {path.stat().st_size / 1e6:.1f} | {ours['seconds']:.3f} | "
                f"{whole['seconds']:.3f} | {whole['seconds'] / ours['seconds']:.1f}x | "
                f"{ours['peak_mb']:.0f} | {whole['peak_mb']:.0f} | "
                f"{whole['peak_mb'] / ours['peak_mb']:.1f}x |"
            )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
