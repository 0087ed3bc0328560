"""Reading an input as JSON records, whatever its layout, and the record loop importers share.

A `Sample` of the head says how the input is laid out (JSON lines, an array,
one document, a stream of concatenated values); the readers then stream its
records with line and byte offset, each bounded (LIBRA_MAX_RECORD_BYTES), and
turn what cannot be read into a `Rejected` rather than raising. Archive
members are read in bounded chunks, zstd ones included.
"""

from __future__ import annotations

import codecs
import io
import json
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson

from traces.importers.base import (
    MAX_DECOMPRESSED, MAX_RECORD_BYTES, RAW_LIMIT, Importer, Record, RecordError, Sample, Source, decode_json,
    raw_text, reject,
)
from traces.model import Parsed, Rejected, Run


ZIP_ZSTANDARD = 93  # the compression method current Inspect AI writes .eval members with


def read_member(z: Any, name: str, limit: int | None = None) -> bytes:
    """An archive member's bytes, read in chunks and refused past `limit` (a zip bomb never fills memory)."""
    limit = min(MAX_DECOMPRESSED, MAX_RECORD_BYTES) if limit is None else limit
    info = z.getinfo(name)
    if info.compress_type == ZIP_ZSTANDARD:
        return _zstd_member(z, info, limit)
    out = bytearray()
    with z.open(name) as f:
        while chunk := f.read(1 << 20):
            out += chunk
            if len(out) > limit:
                raise RecordError(f"archive member {name} passes {limit:,} bytes decompressed "
                                  "(LIBRA_MAX_RECORD_BYTES); not read", name)
    return bytes(out)


def _zstd_member(z: Any, info: Any, limit: int) -> bytes:
    """A zstd member, which Python's zipfile cannot read before 3.14.

    zipfile-zstd would patch the standard module for the whole process; reading
    the member's compressed bytes after its local header and decompressing them
    with `zstandard`, bounded, touches nothing else.
    """
    import struct

    import zstandard

    fp = z.fp
    fp.seek(info.header_offset)
    head = fp.read(30)
    if head[:4] != b"PK\x03\x04":
        raise RecordError(f"archive member {info.filename} has no local header", info.filename)
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    fp.seek(info.header_offset + 30 + name_len + extra_len)
    reader = zstandard.ZstdDecompressor().stream_reader(_Bounded(fp, info.compress_size))
    out = bytearray()
    try:
        while chunk := reader.read(1 << 20):
            out += chunk
            if len(out) > limit:
                raise RecordError(f"archive member {info.filename} passes {limit:,} bytes decompressed "
                                  "(LIBRA_MAX_RECORD_BYTES); not read", info.filename)
    except zstandard.ZstdError as exc:
        raise RecordError(f"archive member {info.filename} is not valid zstd: {exc}", info.filename) from None
    return bytes(out)


class _Bounded:
    """The next `n` bytes of a file, as a readable stream."""

    def __init__(self, f: Any, n: int):
        self.f, self.left = f, n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        data = self.f.read(size)
        self.left -= len(data)
        return data


class RecordImporter(Importer):
    """An importer that turns each JSON record of its input into one run.

    The record loop lives here once: unreadable records come through as
    rejections, and a record `run_of` cannot turn into a run is quarantined
    with its line, byte offset, field and reason, never taking its neighbours
    with it.
    """

    @abstractmethod
    def run_of(self, rec: Record, source: Source) -> Run:
        """The run one record holds; raises (RecordError for known problems) when it holds none."""

    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        for rec in iter_records(source):
            if isinstance(rec, Rejected):
                yield rec
                continue
            try:
                yield Parsed((self.run_of(rec, source),), line=rec.line)
            except Exception as exc:  # noqa: BLE001 - any failure quarantines the record
                yield reject(rec, exc)


# -- readers -------------------------------------------------------------------

HEAD_BYTES = 64 * 1024
FIRST_LINE_LIMIT = 256 * 1024 * 1024


def sample(source: Source) -> Sample:
    with source.open() as f:
        head = f.read(HEAD_BYTES)
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        return Sample(source, head, "empty")
    if head[:4] == b"PK\x03\x04":
        return Sample(source, head, "zip")
    if stripped[:1] == b"[":
        first, problem = None, None
        for item in iter_json_array(source, limit=1):
            first = item.value if isinstance(item, Record) else None
            problem = item.reason if isinstance(item, Rejected) else None
        return Sample(source, head, "json_array", first, problem=problem)
    if stripped[:1] == b"{":
        records = _sample_lines(source, head, stripped)
        if records:
            return Sample(source, head, "jsonl", records[0], tuple(records))
        if len(head) < HEAD_BYTES or source.size() < 512 * 1024 * 1024:
            doc = read_document(source)
            if isinstance(doc, Record):
                return Sample(source, head, "json_object", doc.value)
            # pretty-printed documents one after another (the OpenTelemetry SDK's ConsoleSpanExporter)
            firsts = [r for _, r in zip(range(2), iter_json_stream(source), strict=False)]
            if len(firsts) == 2 and all(isinstance(r, Record) for r in firsts):
                return Sample(source, head, "json_stream", firsts[0].value,  # type: ignore[union-attr]
                              tuple(r.value for r in firsts))  # type: ignore[union-attr]
        return Sample(source, head, "json_object")
    if source.suffix in (".csv", ".tsv"):
        return Sample(source, head, "csv")
    return Sample(source, head, "unknown")


