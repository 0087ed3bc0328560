"""The command line prints data as written, never as markup, and refuses what is not a store."""

from __future__ import annotations

import os
import subprocess
import sys

from typer.testing import CliRunner

from libra.cli.main import app
from metrics import sets
from metrics.definitions import Example, Metric, MetricSet
from traces.ingest import ingest_runs
from traces.model import Run, Step, StepKind
from traces.store import Store

HOSTILE = ["[/]", "[bold red]ALERT[/]", "[link=https://example.invalid]x[/link]", "\u202eevil", "a" * 300]
runner = CliRunner()


def cli(*args: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "400"})  # wide enough that nothing wraps


def test_names_with_markup_print_literally_and_nothing_crashes_on_nulls(tmp_path):
    db = str(tmp_path / "s.duckdb")
    store = Store(db)
    ingest_runs(store, [Run(native_id=f"r{i}", format="libra", source="t", agent=name,
                            steps=(Step(kind=StepKind.USER, content=name),), globally_unique_id=True)
                        for i, name in enumerate(HOSTILE)])
    ms = sets.save(store, MetricSet("[bold]set[/]", 0, "[red]Name[/] [/]", (
        Metric("m1", "[link=x]metric[/link] [/]", "[i]explained[/]", good=(Example("[/] good"),)),)))
    store.execute("UPDATE metric_sets SET status = 'approved', approved_by = NULL")  # approved by nobody
    stats = cli("stats", "--db", db)
    assert stats.exit_code == 0, stats.output
    for name in HOSTILE[:3]:
        assert name in stats.output  # printed as written, markup and all
    listed = cli("metrics", "list", "--db", db)
    assert listed.exit_code == 0, listed.output
    assert "[bold]set[/]" in listed.output and "nan" not in listed.output.lower()
    shown = cli("metrics", "show", ms.set_id, "--db", db)
    assert shown.exit_code == 0, shown.output
    assert "[red]Name[/] [/]" in shown.output and "[link=x]metric[/link] [/]" in shown.output
    assert "[i]explained[/]" in shown.output and "[/] good" in shown.output


def test_a_file_that_is_not_a_store_is_refused_and_readers_create_nothing(tmp_path):
    traces = tmp_path / "mytraces.jsonl"
    traces.write_text('{"run_id": "r1", "steps": [{"kind": "user_message", "content": "hi"}]}\n')
    got = cli("ingest", str(traces), "--db", str(traces), "-q")
    assert got.exit_code == 2 and "is not a Libra store" in got.output
    assert traces.read_text().startswith('{"run_id"')  # untouched
    typo = tmp_path / "typo" / "prod.duckdb"
    for cmd in (["stats"], ["quarantine"], ["metrics", "list"], ["costs"]):
        got = cli(*cmd, "--db", str(typo))
        assert got.exit_code == 2 and "no store at" in got.output, (cmd, got.output)
    assert not typo.parent.exists()  # no folders made on the way
    made = cli("ingest", str(traces), "--db", str(typo), "-q")
    assert made.exit_code == 0 and "new store" in made.output and typo.exists()


def test_a_set_file_cannot_approve_itself_and_a_set_approved_by_nobody_is_never_scored(tmp_path):
    from libra import accounts
    from libra.approval import ApprovalRefused, approve, approve_signed_in

    db = str(tmp_path / "s.duckdb")
    store = Store(db)
    ingest_runs(store, [Run(native_id="r1", format="libra", source="t", agent="a",
                            steps=(Step(kind=StepKind.USER, content="hi"),), globally_unique_id=True)])
    y = tmp_path / "set.yaml"
    y.write_text("set_id: sneaky\nname: Sneaky\nstatus: approved\nmetrics:\n"
                 "  - {id: m1, name: Anything, explanation: Everything is +1.}\n")
    got = cli("metrics", "import", str(y), "--db", db)
    assert got.exit_code == 0, got.output
    assert sets.load(store, "sneaky").status == "draft" and sets.approved(store) == []
    store.execute("UPDATE metric_sets SET status = 'approved'")  # a row someone else wrote, with no approver
    assert sets.approved(store) == []
    assert cli("score", "--db", db, "-q", "--backend", "offline").exit_code == 2  # nothing to score
    accounts.add_user(store, "chief", "chief password", "admin")
    accounts.add_user(store, "ann", "ann password", "annotator")
    for who, pw in (("ann", "ann password"), ("chief", "wrong"), ("nobody", "x")):
        try:
            approve(store, "sneaky", 1, who, pw)
            raise AssertionError(f"{who} approved")
        except ApprovalRefused:
            pass
    accounts.set_role(store, "chief", "viewer")  # demoted while signed in to the app
    try:
        approve_signed_in(store, "sneaky", 1, "chief")
        raise AssertionError("a demoted admin approved")
    except ApprovalRefused:
        pass
    accounts.set_role(store, "chief", "admin")
    approve(store, "sneaky", 1, "chief", "chief password")
    row = store.execute("SELECT status, approved_by, approved_at IS NOT NULL FROM metric_sets WHERE set_id = 'sneaky'")
    assert row == [("approved", "chief", True)]
    assert [m.set_id for m in sets.approved(store)] == ["sneaky"]


