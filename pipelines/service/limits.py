"""How much one address may ask of the pull service without a valid token, and how much of a
request the access log keeps: the limits that stop anyone from flooding the log.

The count is a fixed window per client address, in the service process's memory (a restart
forgets it; behind a reverse proxy every client shares the proxy's address unless uvicorn is
told to trust its X-Forwarded-For)."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

ANONYMOUS_REQUESTS = 120  # per address and window, without a valid token (a setting's default)
WINDOW_SECONDS = 60.0
LOGGED_PATH_CHARS = 512
LOGGED_HEADER_CHARS = 256
_FORGET_AFTER = 10_000  # addresses remembered before expired windows are dropped


def capped(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


@dataclass
class AnonymousLimit:
    """At most `requests` requests without a valid token per address in each window of
    `seconds`; past that, the address waits for the window to end."""

    requests: int = ANONYMOUS_REQUESTS
    seconds: float = WINDOW_SECONDS
    # address -> [the window's start, requests counted, refusals]
    _windows: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, address: str, now: float | None = None) -> int:
        """Whole seconds until `address` may ask again without a token; 0 when it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._windows.get(address)
            if window is None or now - window[0] >= self.seconds or window[1] < self.requests:
                return 0
            return max(1, math.ceil(window[0] + self.seconds - now))

    def refused(self, address: str) -> int:
        """Count one refusal of `address`; returns how many it has had in this window."""
        with self._lock:
            window = self._windows.get(address)
            if window is None:
                return 0
            window[2] += 1
            return int(window[2])

    def count(self, address: str, now: float | None = None) -> None:
        """One request of `address` answered without a valid token."""
        now = time.monotonic() if now is None else now
        with self._lock:
            window = self._windows.get(address)
            if window is None or now - window[0] >= self.seconds:
                if len(self._windows) >= _FORGET_AFTER:
                    self._forget_expired(now)
                self._windows[address] = [now, 1, 0]
            else:
                window[1] += 1

    def _forget_expired(self, now: float) -> None:
        for address in [a for a, w in self._windows.items() if now - w[0] >= self.seconds]:
            del self._windows[address]
