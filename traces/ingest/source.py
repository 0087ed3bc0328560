"""One input into the store: detect its format, parse it (in parallel where that pays), write it."""

from __future__ import annotations

from traces import importers
from traces.importers.base import Source, raw_text, sample
from traces.ingest.parallel import count, ingest_sharded, worth_it
from traces.ingest.stream import ProgressFn, guarded, tracked
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
) -> None:
    summary.files += 1
    if source.name.lower().endswith(".gz") and source.data is None:
        import gzip

        with gzip.open(source.path, "rb") as g:
            source = Source(name=source.name[:-3], data=g.read())
    smp = sample(source)
    imp = importer or importers.detect(source, smp)
    if on_file:
        on_file(source, imp.name if imp else None)
    if imp is None:
        if smp.layout == "empty":
            return
        summary.unrecognised_files.append(source.name)
        if explicit:
            reason = "no importer recognises this input; pass --format to choose one"
            writer.add_rejected(Rejected(reason=reason, raw=raw_text(smp.head), line=1, offset=0),
                                source.name, None)
            summary.quarantined += 1
            summary.records += 1
            summary.reasons[reason] = summary.reasons.get(reason, 0) + 1
        return
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
