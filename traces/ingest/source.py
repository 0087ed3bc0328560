"""One input into the store: detect its format, parse it (in parallel where that pays), write it."""

from __future__ import annotations

from traces import importers
from traces.importers.base import Source, raw_text
from traces.importers.records import sample
from traces.ingest.decode import decode
from traces.ingest.parallel import ingest_sharded, worth_it
from traces.ingest.stream import ProgressFn, count, guarded, tracked
from traces.ingest.writer import BatchWriter
from traces.model import IngestSummary, Parsed, Rejected
from traces.store import Store


def ingest_source(
    store: Store,
    source: Source,
    writer: BatchWriter,
    summary: IngestSummary,
    *,
    importer=None,
    explicit: bool = True,
    progress: ProgressFn | None = None,
    on_file=None,
    workers: int = 1,
) -> tuple[str | None, str | None]:
    """Read one input into the writer; (the format read, the encoding assumed)."""
    summary.files += 1
    if source.problem:
        _reject(writer, summary, Rejected(reason=source.problem, raw=""), source.name, None)
        return None, None
    decoded = decode(source)
    for problem in decoded.problems:
        _reject(writer, summary, problem, source.name, None)
    source = decoded.source
    smp = sample(source)
    imp = importer or importers.detect(source, smp)
    if on_file:
        on_file(source, imp.name if imp else None)
    if imp is None:
        if smp.layout == "empty":
            return None, decoded.encoding
        summary.unrecognised_files.append(source.name)
        if smp.problem:  # JSON that cannot be read at all (nested past the parser's depth)
            _reject(writer, summary, Rejected(reason=smp.problem, raw=raw_text(smp.head[:4096]), line=1, offset=0),
                    source.name, None)
        elif explicit or decoded.problems:
            reason = "no importer recognises this input; pass --format to choose one"
            _reject(writer, summary, Rejected(reason=reason, raw=raw_text(smp.head), line=1, offset=0),
                    source.name, None)
        return None, decoded.encoding
    summary.formats[imp.name] = summary.formats.get(imp.name, 0) + 1
    total = source.size()
    if worth_it(imp, source, smp.layout, workers):
        ingest_sharded(source, imp, writer, summary, workers, progress)
    else:
        followed = source if progress is None else tracked(source, total, progress)
        for item in guarded(imp.parse(followed), source):
            count(summary, item)
            if isinstance(item, Parsed):
                for run in item.runs:
                    writer.add_run(run)
            else:
                writer.add_rejected(item, source.name, imp.name)
    if progress:
        progress(source.name, total, total)
    return imp.name, decoded.encoding


def _reject(writer: BatchWriter, summary: IngestSummary, rej: Rejected, name: str, fmt: str | None) -> None:
    writer.add_rejected(rej, name, fmt)
    count(summary, rej)
