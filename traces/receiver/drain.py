"""From the spool into the store: spans and logs as received, traces rebuilt whole.

A batch of spooled requests is written in one transaction: every span and log
record as received (upserted by trace and span id, or by a hash of the log
record, so replaying a batch after a crash rewrites the same rows), the records
that cannot be read quarantined with their reason, and the batch's account
(records read = stored + quarantined). Then every trace the batch touched is
rebuilt from all the spans and logs the store holds of it, with the OTLP file
importer's own span parser and trace assembly, and written as a run (replacing
the partial one an earlier request made). The spool files go last, so a crash at
any point leaves them to be drained again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from traces.importers._span import Span
from traces.importers._spans import trace_to_run
from traces.importers.base import RecordError
from traces.importers.otlp import any_value, attributes, otlp_id, parse_otlp_span
from traces.ingest import ingest_runs, record_files
from traces.ingest.writer import quarantine
from traces.model import FileTally, Rejected
from traces.receiver.spool import Spool
from traces.store import Store, merge

log = logging.getLogger("libra.serve")

FORMAT = "otlp-json"  # runs built from received spans are the OTLP importer's runs: same ids as from files
SOURCE = "otlp-http"


@dataclass
class Drained:
    requests: int = 0
    records: int = 0
    stored: int = 0
    quarantined: int = 0
    traces: int = 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _scope(ss: dict) -> dict:
    sc = ss.get("scope") or ss.get("instrumentationLibrary") or {}
    return {k: sc[k] for k in ("name", "version") if isinstance(sc, dict) and isinstance(sc.get(k), str)}


def _raw(v: Any) -> str:
    return orjson.dumps(v, default=str).decode()[:100_000]


# (resource list, scope list, item list) of each signal's request, as OTLP names them
SHAPES = {"traces": ("resourceSpans", "scopeSpans", "spans"), "logs": ("resourceLogs", "scopeLogs", "logRecords")}


def _items(kind: str, body: dict, rejected: list) -> list[tuple[str, Any, dict, dict]]:
    """(where, item, resource attributes, scope) for every span or log record of a request.

    A resource entry that is not an object is quarantined here, and counts as one record read.
    """
    outer, inner, leaf = SHAPES[kind]
    out = []
    for i, r in enumerate(body.get(outer) or ()):
        if not isinstance(r, dict):
            rejected.append(Rejected(f"{outer} entry is not an object", _raw(r), field=f"{outer}[{i}]"))
            continue
        res = attributes((r.get("resource") or {}).get("attributes"))
        scopes = r.get(inner) or (r.get("instrumentationLibrarySpans") if kind == "traces" else None) or ()
        for j, sc in enumerate(scopes):
            scope = _scope(sc) if isinstance(sc, dict) else {}
            for k, item in enumerate((sc.get(leaf) or ()) if isinstance(sc, dict) else ()):
                out.append((f"{outer}[{i}].{inner}[{j}].{leaf}[{k}]", item, res, scope))
    return out


def _read(kind: str, body: dict, rejected: list, keep) -> int:
    """Every item of a request through `keep`; one it refuses (RecordError) is quarantined. Returns records read."""
    before = len(rejected)
    items = _items(kind, body, rejected)
    read = len(items) + len(rejected) - before  # resource entries that are not objects count as read
    for where, item, res, scope in items:
        try:
            keep(where, item, res, scope)
        except RecordError as exc:
            rejected.append(Rejected(str(exc), _raw(item), field=exc.field))
    return read


def _spans(body: dict, now: datetime, rows: list, rejected: list, touched: set) -> int:
    def keep(where: str, sp: Any, res: dict, scope: dict) -> None:
        span = parse_otlp_span(sp, where, res, scope)
        rows.append([span.trace_id, span.span_id,
                     orjson.dumps({"span": sp, "resource": res, "scope": scope}).decode(), now])
        touched.add(span.trace_id)
    return _read("traces", body, rejected, keep)


def _logs(body: dict, now: datetime, rows: list, rejected: list, touched: set) -> int:
    def keep(where: str, rec: Any, res: dict, scope: dict) -> None:
        if not isinstance(rec, dict):
            raise RecordError(f"'{where}' is not a log record object", where)
        tid = otlp_id(rec.get("traceId"), f"{where}.traceId", 16)
        sid = otlp_id(rec.get("spanId"), f"{where}.spanId", 8)
        if not tid:
            raise RecordError(f"log record '{where}' has no traceId: Libra keeps log records as events of the "
                              "span they were emitted in", f"{where}.traceId")
        blob = orjson.dumps({"log": rec, "resource": res, "scope": scope}, option=orjson.OPT_SORT_KEYS)
        rows.append([tid, hashlib.sha256(blob).hexdigest()[:32], sid, blob.decode(), now])
        touched.add(tid)
    return _read("logs", body, rejected, keep)


def as_event(rec: dict) -> dict:
    """A log record as a span event: its event name, its attributes and its body (GenAI content events)."""
    attrs = attributes(rec.get("attributes"))
    body = any_value(rec.get("body"))
    name = rec.get("eventName") or attrs.pop("event.name", None) or "log"
    out = dict(attrs)
    if isinstance(body, dict):
        out.update(body)
    elif body is not None:
        out["content"] = body
    return {"name": name, "attributes": out, "time": rec.get("timeUnixNano")}


def rebuild(con, trace_ids: list[str]):
    """Every touched trace as a run, from all its spans and logs in the store."""
    spans: dict[str, list[Span]] = {}
    for tid, payload in con.execute(
            "SELECT trace_id, payload FROM otlp_spans WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY trace_id, span_id", [trace_ids]).fetchall():
        d = orjson.loads(payload)
        spans.setdefault(tid, []).append(parse_otlp_span(d["span"], "span", d["resource"], d["scope"]))
    events: dict[tuple[str, str], list[dict]] = {}
    for tid, sid, payload in con.execute(
            "SELECT trace_id, span_id, payload FROM otlp_logs WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) "
            "AND span_id IS NOT NULL", [trace_ids]).fetchall():
        events.setdefault((tid, sid), []).append(as_event(orjson.loads(payload)["log"]))
    runs = []
    for tid, group in spans.items():
        for sp in group:
            extra = sorted(events.get((tid, sp.span_id), ()), key=lambda e: int(e.get("time") or 0))
            sp.events.extend({"name": e["name"], "attributes": e["attributes"]} for e in extra)
        runs.append(trace_to_run(group, FORMAT, SOURCE))
    return runs


def drain_once(store: Store, spool: Spool, max_files: int = 256) -> Drained:
    """Move up to `max_files` spooled requests into the store."""
    files = spool.pending()[:max_files]
    out = Drained()
    if not files:
        return out
    now = _now()
    span_rows: list = []
    log_rows: list = []
    rejected: list[Rejected] = []
    touched: set[str] = set()
    for path in files:
        kind, body = Spool.read(path)
        out.records += (_spans if kind == "traces" else _logs)(
            body, now, span_rows if kind == "traces" else log_rows, rejected, touched)
    out.requests, out.quarantined = len(files), len(rejected)
    out.stored = out.records - out.quarantined

    def write(con) -> list:
        merge(con, "otlp_spans", span_rows, keys=["trace_id", "span_id"], update=["payload", "received_at"],
              columns=["trace_id", "span_id", "payload", "received_at"])
        merge(con, "otlp_logs", log_rows, keys=["trace_id", "log_id"],
              columns=["trace_id", "log_id", "span_id", "payload", "received_at"])
        if rejected:
            quarantine(con, [(r, SOURCE, FORMAT) for r in rejected], now)
        return rebuild(con, sorted(touched))

    runs = store.write(write)
    if runs:
        ingest_runs(store, runs)
    record_files(store, [FileTally(f"{SOURCE} ({out.requests} requests)", FORMAT, None, out.records, out.stored,
                                   out.quarantined)])
    spool.done(files)
    out.traces = len(runs)
    return out


@dataclass
class Drainer:
    """Drains the spool in a thread; `failing` holds the last error while the store cannot be written."""

    store: Store
    spool: Spool
    interval: float = 0.2
    on_batch: Callable[[Drained], None] | None = None
    failing: str | None = None
    totals: Drained = field(default_factory=Drained)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Drainer:
        self._thread = threading.Thread(target=self._loop, name="libra-otlp-drain", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            try:
                got = drain_once(self.store, self.spool)
                self.failing = None
                backoff = self.interval
            except Exception as exc:  # noqa: BLE001 - the server stays up and pushes back while the store fails
                self.failing = f"{type(exc).__name__}: {exc}"
                log.error("cannot write spooled OTLP requests to the store (retrying): %s", self.failing)
                backoff = min(backoff * 2, 5.0)
                self._stop.wait(backoff)
                continue
            if got.requests:
                for k in ("requests", "records", "stored", "quarantined", "traces"):
                    setattr(self.totals, k, getattr(self.totals, k) + getattr(got, k))
                log.info("stored %d records (%d quarantined) from %d requests; %d traces rebuilt",
                         got.stored, got.quarantined, got.requests, got.traces)
                if self.on_batch:
                    self.on_batch(got)
                continue  # more may be waiting
            self._stop.wait(self.interval)

    def stop(self, drain: bool = True, timeout: float = 60.0) -> None:
        """Stop the thread; with `drain`, first write what is spooled (a clean shutdown leaves none)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if drain:
            deadline = time.monotonic() + timeout
            while self.spool.pending() and time.monotonic() < deadline:
                drain_once(self.store, self.spool)
