"""`libra lake maintain`: DuckLake's compaction, snapshot expiry and file cleanup on a real lake.

The lake here has its own data folder (the suite's other lakes share one, which
orphan cleanup would empty). A writer killed inside its transaction leaves
Parquet files the catalog never learns of; maintenance must delete those and
the files of expired snapshots, and leave every run, step and note as it was.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from libra.cli.main import app
from traces.ingest import BatchWriter
from traces.lake import data_bytes
from traces.model import IngestSummary, Run, Step, StepKind
from traces.ducklake import lake_parts
from traces.store import Store

pytestmark = pytest.mark.contract
ROOT = Path(__file__).resolve().parents[1]


def _small_commits(store: Store, batches: int, per_batch: int, tag: str = "b") -> None:
    for b in range(batches):  # one commit each: many small Parquet files, many snapshots
        w = BatchWriter(store, IngestSummary())
        for i in range(per_batch):
            w.add_run(Run(native_id=f"{tag}{b}-r{i}", format="libra", source="maintain-test", agent="a",
                          steps=(Step(kind=StepKind.USER, content=f"hello {b} {i}"),
                                 Step(kind=StepKind.AGENT, content="done")), globally_unique_id=True))
        w.flush()


def _kill_inside_a_transaction(location: str) -> None:
    """A writer that inserts a large batch (DuckLake writes its Parquet) and is killed before COMMIT."""
    code = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from traces.store import Store
        s = Store({location!r})
        with s.connection() as con:
            con.execute("BEGIN TRANSACTION")
            con.execute("INSERT INTO steps (run_id, idx, kind, content, is_error) "
                        "SELECT 'ghost', i, 'user_message', repeat('x', 200) || i, false FROM range(200000) t(i)")
            print("written", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert "written" in proc.stdout


def _files(location: str) -> set[str]:
    _, data = lake_parts(location)
    return {str(p) for p in Path(data).rglob("*.parquet")}


def _content(store: Store) -> tuple:
    return (store.counts(),
            store.execute("SELECT run_id, n_steps FROM runs ORDER BY run_id"),
            store.execute("SELECT run_id, idx, content FROM steps ORDER BY run_id, idx"))


def test_maintain_expires_compacts_and_deletes_what_a_killed_writer_left(pg, tmp_path):
    from libra import maintain_lake

    location = pg.new_lake(migrated=False)
    store = Store(location)
    _small_commits(store, batches=12, per_batch=40)
    before = _content(store)
    committed_files = _files(location)
    _kill_inside_a_transaction(location)
    orphans = _files(location) - committed_files
    assert orphans, "the killed writer left no Parquet file; nothing to test"
    assert store.scalar("SELECT count(*) FROM steps WHERE run_id = 'ghost'") == 0

    dry = maintain_lake(store, keep_snapshots=timedelta(0), orphans_older_than=timedelta(0), dry_run=True)
    assert dry.snapshots_expired > 0 and dry.orphans_deleted >= len(orphans)
    assert _files(location) == committed_files | orphans  # a dry run deletes nothing
    assert _content(store) == before

    m = maintain_lake(store, keep_snapshots=timedelta(0), orphans_older_than=timedelta(0))
    assert m.snapshots_expired >= dry.snapshots_expired  # and the flush's own snapshot
    assert m.files_merged > m.files_written > 0  # many small files became fewer
    assert m.orphans_deleted >= len(orphans)
    assert not (orphans & _files(location))
    assert m.bytes_after is not None and m.bytes_before is not None and m.bytes_after < m.bytes_before
    assert data_bytes(store) == m.bytes_after
    store.close()
    reopened = Store(location)
    assert _content(reopened) == before  # every run and step as it was, read through the compacted files
    assert reopened.scalar("SELECT count(*) FROM ducklake_snapshots('libra_lake')") <= 3
    # and the lake still takes writes
    _small_commits(reopened, batches=1, per_batch=3, tag="after")
    assert reopened.counts()["runs"] == before[0]["runs"] + 3


def test_recent_files_are_kept_so_a_writer_committing_now_loses_nothing(pg):
    from libra import maintain_lake

    location = pg.new_lake(migrated=False)
    store = Store(location)
    _small_commits(store, batches=3, per_batch=4)
    committed = _files(location)
    _kill_inside_a_transaction(location)
    young = _files(location) - committed
    m = maintain_lake(store, keep_snapshots=timedelta(days=7), orphans_older_than=timedelta(hours=1))
    assert m.snapshots_expired == 0 and m.orphans_deleted == 0
    assert young <= _files(location)  # too young to be taken for a dead writer's


def test_the_command_reports_and_refuses_a_file_store(pg, tmp_path):
    from typer.testing import CliRunner

    location = pg.new_lake(migrated=False)
    _small_commits(Store(location), batches=4, per_batch=2)
    runner = CliRunner()
    res = runner.invoke(app, ["lake", "maintain", "--db", location, "--keep-days", "0",
                              "--orphans-older-than", "0", "--json"])
    assert res.exit_code == 0, res.output
    got = json.loads(res.stdout)
    assert got["snapshots_expired"] > 0 and got["dry_run"] is False
    res = runner.invoke(app, ["lake", "maintain", "--db", location, "--dry-run"])
    assert res.exit_code == 0 and "would be expired" in res.output
    file_store = tmp_path / "file.duckdb"
    Store(file_store).counts()
    res = runner.invoke(app, ["lake", "maintain", "--db", str(file_store)])
    assert res.exit_code == 2 and "not a lake" in res.output


def test_a_scheduled_lake_job_runs_the_same_upkeep(pg):
    from libra.actions import make_actions
    from metrics.jobs.schedule import JobSpec

    location = pg.new_lake(migrated=False)
    store = Store(location)
    _small_commits(store, batches=4, per_batch=2)
    spec = JobSpec(name="upkeep", cron="0 3 * * *", action="lake", keep_snapshots_days=0)
    res = make_actions()["lake"](store, spec)
    assert res.detail["snapshots_expired"] > 0
    assert os.path.isdir(lake_parts(location)[1])
