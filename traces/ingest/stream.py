"""An importer's record stream made safe and observable: failures quarantined, bytes counted."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

from traces.importers.base import RAW_LIMIT, Source, raw_text
from traces.model import IngestSummary, Parsed, Rejected

ProgressFn = Callable[[str, int, int], None]  # (source name, bytes done, bytes total)


def guarded(items: Iterator[Parsed | Rejected], source: Source) -> Iterator[Parsed | Rejected]:
    """An importer's stream that cannot take the ingest down with it.

    Importers quarantine bad records themselves; if one still fails, the rest
    of that input is quarantined with the error and the batch goes on.
    """
    n = 0
    last_line = None
    try:
        for item in items:
            n += 1
            last_line = item.line if item.line is not None else last_line
            yield item
    except Exception as exc:  # noqa: BLE001
        try:
            with source.open() as f:
                raw = f.read(RAW_LIMIT)
        except OSError:
            raw = b""
        yield Rejected(
            reason=f"importer failed after {n} records ({type(exc).__name__}: {exc}); "
                   "the rest of this input was not read"[:2000],
            raw=raw_text(raw), line=last_line,
        )


class _ProgressReader(io.RawIOBase):
    def __init__(self, f, name: str, total: int, cb: ProgressFn):
        self._f, self._name, self._total, self._cb = f, name, total, cb
        self._last = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._f.seekable()

    def seek(self, *a):
        return self._f.seek(*a)

    def tell(self):
        return self._f.tell()

    def readinto(self, b) -> int:
        n = self._f.readinto(b)
        pos = self._f.tell()
        if pos - self._last >= (1 << 20) or n == 0:
            self._last = pos
            self._cb(self._name, min(pos, self._total), self._total)
        return n

    def close(self):
        self._f.close()
        super().close()


class _TrackedSource(Source):
    def open(self):
        if self.path is None:
            return super().open()
        raw = open(self.path, "rb", buffering=0)  # noqa: SIM115 - closed by the reader
        return io.BufferedReader(
            _ProgressReader(raw, self.name, self.__dict__["_total"], self.__dict__["_cb"]), 1 << 16)


def tracked(source: Source, total: int, cb: ProgressFn) -> Source:
    t = _TrackedSource(name=source.name, path=source.path, data=source.data)
    object.__setattr__(t, "_cb", cb)
    object.__setattr__(t, "_total", total)
    return t


def count(summary: IngestSummary, item: Parsed | Rejected) -> None:
    """Account for one importer item in the summary."""
    summary.records += item.records
    if isinstance(item, Rejected):
        summary.quarantined += item.records
        key = item.reason.split(":")[0][:120]
        summary.reasons[key] = summary.reasons.get(key, 0) + item.records
