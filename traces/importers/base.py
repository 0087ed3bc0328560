"""The importer contract, and the helpers importers share for values and bad records.

An importer recognises its format from a `Sample` of the input and turns the
input into a stream of `Parsed` (runs built from some input records) and
`Rejected` (records it could not use, kept with reason, line and field).
Importers never write to the store and never raise for bad records. The
readers that stream an input's JSON records are in `traces.importers.records`.
"""

from __future__ import annotations

import io
import json
import os
import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import orjson

from traces.model import Parsed, Rejected

RAW_LIMIT = 1 << 20  # quarantined raw text is kept up to 1 MiB per record


def _env_limit(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


# Bounded work per record: a line, or an archive member, longer than this is quarantined
# unread (LIBRA_MAX_RECORD_BYTES), never loaded whole.
MAX_RECORD_BYTES = _env_limit("LIBRA_MAX_RECORD_BYTES", 1 << 30)
# The most a compressed input or archive member may grow to (LIBRA_MAX_DECOMPRESSED_BYTES).
MAX_DECOMPRESSED = _env_limit("LIBRA_MAX_DECOMPRESSED_BYTES", 2 << 30)


class RecordError(ValueError):
    """A record is unusable; `field` names the offending field (dotted path)."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Source:
    """An input to import: a file on disk or an in-memory blob (stdin, zip member)."""

    name: str
    path: Path | None = None
    data: bytes | None = None
    problem: str | None = None  # why it is not read at all (a FIFO in a folder, a dangling link)

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return open(self.path, "rb")

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix.lower()

    def size(self) -> int:
        if self.data is not None:
            return len(self.data)
        return self.path.stat().st_size if self.path else 0


@dataclass(frozen=True)
class Record:
    value: Any
    line: int | None
    offset: int | None
    raw: bytes | str


@dataclass
class Sample:
    """What detection looks at: the start of the input and its first record."""

    source: Source
    head: bytes
    layout: str  # "jsonl" | "json_array" | "json_object" | "zip" | "csv" | "empty" | "unknown"
    first: Any = None  # the first record that could be read
    records: tuple[Any, ...] = ()  # the records sampled (JSON lines), for detection by majority
    problem: str | None = None  # why the first record could not be read, when it could not


class Importer(ABC):
    name: ClassVar[str]
    description: ClassVar[str]
    # What the first record must look like, said when `libra formats --explain` shows a refusal.
    expects: ClassVar[str] = ""
    # Higher wins when several importers recognise the same sample.
    priority: ClassVar[int] = 0
    # True when parse() accepts shard=(k, n) and then keeps only the runs whose key
    # hashes to k (see `in_shard`), so n processes can read one big input at once.
    shardable: ClassVar[bool] = False

    @abstractmethod
    def sniff(self, sample: Sample) -> bool:
        """True when this importer can read the input the sample comes from."""

    @abstractmethod
    def parse(self, source: Source) -> Iterator[Parsed | Rejected]:
        """Runs and rejected records, streamed; must not raise for bad input."""


# -- helpers for importers -----------------------------------------------------

def in_shard(key: Any, shard: tuple[int, int] | None) -> bool:
    """Whether a record keyed `key` belongs to shard (k, n); unkeyable records go to 0.

    The hash must be the same in every process, so not Python's salted hash().
    """
    if shard is None:
        return True
    k, n = shard
    if key is None:
        return k == 0
    return zlib.crc32(str(key).encode("utf-8", "surrogatepass")) % n == k


def raw_text(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", errors="replace")
    return raw[:RAW_LIMIT]


def reject(rec: Record, exc: Exception, records: int = 1) -> Rejected:
    field = getattr(exc, "field", None)
    reason = str(exc) or type(exc).__name__
    if not isinstance(exc, RecordError):  # an importer tripped on input it did not foresee
        reason = f"unreadable record ({type(exc).__name__}: {reason})"[:2000]
    return Rejected(
        reason=reason, raw=raw_text(rec.raw), line=rec.line,
        offset=rec.offset, field=field, records=records,
    )


def require(obj: Any, key: str, kind: type | tuple[type, ...] | None = None, path: str = "") -> Any:
    where = f"{path}.{key}" if path else key
    if not isinstance(obj, dict):
        raise RecordError(f"expected an object at {path or 'top level'}", path or None)
    if key not in obj or obj[key] is None:
        raise RecordError(f"missing required field '{where}'", where)
    value = obj[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise RecordError(f"field '{where}' should be {names}, got {type(value).__name__}", where)
    return value


def text_of(value: Any) -> str:
    """Message content in the many shapes formats use, as plain text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = []
        for p in value:
            if isinstance(p, str):
                parts.append(p)
            elif isinstance(p, dict):
                for k in ("text", "content", "reasoning", "value"):
                    if isinstance(p.get(k), str):
                        parts.append(p[k])
                        break
                else:
                    kind = p.get("type")
                    parts.append(f"[{kind}]" if kind else json.dumps(p, default=str))
        return "\n".join(parts)
    if isinstance(value, dict):
        for k in ("text", "content", "value"):
            if isinstance(value.get(k), str):
                return value[k]
    return json.dumps(value, default=str)


_EPOCH = datetime(1970, 1, 1)


def parse_time(value: Any) -> datetime | None:
    """Timestamps as formats write them: ISO text, epoch seconds/ms/us/ns. Naive UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        s = value.strip()
        if len(s) >= 10 and s[4] == "-" and s[7] == "-":  # ISO 8601, the common case
            try:
                dt = datetime.fromisoformat(s)
            except ValueError:
                return None
            if dt.tzinfo is not None:
                dt = dt.astimezone(UTC).replace(tzinfo=None)
            return dt
        if s.isdigit() and len(s) > 17:
            return parse_time(int(s))
        try:
            value = float(s)
        except ValueError:
            try:
                dt = datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                return None
            if dt.tzinfo is not None:
                dt = dt.astimezone(UTC).replace(tzinfo=None)
            return dt
    if type(value) is int and value > 10**17:  # epoch nanoseconds, as OTLP writes them
        try:
            return _EPOCH + timedelta(microseconds=value // 1000)
        except OverflowError:
            return None
    if isinstance(value, int | float):
        v = float(value)
        if v <= 0:
            return None
        for scale in (1.0, 1e3, 1e6, 1e9):  # s, ms, us, ns
            if v / scale < 1e10:
                try:
                    return datetime.fromtimestamp(v / scale, UTC).replace(tzinfo=None)
                except (OverflowError, OSError, ValueError):
                    return None
    return None


# 20 or more digits where a JSON value starts (after a colon, bracket or comma): the only place an
# integer past 64 bits can hide. Digits inside strings (hex trace ids that happen to be all digits,
# nanosecond times) do not count, or every such line would take the slow parser.
# orjson reads integers from -2**63 to 2**64 - 1 exactly and turns the rest into floats: any with 20
# digits may be out of range, and a negative one with 19 (below -9223372036854775808)
_LONG_VALUE = re.compile(rb"[:\[,]\s*(?:-?[0-9]{20}|-[0-9]{19})")
# A regex over every line was the importer's largest cost after parsing: Python's engine retries at
# each digit of every 19-digit nanosecond time. Mapping digits to "0" (and keeping "-") and finding
# twenty zeros, or a minus and nineteen, is one pass in C; only a line that has such a run is
# searched with the regex.
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else i if i == 0x2D else 0x78 for i in range(256))
_TWENTY_DIGITS, _MINUS_NINETEEN_DIGITS = b"0" * 20, b"-" + b"0" * 19


def _has_long_integer(b: bytes) -> bool:
    zeros = b.translate(_DIGITS_AS_ZERO)
    if zeros.find(_TWENTY_DIGITS) < 0 and zeros.find(_MINUS_NINETEEN_DIGITS) < 0:
        return False
    head = b.lstrip()[:21]  # a document that is one bare number
    return head[:20].isdigit() or (head[:1] == b"-" and head[1:20].isdigit()) or _LONG_VALUE.search(b) is not None


def decode_json(raw: bytes | str) -> Any:
    """orjson, except for text holding integers too big for 64 bits, which orjson turns into floats.

    Those ids (a 128-bit OpenTelemetry trace id written as a number) must stay
    exact, or two traces whose ids share their first 16 digits become one run;
    the standard library's parser keeps every integer exact. Only inputs with a
    20-digit integer value, or a negative 19-digit one, pay for it.
    """
    b = raw.encode() if isinstance(raw, str) else raw
    if _has_long_integer(b):
        return _stdlib_json(raw)
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        # NaN and Infinity, which Python's json.dumps writes by default and orjson refuses
        if b"NaN" in b or b"Infinity" in b:
            return _stdlib_json(raw)
        raise


def _stdlib_json(raw: bytes | str) -> Any:
    try:
        return json.loads(raw)
    except RecursionError as exc:
        raise orjson.JSONDecodeError("nested deeper than the parser allows", "", 0) from exc
    except ValueError as exc:
        raise orjson.JSONDecodeError(str(exc), raw if isinstance(raw, str) else raw.decode("utf-8", "replace"),
                                     0) from exc


def maybe_json(value: Any) -> Any:
    """Formats often nest JSON inside strings; decode when it is."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return decode_json(value)
        except orjson.JSONDecodeError:
            return value
    return value


def as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None
