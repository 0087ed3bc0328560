"""Sign-in throttling: after a few wrong passwords, an account (and a client) must wait, then is locked out.

Like OWASP's advice and what Django-axes or Keycloak do: failures are counted
per account and per client in a sliding window; past `free` failures each
further attempt must wait twice as long as the one before (from `first_wait`),
and past `lock_after` the key is locked for `lockout`. A locked key is refused
before its password is checked, so a locked account costs no hashing and
gives nothing away. Kept in the app process, which serves every session; a
restart clears it, which only shortens a lockout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("libra.signin")


@dataclass
class _Failures:
    at: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class Throttle:
    def __init__(self, *, window: float = 600.0, free: int = 3, first_wait: float = 1.0, lock_after: int = 10,
                 lockout: float = 900.0, clock: Callable[[], float] = time.monotonic):
        self.window, self.free, self.first_wait = window, free, first_wait
        self.lock_after, self.lockout, self.clock = lock_after, lockout, clock
        self._keys: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def _entry(self, key: str, now: float) -> _Failures:
        f = self._keys.setdefault(key, _Failures())
        while f.at and now - f.at[0] > self.window:
            f.at.popleft()
        return f

    def wait(self, *keys: str) -> float:
        """Seconds before any of these keys may try again (0 when they may now)."""
        now = self.clock()
        longest = 0.0
        with self._lock:
            for key in keys:
                f = self._entry(key, now)
                if f.locked_until > now:
                    longest = max(longest, f.locked_until - now)
                elif len(f.at) >= self.free:
                    due = f.at[-1] + self.first_wait * 2 ** (len(f.at) - self.free)
                    longest = max(longest, due - now)
        return max(0.0, longest)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                f = self._entry(key, now)
                f.at.append(now)
                if len(f.at) >= self.lock_after:
                    f.locked_until = now + self.lockout
                    log.warning("sign-in locked for %.0fs after %d failures: %s", self.lockout, len(f.at), key)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._keys.pop(key, None)
