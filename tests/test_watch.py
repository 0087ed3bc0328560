"""`libra ingest --watch`: OTLP files followed while written, rotated, truncated, and across restarts."""

from __future__ import annotations

import os

import orjson
from typer.testing import CliRunner

from libra.cli.main import app
from libra.demo import generate_runs
from traces.export import iter_runs, run_to_otlp
from traces.ingest import ingest
from traces.store import Store
from traces.ingest.watch import Watcher


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def lines_for(runs, start: int = 1) -> list[list[bytes]]:
    """Per run, its spans split over three lines, the way the Collector batches them."""
    out = []
    for i, r in enumerate(runs, start):
        req = run_to_otlp(r, f"{i:032x}")
        rs = req["resourceSpans"][0]
        spans = rs["scopeSpans"][0]["spans"]
        k = max(1, len(spans) // 3)
        chunks = [spans[:k], spans[k:2 * k], spans[2 * k:]]
        out.append([orjson.dumps({"resourceSpans": [{**rs, "scopeSpans": [{"scope": {"name": "x"}, "spans": c}]}]})
                    + b"\n" for c in chunks if c])
    return out


def conversation(store):
    keep = ("user_message", "agent_message", "tool_call", "tool_result")
    return {r.native_id: [(s.kind, s.content, s.tool_name) for s in r.steps if s.kind in keep]
            for r in iter_runs(store)}


def test_follows_growing_rotating_files_and_loses_nothing(tmp_path, location, mem_store):
    runs = list(generate_runs(9, seed=5))
    per_run = lines_for(runs)
    d = tmp_path / "otel"
    d.mkdir()
    store = Store(location)
    clock = Clock()
    w = Watcher(store, d, settle=5, clock=clock)
    live = d / "traces.json"
    # runs 1-3: first two lines each, the last line of run 3 cut half way
    with live.open("wb") as f:
        for ls in per_run[:3]:
            f.write(b"".join(ls[:2]))
        f.write(per_run[0][2] + per_run[1][2] + per_run[2][2][:40])
    assert w.poll().runs_added == 0 and w.open_traces == 3  # nothing settled yet
    clock.t = 3
    with live.open("ab") as f:
        f.write(per_run[2][2][40:])  # the writer finishes the line it was in
    w.poll()
    clock.t = 6
    got = w.poll()
    # runs 1 and 2 went quiet at t=0; run 3's last spans came at t=3 and it is still settling
    assert got.runs_added == 2 and w.open_traces == 1
    with live.open("ab") as f:
        f.write(per_run[3][0])  # run 4 starts in this file...
    live.rename(d / "traces-2026-11-25T10-00-00.json")  # ...and the Collector rotates
    with (d / "traces.json").open("wb") as f:
        f.write(b"".join(per_run[3][1:]))  # ...and it ends in the new file
        for ls in per_run[4:6]:
            f.write(b"".join(ls))
    w.poll()
    clock.t = 20
    assert w.poll().runs_added == 4  # runs 3 to 6
    # a crash: runs 7 and 8 are half written when the watcher dies
    with (d / "traces.json").open("ab") as f:
        f.write(per_run[6][0] + per_run[7][0])
    w.poll()
    del w
    w2 = Watcher(Store(location), d, settle=5, clock=clock)
    with (d / "traces.json").open("ab") as f:
        f.write(b"".join(per_run[6][1:] + per_run[7][1:] + per_run[8]))
    w2.poll()
    clock.t = 40
    w2.poll()
    summary = w2.close()
    s = Store(location)
    assert s.scalar("SELECT count(*) FROM runs") == 9
    assert summary.duplicates == 0
    # exactly what a one-shot ingest of the same spans gives
    ref = mem_store
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"".join(line for ls in per_run for line in ls))
    ingest(ref, [whole])
    assert conversation(s) == conversation(ref)


def test_truncated_file_starts_again_and_bad_lines_are_quarantined(tmp_path, store):
    runs = list(generate_runs(3, seed=6))
    per_run = lines_for(runs)
    d = tmp_path / "otel"
    d.mkdir()
    clock = Clock()
    w = Watcher(store, d, settle=1, clock=clock)
    f = d / "t.jsonl"
    f.write_bytes(b"".join(per_run[0]) + b"{not json\n")
    w.poll()
    clock.t = 5
    assert w.poll().runs_added == 1
    assert store.scalar("SELECT count(*) FROM quarantine") == 1
    with f.open("r+b") as fh:  # copy-truncate rotation
        fh.truncate(0)
    os.utime(f)
    f.write_bytes(b"".join(per_run[1] + per_run[2]))
    w.poll()
    clock.t = 10
    assert w.poll().runs_added == 2
    assert store.scalar("SELECT reason FROM quarantine").startswith("invalid JSON")


def test_cli_watch_once(tmp_path, location):
    d = tmp_path / "otel"
    d.mkdir()
    (d / "a.json").write_bytes(b"".join(line for ls in lines_for(list(generate_runs(4, seed=8))) for line in ls))
    (d / "notes.txt").write_text("ignored")
    db = location
    r = CliRunner().invoke(app, ["ingest", "--watch", str(d), "--once", "-q", "--db", db])
    assert r.exit_code == 0, r.output
    assert "4 runs added" in r.output
    r = CliRunner().invoke(app, ["ingest", "--watch", str(d), "--once", "-q", "--db", db])
    assert "0 runs added" in r.output
    assert CliRunner().invoke(app, ["ingest", "--watch", str(tmp_path / "nope"), "--db", db]).exit_code == 2


def test_gzip_and_zstd_files_are_read_and_a_compressed_backup_is_not_read_twice(tmp_path, mem_store):
    """A `.gz` dropped in the folder is read (it used to give nothing); rotation that compresses the full file
    into a backup carries on from where the followed file was, so its spans are not stored twice."""
    import gzip

    import zstandard

    runs = list(generate_runs(6, seed=8))
    per_run = lines_for(runs)
    d = tmp_path / "otel"
    d.mkdir()
    (d / "old.json.gz").write_bytes(gzip.compress(b"".join(per_run[0])) + gzip.compress(b"".join(per_run[1])))
    (d / "older.json.zst").write_bytes(zstandard.ZstdCompressor().compress(b"".join(per_run[2])))
    clock = Clock()
    w = Watcher(mem_store, d, settle=5, clock=clock)
    live = d / "traces.json"
    live.write_bytes(b"".join(per_run[3]))
    w.poll()
    clock.t = 10
    assert w.poll().runs_added == 4  # runs 1-3 from the compressed files, run 4 from the live one
    # lumberjack-style rotation: the full file is renamed, compressed into a backup, and removed
    backup = d / "traces-2026-12-01T10-00-00.json"
    live.rename(backup)
    w.poll()
    (d / "traces-2026-12-01T10-00-00.json.gz").write_bytes(gzip.compress(backup.read_bytes()))
    backup.unlink()
    live.write_bytes(b"".join(per_run[4]) + b"".join(per_run[5]))
    w.poll()
    clock.t = 20
    w.poll()
    summary = w.close()
    assert mem_store.scalar("SELECT count(*) FROM runs") == 6 and summary.duplicates == 0
    ref_store = Store(":memory:")
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"".join(line for ls in per_run for line in ls))
    ingest(ref_store, [whole])
    assert conversation(mem_store) == conversation(ref_store)