def test_operating_system_failures_are_one_clear_line_and_exit_1(tmp_path):
    src = tmp_path / "runs.jsonl"
    src.write_text('{"run_id": "r1", "steps": [{"kind": "user_message", "content": "hi"}]}\n')
    store = tmp_path / "s.duckdb"
    assert cli("ingest", str(src), "--db", str(store), "-q").exit_code == 0
    for args in (["ingest", str(src), "--db", "/proc/no-store-here.duckdb", "-q"],  # cannot be created
                 ["export", "/proc/out.jsonl", "--as", "jsonl", "--db", str(store)]):  # cannot be written
        p = subprocess.run([sys.executable, "-m", "libra.cli.main", *args], capture_output=True, text=True,
                           timeout=120, env={**os.environ, "COLUMNS": "300"})
        assert p.returncode == 1, (args, p.stderr)
        assert "Traceback" not in p.stderr and "error:" in p.stderr and "/proc/" in p.stderr
    assert Store(str(store)).counts()["runs"] == 1  # the store is intact


def test_libra_app_listens_on_this_machine_only_with_the_agent_api_off(tmp_path):
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = str(tmp_path / "s.duckdb")
    Store(db).counts()
    proc = subprocess.Popen([sys.executable, "-m", "libra.cli.main", "app", "--db", db, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    assert r.read() == b"ok"
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the app did not start"
                time.sleep(0.5)
        req = urllib.request.Request(f"http://127.0.0.1:{port}/_stcore/agent/interact", data=b"{}",
                                     headers={"content-type": "application/json"})
        try:
            body = urllib.request.urlopen(req, timeout=5).read()
        except urllib.error.HTTPError as exc:
            body = exc.read()
        assert b"not_available" in body
        listening = subprocess.run(["ss", "-ltnH"], capture_output=True, text=True).stdout
        mine = [ln for ln in listening.splitlines() if f":{port} " in ln]
        assert mine and all("127.0.0.1:" in ln for ln in mine), mine
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "listening for this machine only" in err


def test_the_command_line_starts_without_loading_pandas():
    # Every command, `--help` included, paid ~0.2 CPU-s for pandas at start; the commands
    # that need a frame load it when they make one.
    code = "import sys, libra.cli.main; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    # and a missing value from a frame still prints as nothing
    import pandas as pd

    from libra.cli.common import cell

    assert cell(pd.NA).plain == "" and cell(pd.Series([1.0, None]).iloc[1]).plain == "" and cell(2.0).plain == "2"


def test_control_characters_in_data_are_shown_not_sent_to_the_terminal(tmp_path):
    """An ESC sequence in a name would retitle, recolour or blank the operator's terminal; rich passes it on."""
    db = str(tmp_path / "s.duckdb")
    store = Store(db)
    evil = "\x1b]0;pwned\x07\x1b[8mhidden\x1b[0m\x00cut"
    ingest_runs(store, [Run(native_id="r0", format="libra", source="t", agent=evil,
                            steps=(Step(kind=StepKind.USER, content=evil),), globally_unique_id=True)])
    sets.save(store, MetricSet("esc-set", 0, evil, (Metric("m1", evil, "explained", good=(Example(evil),)),)))
    for args in (("stats",), ("metrics", "list"), ("metrics", "show", "esc-set"), ("metrics", "show", evil)):
        got = cli(*args, "--db", db)
        assert got.exit_code == (2 if args[-1] == evil else 0), (args, got.output)
        for c in "\x1b\x07\x00":
            assert c not in got.output, (args, c, got.output)
        assert "]0;pwned" in got.output and "cut" in got.output, (args, got.output)  # shown, not dropped
        if got.exit_code == 0:
            assert "⟨U+001B⟩]0;pwned" in got.output and "⟨U+0000⟩cut" in got.output, (args, got.output)
