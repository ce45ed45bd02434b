"""One long-lived process watching inboxes, the deployed poll's alternative for idle inboxes.

Every `interval` seconds it looks at each inbox the way a poll does (`inbox.scan`: a few stat
calls, no Prefect, no flow run) and only when a file is ready, or one is left in .claimed/,
hands the inbox to `poll`: the one-shot poll itself, with its lock, its claim by rename and its
receipts, so a watcher and a one-shot poll side by side still score each file once. A failed
poll is logged and its leftovers retried after the inbox's `retry_seconds`; new files are
polled at once.

The poll runs on a thread so that SIGTERM and SIGINT reach only this module's handlers: the
first lets the current poll finish (a batch is published whole or not at all) and then stops;
a second abandons it, the file staying in .claimed/ for the next poll to finish.

Standard library only: the caller decides what polling an inbox means."""

from __future__ import annotations

import contextlib
import contextvars
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

from pipelines.orchestration import inbox

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
POLL_CHECK_SECONDS = 1.0  # while a poll runs, how often the main thread looks for signals


@dataclass(frozen=True)
class WatchedInbox:
    agency: str
    use_case: str
    box: inbox.Inbox
    settle_seconds: float
    retry_seconds: float  # after a failed poll, how long its leftovers wait to be tried again

    @property
    def name(self) -> str:
        return f"{self.agency}/{self.use_case}"


@dataclass
class Stopped:
    """How the watcher ended: on which signal, and whether it abandoned a poll to do so."""

    signal_name: str
    abandoned: str | None = None  # the inbox whose poll was still running


@dataclass
class InboxWatcher:
    inboxes: list[WatchedInbox]
    poll: Callable[[WatchedInbox], None]  # raises when the poll failed
    interval: float
    log: Callable[[str], None]
    _signals: list[int] = field(default_factory=list)
    _retry_at: dict[str, float] = field(default_factory=dict)

    def watch(self) -> Stopped:
        """Watch until SIGTERM or SIGINT; returns how it stopped."""
        wake_read, wake_write = os.pipe()
        os.set_blocking(wake_write, False)

        def on_signal(signum: int, frame: FrameType | None) -> None:
            self._signals.append(signum)

        try:
            with handling(STOP_SIGNALS, on_signal, wake_write):
                return self._loop(wake_read, wake_write)
        finally:
            os.close(wake_read)
            os.close(wake_write)

    def _loop(self, wake_read: int, wake_write: int) -> Stopped:
        names = ", ".join(item.name for item in self.inboxes)
        self.log(f"watching {len(self.inboxes)} inboxes every {self.interval:g} s: {names}")
        while not self._signals:
            for item in self.inboxes:
                if self._signals:
                    break
                if not self.has_work(item):
                    continue
                abandoned = self._poll_on_thread(item, wake_read, wake_write)
                if abandoned:
                    return Stopped(signal.Signals(self._signals[-1]).name, item.name)
            if not self._signals:
                wait(wake_read, self.interval)
        name = signal.Signals(self._signals[0]).name
        self.log(f"{name}: stopped")
        return Stopped(name)

    def has_work(self, item: WatchedInbox) -> bool:
        """A ready file, or a leftover in .claimed/ whose retry time has come."""
        try:
            found = inbox.scan(item.box, item.settle_seconds)
        except FileNotFoundError:
            item.box.create()  # removed under us: there again for the next drop
            return False
        if found.ready:
            return True
        return bool(found.leftovers) and time.time() >= self._retry_at.get(item.name, 0.0)

    def _poll_on_thread(self, item: WatchedInbox, wake_read: int, wake_write: int) -> bool:
        """Run one poll to its end unless a second signal comes first; True if abandoned."""
        failure: list[BaseException] = []
        done = threading.Event()  # set before the wake-up, so the main thread never waits on

        def run() -> None:
            try:
                self.poll(item)
            except BaseException as error:  # reported on the main thread, which keeps watching
                failure.append(error)
            finally:
                done.set()
                with contextlib.suppress(BlockingIOError, OSError):
                    os.write(wake_write, b"p")

        context = contextvars.copy_context()
        worker = threading.Thread(
            target=context.run, args=(run,), name=f"poll {item.name}", daemon=True
        )
        worker.start()
        told = 0
        while not done.is_set():
            wait(wake_read, POLL_CHECK_SECONDS)
            if len(self._signals) > told and not done.is_set():
                told = len(self._signals)
                name = signal.Signals(self._signals[-1]).name
                if told > 1:
                    self.log(
                        f"{name} again: abandoning the poll of {item.name}; a file it was "
                        "scoring stays in .claimed/ and the next poll finishes it"
                    )
                    return True
                self.log(
                    f"{name}: stopping once the poll of {item.name} finishes (a batch is "
                    "published whole or not at all); signal again to abandon it"
                )
        worker.join()
        if failure:
            error = failure[0]
            self._retry_at[item.name] = time.time() + item.retry_seconds
            self.log(
                f"{item.name}: poll failed: {type(error).__name__}: {error} "
                f"(its files are retried in {item.retry_seconds:g} s, or with the next drop)"
            )
        else:
            self._retry_at.pop(item.name, None)
        return False


def wait(wake_read: int, seconds: float) -> None:
    """Sleep until `seconds` pass or something writes to the wake pipe (a signal, a poll's end)."""
    ready, _, _ = select.select([wake_read], [], [], seconds)
    if ready:
        os.read(wake_read, 4096)


@contextlib.contextmanager
def handling(
    signals: tuple[signal.Signals, ...],
    handler: Callable[[int, FrameType | None], None],
    wake_write: int,
) -> Iterator[None]:
    """`handler` for these signals, and a byte on `wake_write` for each: a signal may land on
    any thread (Prefect's among them), and only the wake-up fd reaches a main thread blocked
    in select()."""
    previous_fd = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
    previous = {number: signal.signal(number, handler) for number in signals}
    try:
        yield
    finally:
        for number, old in previous.items():
            signal.signal(number, old)
        signal.set_wakeup_fd(previous_fd)