SAMPLE_LINES = 20  # JSON lines read for detection
SAMPLE_BYTES = 8 << 20  # ... or this much of the input, whichever ends first


def _sample_lines(source: Source, head: bytes, stripped: bytes) -> list[Any]:
    """The records among the first lines that are JSON objects starting a line.

    A bad or cut first line must not make a file of good lines unrecognised, so
    several lines are read; a pretty-printed document's lines are indented or
    are not whole objects, so it yields none.
    """
    if b"\n" not in stripped and len(head) == HEAD_BYTES:
        with source.open() as f:  # the first line is longer than the head: read all of it
            line = f.readline(FIRST_LINE_LIMIT).lstrip(b"\xef\xbb\xbf \t\r")
        try:
            return [decode_json(line)]
        except orjson.JSONDecodeError:
            return []
    out, seen = [], 0
    with source.open() as f:
        for i, line in enumerate(f):
            seen += len(line)
            if i >= SAMPLE_LINES * 5 or seen > SAMPLE_BYTES or len(out) >= SAMPLE_LINES:
                break
            line = line.lstrip(b"\xef\xbb\xbf") if i == 0 else line
            if not line.startswith(b"{"):
                continue
            try:
                value = decode_json(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                out.append(value)
    return out


def read_document(source: Source) -> Record | Rejected:
    if source.size() > MAX_RECORD_BYTES:
        with source.open() as f:
            head = f.read(4096)
        return Rejected(reason=f"a JSON document larger than {MAX_RECORD_BYTES:,} bytes (LIBRA_MAX_RECORD_BYTES); "
                               "write it as JSON lines", raw=raw_text(head), line=1, offset=0)
    with source.open() as f:
        raw = f.read()
    try:
        return Record(decode_json(raw), 1, 0, raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(reason=f"invalid JSON document: {exc}", raw=raw_text(raw), line=1, offset=0)


def iter_json_stream(source: Source, chunk: int = 1 << 20) -> Iterator[Record | Rejected]:
    """JSON documents written one after another, each over many lines.

    Read in chunks with the standard decoder's `raw_decode` (orjson decodes
    whole documents only); a document longer than MAX_RECORD_BYTES, or one
    that does not parse, ends the stream with a rejection naming its line.
    """
    dec = json.JSONDecoder()
    buf, line, offset, eof = "", 1, 0, False
    with source.open() as f:
        reader = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while True:
            stripped = buf.lstrip()
            line += buf[: len(buf) - len(stripped)].count("\n")
            offset += len(buf) - len(stripped)
            buf = stripped
            if not buf and eof:
                return
            try:
                value, end = dec.raw_decode(buf)
            except json.JSONDecodeError as exc:
                if eof or len(buf) > MAX_RECORD_BYTES:
                    why = "a document larger than LIBRA_MAX_RECORD_BYTES" if not eof else f"invalid JSON: {exc}"
                    yield Rejected(reason=why, raw=raw_text(buf[:RAW_LIMIT].encode()), line=line, offset=offset)
                    return
                data = f.read(chunk)
                eof = not data
                buf += reader.decode(data, final=eof)
                continue
            text = buf[:end]
            yield Record(value, line, offset, text.encode())
            line += text.count("\n")
            offset += end
            buf = buf[end:]


def _lines(f: BinaryIO, limit: int) -> Iterator[tuple[bytes, int]]:
    """(line, its length in the input) with lines past `limit` bytes cut to their first `limit`.

    The rest of a long line is read in chunks and dropped, so one endless line
    costs a chunk of memory, not the line.
    """
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n = len(line)
        if n > limit and not line.endswith(b"\n"):
            while True:
                rest = f.readline(1 << 20)
                n += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
        yield line, n


def iter_jsonl(source: Source, skip: Callable[[bytes], bool] | None = None,
               limit: int | None = None) -> Iterator[Record | Rejected]:
    """One JSON value per line; blank lines are skipped, bad lines rejected in place.

    `skip` sees each raw line first; lines it rejects are not parsed (a shard's
    cheap test for records that belong to another process). A line longer than
    `limit` bytes (MAX_RECORD_BYTES) is quarantined unread.
    """
    limit = MAX_RECORD_BYTES if limit is None else limit
    offset = 0
    with source.open() as f:
        for lineno, (line, n) in enumerate(_lines(f, limit), 1):
            start = offset
            offset += n
            if n > limit:
                yield Rejected(reason=f"line longer than {limit:,} bytes (LIBRA_MAX_RECORD_BYTES); not read",
                               raw=raw_text(line[:4096]), line=lineno, offset=start)
                continue
            # only a line that starts with a blank can be blank: spare big lines a stripped copy
            if (line[:1] in b" \t\r\n\x0b\x0c" and not line.strip()) or (skip is not None and skip(line)):
                continue
            try:
                yield Record(decode_json(line), lineno, start, line.rstrip(b"\r\n"))
            except orjson.JSONDecodeError as exc:
                yield Rejected(
                    reason=f"invalid JSON: {exc}", raw=raw_text(line.rstrip(b"\r\n")), line=lineno,
                    offset=start,
                )


def _skip_value(buf: str, pos: int) -> int | None:
    """End of the bracketed value starting at pos, ignoring what is inside strings."""
    depth = 0
    in_str = False
    esc = False
    for i in range(pos, len(buf)):
        c = buf[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth <= 0:
                return i + 1
        elif depth == 0 and c in ",\n":
            return i
    return None


_decoder = json.JSONDecoder()
_WS = " \t\r\n"


def iter_json_array(source: Source, limit: int | None = None) -> Iterator[Record | Rejected]:
    """Items of a top-level JSON array, streamed, each with its line and character offset.

    Memory stays at about one chunk plus the largest item. A decode error only
    counts once the item's brackets close inside the buffer; until then the
    item may simply continue in the next chunk.
    """
    chunk = 1 << 20
    with source.open() as fb:
        f = io.TextIOWrapper(fb, encoding="utf-8", errors="replace")
        buf = f.read(chunk).lstrip("\ufeff")
        eof = len(buf) < chunk
        base = 0  # character offset of buf[0] in the input
        line = 1  # line number of buf[0]
        pos = 0
        n = 0

        def more() -> bool:
            nonlocal buf, eof, base, pos, line
            if eof:
                return False
            line += buf.count("\n", 0, pos)
            base += pos
            new = f.read(chunk)
            eof = len(new) < chunk
            buf = buf[pos:] + new
            pos = 0
            return True

        def skip_ws() -> bool:
            """Advance to the next non-blank character; False at end of input."""
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in _WS:
                    pos += 1
                if pos < len(buf):
                    return True
                if not more():
                    return False

        if not skip_ws() or buf[pos] != "[":
            return
        pos += 1
        while skip_ws() and buf[pos] != "]":
            while True:
                try:
                    try:
                        value, end = _decoder.raw_decode(buf, pos)
                    except RecursionError:
                        raise json.JSONDecodeError("nested deeper than the parser allows", buf, pos) from None
                except json.JSONDecodeError as exc:
                    stop = _skip_value(buf, pos)
                    if stop is None and more():
                        continue
                    stop = len(buf) if stop is None else max(stop, pos + 1)
                    yield Rejected(
                        reason=f"invalid JSON in array item {n}: {exc.msg}",
                        raw=raw_text(buf[pos:stop]), line=line + buf.count("\n", 0, pos),
                        offset=base + pos,
                    )
                    pos = stop
                    break
                if end >= len(buf) and more():
                    continue  # a number or literal cut by the chunk boundary
                yield Record(value, line + buf.count("\n", 0, pos), base + pos, buf[pos:end])
                pos = end
                break
            n += 1
            if limit is not None and n >= limit:
                return
            if not skip_ws():
                return
            if buf[pos] == ",":
                pos += 1
            elif buf[pos] != "]":
                stop = _skip_value(buf, pos) or len(buf)
                stop = max(stop, pos + 1)
                yield Rejected(
                    reason="unexpected text between array items",
                    raw=raw_text(buf[pos:stop]), line=line + buf.count("\n", 0, pos),
                    offset=base + pos,
                )
                pos = stop


def iter_records(source: Source, layout: str | None = None,
                 skip: Callable[[bytes], bool] | None = None) -> Iterator[Record | Rejected]:
    """Records of a JSON input whatever its layout: lines, array items, or one document."""
    if layout is None:
        layout = sample(source).layout
    if layout == "jsonl":
        yield from iter_jsonl(source, skip)
    elif layout == "json_array":
        yield from iter_json_array(source)
    elif layout == "json_object":
        yield read_document(source)
    elif layout == "json_stream":
        yield from iter_json_stream(source)
    elif layout == "empty":
        return
    else:
        with source.open() as f:
            raw = f.read(RAW_LIMIT)
        yield Rejected(reason="not JSON", raw=raw_text(raw), line=1, offset=0)
