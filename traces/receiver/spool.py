"""Where acknowledged requests wait for the store: one fsynced file per request.

A file is written under a temporary name, fsynced, renamed into place and
the directory fsynced, so after a crash a request's file is either whole or
absent, and it is whole before its request is acknowledged. Files are named
by arrival (nanoseconds, then a counter), so draining keeps arrival order.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from pathlib import Path

import orjson

SUFFIX = ".otlp.json"


class Spool:
    def __init__(self, directory: str | os.PathLike, max_bytes: int = 256 << 20):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._lock = threading.Lock()
        for tmp in self.dir.glob("*.tmp"):  # a write cut by a crash was never acknowledged
            tmp.unlink(missing_ok=True)
        self._bytes = sum(p.stat().st_size for p in self.pending())

    @property
    def bytes(self) -> int:
        return self._bytes

    def full(self) -> bool:
        return self._bytes >= self.max_bytes

    def put(self, kind: str, body: dict) -> Path:
        """Write one request durably; returns once it would survive a power cut."""
        data = orjson.dumps({"kind": kind, "body": body})
        with self._lock:
            name = f"{time.time_ns():020d}-{next(self._seq):08d}-{kind}{SUFFIX}"
        final = self.dir / name
        tmp = final.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, final)
        _fsync_dir(self.dir)
        with self._lock:
            self._bytes += len(data)
        return final

    def pending(self) -> list[Path]:
        return sorted(self.dir.glob(f"*{SUFFIX}"))

    @staticmethod
    def read(path: Path) -> tuple[str, dict]:
        d = orjson.loads(path.read_bytes())
        return d["kind"], d["body"]

    def done(self, paths: list[Path]) -> None:
        freed = 0
        for p in paths:
            try:
                freed += p.stat().st_size
                p.unlink()
            except FileNotFoundError:
                continue
        _fsync_dir(self.dir)
        with self._lock:
            self._bytes = max(0, self._bytes - freed)


def _fsync_dir(d: Path) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
