"""What idle inboxes cost: one `agencyml inbox --watch` process against the deployed poll.

Both watch the three shipped use cases' (empty) inboxes of a throw-away copy of the project,
against one `agencyml server` on a free port:

- the watcher: `agencyml inbox --watch` (default --interval, 5 s), measured after it says it
  is watching;
- the deployed poll: the three `<agency>-<use-case>-inbox` deployments (every
  `inbox_poll_seconds`, 60 s) registered with `agencyml deploy --write` and run by
  `agencyml worker`, measured once the first polls have run. Its figure is the worker and every
  flow-run process it starts (each poll is a new process), counted whole even when they end
  inside the window.

CPU is user + system seconds over the window, read from /proc through psutil, for the process
and its descendants (children already reaped included). The server's own CPU in each window
is shown beside them: it runs in both set-ups.
Run from the project root: `.venv/bin/python benchmarks/inbox_watch.py [--seconds 60]`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def tree_cpu(process: psutil.Process) -> float:
    """CPU seconds of a process and its live descendants, their reaped children included."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def measure(processes: dict[str, psutil.Process], seconds: float) -> dict[str, float]:
    before = {name: tree_cpu(process) for name, process in processes.items()}
    time.sleep(seconds)
    return {name: tree_cpu(process) - before[name] for name, process in processes.items()}


def start(command: list[str], env: dict[str, str], log: Path, cwd: Path) -> subprocess.Popen:
    with open(log, "ab") as output:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group, stopped whole (the server, the flow runs)
        )


def wait_for(check, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="inbox-watch-") as folder:
        root = Path(folder)
        project = root / "project"
        for name in ("params", "flows", "pipelines"):
            shutil.copytree(ROOT / name, project / name, ignore=shutil.ignore_patterns("__pyc*"))
        shutil.copy(ROOT / "prefect.yaml", project / "prefect.yaml")
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
            "AGENCYML_PROJECT_ROOT": str(project),
            "AGENCYML_HOME": str(root / "state"),
            "PREFECT_HOME": str(root / "prefect-home"),
            "PREFECT_API_URL": api,
        }
        agencyml = str(BIN / "agencyml")
        running: list[subprocess.Popen] = []
        try:
            server = start(
                [agencyml, "server", "--port", str(port), "--no-ui"], env, root / "server.log", root
            )
            running.append(server)

            def healthy() -> bool:
                try:
                    return httpx.get(f"{api}/health", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            wait_for(healthy, "the Prefect server")
            server_process = psutil.Process(server.pid)

            watch_log = root / "watch.log"
            watcher = start([agencyml, "inbox", "--watch"], env, watch_log, project)
            running.append(watcher)
            wait_for(lambda: "watching 3 inboxes" in watch_log.read_text(), "the watcher")
            watched = measure(
                {"client": psutil.Process(watcher.pid), "server": server_process}, args.seconds
            )
            watcher.terminate()
            watcher.wait(60)

            deployed = subprocess.run(
                [agencyml, "deploy", "--write"], cwd=project, env=env, capture_output=True
            )
            if deployed.returncode != 0:
                raise SystemExit(deployed.stdout.decode() + deployed.stderr.decode())
            worker = start([agencyml, "worker"], env, root / "worker.log", project)
            running.append(worker)
            locks = root / "state" / "locks" / "inbox"  # each poll takes its inbox's lock
            wait_for(lambda: len(list(locks.glob("*/*.lock"))) >= 3, "the first polls", 600)
            polled = measure(
                {"client": psutil.Process(worker.pid), "server": server_process}, args.seconds
            )
        finally:
            for process in reversed(running):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"Machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; load average {load} (1/5/15 min) at the end; "
        f"window {args.seconds:g} s each"
    )
    print("| set-up | CPU s in the window | share of a core | server CPU s |")
    print("| --- | --- | --- | --- |")
    for name, figures in (("inbox --watch (one process)", watched), ("deployed poll", polled)):
        print(
            f"| {name} | {figures['client']:.2f} | {figures['client'] / args.seconds:.4f} "
            f"| {figures['server']:.2f} |"
        )
    tick = 0.01  # /proc counts CPU time in 10 ms ticks
    if watched["client"] < tick:
        print(f"deployed poll / watcher: more than {polled['client'] / tick:.0f}x (under a tick)")
    else:
        print(f"deployed poll / watcher: {polled['client'] / watched['client']:.0f}x")


if __name__ == "__main__":
    main()
