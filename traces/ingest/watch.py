"""Follow a directory of OTLP JSON files as the OpenTelemetry Collector writes them.

The Collector's file exporter appends one `ExportTraceServiceRequest` per
line and, with rotation on, renames the full file to a timestamped backup
and starts a new one. So a watcher must:

- read only complete lines (the last one may still be being written);
- know a file by device and inode, not name, so a renamed (rotated) file
  carries on from where it was, and a new file of the same name starts at 0;
- notice truncation (copy-truncate rotation) and start that file again;
- keep a trace open until its spans stop arriving, since one trace's spans
  can land in several lines, polls and files; a trace is written once its
  root span is in and nothing new came for `settle` seconds (or after
  `max_wait` without a root).

Compressed files (`.gz`, `.zst`: rotated backups) are read decompressed, and
offsets count decompressed bytes. A backup compressed from a file already
being followed (same first bytes) carries on from that file's offsets, so its
spans are not read twice.

Crash safety: per file, the committed offset only moves past lines whose
spans are all written, and traces written from lines beyond it are listed
with it; after a restart those lines are read again and the listed traces'
spans skipped, so nothing is lost and nothing written twice.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from traces.importers._spans import trace_to_run
from traces.importers.base import raw_text
from traces.importers.otlp import attributes, parse_otlp_span
from traces.ingest import BatchWriter
from traces.model import IngestSummary, Rejected
from traces.store import Store, merge

FORMAT = "otlp-json"
COUNTS = ("records", "runs_added", "runs_updated", "duplicates", "steps", "feedback", "quarantined")


@dataclass
class _File:
    key: str
    path: Path
    committed: int  # everything before this offset is in the store
    read_to: int  # everything before this offset has been parsed
    done_traces: set[str] = field(default_factory=set)  # written from lines past `committed`
    head: str = ""  # hash of the file's first bytes: a truncated and rewritten file has new ones
    # open trace id -> offset of the first line holding one of its spans
    pending_from: dict[str, int] = field(default_factory=dict)
    size: int = -1  # bytes on disk when last read (a compressed file is read again when it grows)


@dataclass
class _Trace:
    spans: list = field(default_factory=list)
    rooted: bool = False
    first_seen: float = 0.0
    last_seen: float = 0.0
    files: set[str] = field(default_factory=set)


HEAD_BYTES = 256
COMPRESSED = (".gz", ".zst")


def _decompressed(path: Path) -> bytes:
    """All of a compressed file that can be decompressed (a backup being written is read to its end so far)."""
    from traces.importers.base import MAX_DECOMPRESSED

    raw = path.read_bytes()
    if path.suffix == ".zst":
        import zstandard

        try:
            return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True).read(MAX_DECOMPRESSED)
        except zstandard.ZstdError:
            return b""
    import zlib

    out, d = bytearray(), zlib.decompressobj(wbits=47)
    try:
        while raw and len(out) < MAX_DECOMPRESSED:
            out += d.decompress(raw, MAX_DECOMPRESSED - len(out))
            raw = d.unconsumed_tail or (d.unused_data if d.eof else b"")
            if d.eof and raw:  # concatenated gzip members
                d = zlib.decompressobj(wbits=47)
            elif not d.unconsumed_tail:
                break
    except zlib.error:
        pass  # what came before the damage is kept
    return bytes(out)


def head_of(path: Path, n: int = HEAD_BYTES) -> str:
    """A fingerprint of the first n bytes (n recorded, so a file that grew still matches)."""
    with path.open("rb") as fh:
        return f"{n}:{hashlib.sha1(fh.read(n)).hexdigest()}"


def file_key(st: os.stat_result) -> str:
    return f"{st.st_dev}:{st.st_ino}"


_WATCH_COLS = ["file_key", "path", "committed", "head", "done_traces", "updated_at"]


class Watcher:
    def __init__(self, store: Store, directory: str | os.PathLike, pattern: str = "*.json*",
                 settle: float = 5.0, max_wait: float = 120.0, clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.dir = Path(directory)
        self.pattern = pattern
        self.settle = settle
        self.max_wait = max_wait
        self.clock = clock
        self.files: dict[str, _File] = {}
        self.traces: dict[str, _Trace] = {}
        self.summary = IngestSummary()
        self._load_state()

    def _load_state(self) -> None:
        for key, path, committed, head, done in self.store.execute(
                "SELECT file_key, path, committed, head, done_traces FROM watch_files"):
            self.files[key] = _File(key, Path(path), committed, committed, set(json.loads(done or "[]")),
                                    head or "")

    def poll(self) -> IngestSummary:
        """Read what is new, write the traces that have settled; returns this poll's counts."""
        before = {k: getattr(self.summary, k) for k in COUNTS}
        seen = set()
        for path in sorted(self.dir.iterdir()) if self.dir.is_dir() else []:
            if not path.is_file() or not fnmatch.fnmatch(path.name, self.pattern):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:  # rotated away between listing and stat
                continue
            key = file_key(st)
            seen.add(key)
            f = self.files.get(key)
            compressed = path.suffix in COMPRESSED
            if f is None:
                f = self.files[key] = self._backup_of(path) if compressed else _File(key, path, 0, 0)
                f.key = key
            f.path = path
            if compressed:
                if st.st_size != f.size:
                    f.size = st.st_size
                    self._read(f)
                continue
            if st.st_size < f.read_to or (f.head and f.head != head_of(path, int(f.head.split(":")[0]))):
                # truncated in place (copy-truncate rotation): a new file under the same inode
                f.committed = f.read_to = 0
                f.head = ""
                f.done_traces.clear()
                f.pending_from.clear()
            if st.st_size > f.read_to:
                self._read(f)
        self._flush_settled(final=False)
        self._save_state(seen)
        return IngestSummary(**{k: getattr(self.summary, k) - before[k] for k in COUNTS})

    def _backup_of(self, path: Path) -> _File:
        """A compressed file's state: a followed file's, when it is that file compressed (rotation)."""
        data = _decompressed(path)
        for other in self.files.values():
            if not other.head or other.path.suffix in COMPRESSED:
                continue
            n = int(other.head.split(":")[0])
            head = f"{n}:{hashlib.sha1(data[:n]).hexdigest()}"
            if other.head == head:
                # its lines still pending stay the followed file's, which is kept until they are written
                return _File("", path, other.read_to, other.read_to, set(), head)
        return _File("", path, 0, 0)

    def _read(self, f: _File) -> None:
        if f.path.suffix in COMPRESSED:
            data = _decompressed(f.path)[f.read_to:]
        else:
            with f.path.open("rb") as fh:
                fh.seek(f.read_to)
                data = fh.read()
        end = data.rfind(b"\n")
        if end < 0:
            return  # no complete line yet
        offset = f.read_to
        now = self.clock()
        rejected = []
        for line in data[:end + 1].splitlines(keepends=True):
            start, offset = offset, offset + len(line)
            if not line.strip():
                continue
            try:
                req = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                rejected.append(Rejected(reason=f"invalid JSON: {exc}", raw=raw_text(line), offset=start))
                continue
            for i, rs in enumerate(req.get("resourceSpans") or [] if isinstance(req, dict) else []):
                res = attributes((rs.get("resource") or {}).get("attributes")) if isinstance(rs, dict) else {}
                for j, ss in enumerate(rs.get("scopeSpans") or [] if isinstance(rs, dict) else []):
                    scope = (ss.get("scope") or {}) if isinstance(ss, dict) else {}
                    for k, sp in enumerate(ss.get("spans") or [] if isinstance(ss, dict) else []):
                        where = f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]"
                        try:
                            span = parse_otlp_span(sp, where, res, scope)
                        except Exception as exc:  # noqa: BLE001 - a bad span is quarantined, not fatal
                            rejected.append(Rejected(reason=str(exc), raw=raw_text(orjson.dumps(sp)),
                                                     offset=start, field=where))
                            continue
                        if span.trace_id in f.done_traces:
                            continue  # written before a restart; these lines are being re-read
                        t = self.traces.setdefault(span.trace_id, _Trace(first_seen=now))
                        t.spans.append(span)
                        t.rooted |= not span.parent_id
                        t.last_seen = now
                        t.files.add(f.key)
                        f.pending_from.setdefault(span.trace_id, start)
        if f.read_to < HEAD_BYTES:
            f.head = head_of(f.path, min(offset, HEAD_BYTES))
        f.read_to = offset
        if rejected:
            w = BatchWriter(self.store, self.summary)
            for r in rejected:
                w.add_rejected(r, str(f.path), FORMAT)
            w.close()

    def _flush_settled(self, final: bool) -> None:
        now = self.clock()
        ready = [tid for tid, t in self.traces.items()
                 if final or (t.rooted and now - t.last_seen >= self.settle) or now - t.first_seen >= self.max_wait]
        if ready:
            w = BatchWriter(self.store, self.summary)
            for tid in ready:
                w.add_run(trace_to_run(self.traces[tid].spans, FORMAT, str(self.dir)))
            w.close()
            self.summary.records += len(ready)
        for tid in ready:
            t = self.traces.pop(tid)
            for key in t.files:
                f = self.files[key]
                f.pending_from.pop(tid, None)
                f.done_traces.add(tid)
        for f in self.files.values():
            f.committed = min(f.pending_from.values(), default=f.read_to)
            if not f.pending_from:
                f.done_traces.clear()  # nothing past `committed` has been written

    def _save_state(self, seen: set[str]) -> None:
        now = datetime.now(UTC).replace(tzinfo=None)
        gone = [k for k in self.files if k not in seen and not self.files[k].pending_from]
        def save(con) -> None:
            for k in gone:
                con.execute("DELETE FROM watch_files WHERE file_key = ?", [k])
            merge(con, "watch_files",
                  [[f.key, str(f.path), f.committed, f.head, json.dumps(sorted(f.done_traces)), now]
                   for k, f in self.files.items() if k not in gone],
                  keys=["file_key"], update=_WATCH_COLS[1:], columns=_WATCH_COLS)
        self.store.write(save)
        for k in gone:
            del self.files[k]

    def close(self) -> IngestSummary:
        """Write every open trace (used when stopping, and by `--once`)."""
        self._flush_settled(final=True)
        self._save_state(set(self.files))
        return self.summary

    @property
    def open_traces(self) -> int:
        return len(self.traces)
