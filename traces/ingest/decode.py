"""An input's bytes as importers read them: decompressed (bounded), UTF-8, lines ending in LF.

Producers write what they write: a UTF-8 byte-order mark (Excel, PowerShell),
UTF-16 (Windows' `Out-File`), Latin-1 or Windows-1252, classic-Mac CR line
ends, a gzip cut short by a full disk. Each is turned into what the readers
expect, and the encoding assumed is said; what cannot be read is returned as
a problem to quarantine, never raised, so one bad file never costs its
neighbours. UTF-8 input with LF or CRLF ends, the common case, is passed
through untouched and unread.
"""

from __future__ import annotations

import codecs
import zlib
from dataclasses import dataclass, replace

from traces.importers.base import MAX_DECOMPRESSED, Source
from traces.importers.records import HEAD_BYTES
from traces.model import Rejected


@dataclass(frozen=True)
class Decoded:
    source: Source
    encoding: str  # as assumed: utf-8, utf-8-sig, utf-16-le, ..., cp1252, latin-1
    problems: tuple[Rejected, ...] = ()


_BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))


def _gunzip(source: Source, limit: int) -> tuple[Source, list[Rejected]]:
    """A gzip input decompressed up to `limit` bytes; a cut or corrupt stream keeps what came before it."""
    out, problems, total = bytearray(), [], 0
    d = zlib.decompressobj(wbits=31)  # gzip framing
    with source.open() as f:
        try:
            while chunk := f.read(1 << 20):
                while chunk:
                    piece = d.decompress(chunk, max(1, limit + 1 - total))
                    total += len(piece)
                    out += piece
                    if total > limit:
                        problems.append(Rejected(
                            reason=f"decompressed size passes the limit of {limit:,} bytes "
                                   "(LIBRA_MAX_DECOMPRESSED_BYTES); the rest was not read",
                            raw="", line=None, offset=total))
                        del out[limit:]
                        return replace(source, name=source.name[:-3], path=None, data=bytes(out)), problems
                    chunk = d.unconsumed_tail
                    if d.eof:  # a second gzip member follows (concatenated files)
                        rest = d.unused_data
                        d = zlib.decompressobj(wbits=31)
                        chunk = rest
            if not d.eof and (total or d.unconsumed_tail):
                problems.append(Rejected(reason=f"gzip data ends early after {total:,} decompressed bytes "
                                                "(a cut or unfinished file); what came before was read",
                                         raw="", offset=total))
        except zlib.error as exc:
            problems.append(Rejected(reason=f"corrupt gzip data after {total:,} decompressed bytes ({exc}); "
                                            "what came before was read", raw="", offset=total))
    return replace(source, name=source.name[:-3], path=None, data=bytes(out)), problems


def _looks_utf16(head: bytes) -> str | None:
    # ASCII-heavy text in UTF-16 without a mark: every other byte is NUL
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def _valid_utf8_prefix(head: bytes, whole: bool) -> bool:
    try:
        head.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        # a character cut by the end of the head is not an error
        return not whole and exc.start >= len(head) - 3


def decode(source: Source, limit: int | None = None) -> Decoded:
    """The input as UTF-8 with LF line ends, and the encoding that was assumed."""
    limit = MAX_DECOMPRESSED if limit is None else limit
    problems: list[Rejected] = []
    if source.name.lower().endswith(".gz"):
        source, problems = _gunzip(source, limit)
    with source.open() as f:
        head = f.read(HEAD_BYTES)
    if head[:4] == b"PK\x03\x04":  # an archive: its members are decoded by their importer
        return Decoded(source, "zip", tuple(problems))
    whole = len(head) < HEAD_BYTES
    encoding = next((enc for bom, enc in _BOMS if head.startswith(bom)), None) or _looks_utf16(head)
    if encoding is None and not _valid_utf8_prefix(head, whole):
        encoding = "cp1252"
    # classic Mac line ends: CR with no LF anywhere in the head
    cr_only = b"\r" in head and b"\n" not in head
    if encoding is None and not cr_only:
        return Decoded(source, "utf-8", tuple(problems))
    with source.open() as f:
        raw = f.read()
    if encoding is None:
        text, encoding = raw.decode("utf-8", errors="replace"), "utf-8"
    else:
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            # Windows-1252 leaves five bytes undefined; Latin-1 reads every byte
            encoding = "latin-1" if encoding == "cp1252" else encoding
            text = raw.decode(encoding, errors="replace")
        text = text.lstrip("\ufeff")
    if cr_only or "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")
        encoding += ", CR line ends"
    return Decoded(replace(source, path=None, data=text.encode("utf-8")), encoding, tuple(problems))
