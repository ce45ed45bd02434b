"""The pull service under load: concurrent agency clients pulling one scored batch.

Trains business-aid fraud-risk into a scratch state, scores a generated batch of --rows rows,
starts `agencyml serve` in its own process on 127.0.0.1, then runs --clients clients at once,
each pulling the batch --pulls times with `pipelines.service.pull.pull_batch` (download, sha256
check, rename). Reports throughput, latency percentiles, errors and the server's peak memory.
Run: python benchmarks/pull_load.py [--rows 100000 --clients 50 --pulls 4] [--out RESULTS.md]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str], env: dict[str, str]) -> None:
    subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(work: Path, rows: int) -> tuple[dict[str, str], str]:
    """A trained model, a scored batch of `rows` rows and an agency token; returns the env
    and the token's secret."""
    env = {
        **os.environ,
        "AGENCYML_HOME": str(work / "state"),
        "AGENCYML_PROJECT_ROOT": str(ROOT),
        "PYTHONPATH": str(ROOT),
        # a background Prefect server would outlive the scratch state directory
        "AGENCYML_PREFECT_SERVER": "temporary",
    }
    agencyml = [sys.executable, "-m", "flows"]
    run([*agencyml, "train", "-a", "business-aid", "-u", "fraud-risk"], env)
    batch = work / "batch.parquet"
    run([*agencyml, "generate", "-o", str(batch), "--rows", str(rows), "--seed", "5"], env)
    run([*agencyml, "score", "-a", "business-aid", "-u", "fraud-risk", "-i", str(batch)], env)
    created = subprocess.run(
        [*agencyml, "tokens", "create", "--agency", "business-aid", "--name", "load"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return env, created.stdout.strip().splitlines()[-1]


def peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM"))
    return int(line.split()[1]) / 1024


def load(url: str, secret: str, work: Path, clients: int, pulls: int) -> dict[str, object]:
    from pipelines.service.pull import PullError, pull_batch

    def one_client(number: int) -> list[tuple[float, int, str | None]]:
        done = []
        for attempt in range(pulls):
            target = work / "pulled" / f"{number}-{attempt}.parquet"
            started = time.perf_counter()
            try:
                pulled = pull_batch(url, secret, "business-aid", target, timeout=300)
                done.append((time.perf_counter() - started, pulled.bytes, None))
                target.unlink()
            except PullError as error:
                done.append((time.perf_counter() - started, 0, str(error)))
        return done

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = [r for client in pool.map(one_client, range(clients)) for r in client]
    wall = time.perf_counter() - started
    latencies = np.array([seconds for seconds, _, error in results if error is None])
    errors = [error for _, _, error in results if error is not None]
    sent = sum(size for _, size, _ in results)
    return {
        "pulls": len(results),
        "errors": len(errors),
        "first_error": errors[0] if errors else "",
        "wall": wall,
        "pulls_per_s": len(latencies) / wall,
        "mb_per_s": sent / 2**20 / wall,
        "bytes": sent // max(len(latencies), 1),
        **{f"p{q}": float(np.percentile(latencies, q)) for q in (50, 90, 99)},
        "max": float(latencies.max()) if len(latencies) else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--pulls", type=int, default=4)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="agencyml-pull-bench-") as folder:
        work = Path(folder)
        env, secret = prepare(work, args.rows)
        port = free_port()
        log = open(work / "serve.log", "wb")  # noqa: SIM115 - open for the server's lifetime
        server = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            for _ in range(600):
                try:
                    httpx.get(f"{url}/openapi.json", timeout=2)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            os.environ["AGENCYML_HOME"] = env["AGENCYML_HOME"]
            result = load(url, secret, work, args.clients, args.pulls)
            result["server_peak_mb"] = peak_rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)
            log.close()
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    text = (
        f"Machine: {machine}. {args.clients} clients at once, {args.pulls} pulls each, of one "
        f"{args.rows:,}-row batch ({result['bytes']:,} bytes as parquet).\n\n"
        "| pulls | errors | wall s | pulls/s | MB/s | p50 s | p90 s | p99 s | max s | "
        "server peak RSS (MB) |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        f"| {result['pulls']} | {result['errors']} | {result['wall']:.1f} | "
        f"{result['pulls_per_s']:.1f} | {result['mb_per_s']:.1f} | {result['p50']:.2f} | "
        f"{result['p90']:.2f} | {result['p99']:.2f} | {result['max']:.2f} | "
        f"{result['server_peak_mb']:.0f} |\n"
    )
    if result["errors"]:
        text += f"\nFirst error: {result['first_error']}\n"
    print(text)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as handle:
            handle.write(f"\n## Pull service under load (`benchmarks/pull_load.py`)\n\n{text}")


if __name__ == "__main__":
    main()
