"""One bad record never costs its neighbours: a folder of inputs as careless producers and
attackers write them, ingested in one command. For every file, records read = stored +
quarantined, and what is stored is what a clean copy of the same records stores."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from libra.demo import generate_runs
from traces.export import write_jsonl
from traces.store import Store

N = 12  # good records per file


def _lines(seed: int) -> list[str]:
    path = Path(f"/tmp/libra-hostile-{os.getpid()}-{seed}.jsonl")
    write_jsonl(generate_runs(N, seed=seed), path)
    lines = path.read_text(encoding="utf-8").splitlines()
    path.unlink()
    return lines


def _corpus(folder: Path) -> dict[str, tuple[int, int]]:
    """Writes the inputs; returns, per file name, (records in it, records a reader should store)."""
    folder.mkdir()
    expect: dict[str, tuple[int, int]] = {}

    def put(name: str, data: bytes, records: int, stored: int) -> None:
        (folder / name).write_bytes(data)
        expect[name] = (records, stored)

    good = _lines(1)
    put("bad_first_line.jsonl", ("{\"run_id\": \"cut-off\", \"steps\": [{\"kind\n" + "\n".join(_lines(2)) + "\n")
        .encode(), N + 1, N)
    put("bom.jsonl", b"\xef\xbb\xbf" + "\n".join(_lines(3)).encode() + b"\n", N, N)
    put("utf16.jsonl", "\n".join(_lines(4)).encode("utf-16"), N, N)  # with its mark
    put("utf16be_unmarked.jsonl", "\n".join(_lines(5)).encode("utf-16-be"), N, N)
    accented = [json.dumps({**json.loads(x), "task": "réserver un vol à Zürich — “vite”"}, ensure_ascii=False)
                for x in _lines(6)]
    put("windows1252.jsonl", "\n".join(accented).encode("cp1252"), N, N)
    put("classic_mac.jsonl", "\r".join(_lines(7)).encode() + b"\r", N, N)
    nan = [json.dumps({**json.loads(x), "reward": float("nan")}) if i == 0 else x for i, x in enumerate(_lines(8))]
    put("nan_first.jsonl", "\n".join(nan).encode(), N, N)
    whole = gzip.compress(("\n".join(_lines(9)) + "\n").encode())
    cut = whole[: len(whole) * 2 // 3]
    d = __import__("zlib").decompressobj(wbits=31)
    prefix = d.decompress(cut)
    complete = prefix.count(b"\n")
    # the complete lines, the cut last line, and the truncation itself
    put("cut_short.jsonl.gz", cut, complete + 1 + (1 if prefix.endswith(b"\n") is False else 0), complete)
    if prefix.endswith(b"\n"):
        expect["cut_short.jsonl.gz"] = (complete + 1, complete)
    chat = [json.dumps({"messages": [{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "yo"}]})
            for i in range(3)]
    mixed = chat[:1] + _lines(11) + chat[1:]  # a stray record of another format first: the majority decides
    put("two_formats.jsonl", ("\n".join(mixed) + "\n").encode(), N + 3, N)
    put("deep.json", b"[" * 10_000 + b"]" * 10_000, 1, 0)
    long_line = json.dumps({**json.loads(good[0]), "task": "x" * 300_000})
    put("long_line.jsonl", (long_line + "\n" + "\n".join(_lines(10)) + "\n").encode(), N + 1, N)
    bomb = folder / "bomb.eval"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("header.json", json.dumps({"eval": {"task": "t", "model": "m"}, "version": 2}))
        z.writestr("samples/1.json", b"0" * 5_000_000)  # 5 MB of zeros, a few KB compressed
    expect["bomb.eval"] = (1, 0)
    (folder / "dangling.jsonl").symlink_to(folder / "gone.jsonl")
    expect["dangling.jsonl"] = (1, 0)
    os.mkfifo(folder / "pipe.jsonl")  # nobody writes it: reading would block forever
    expect["pipe.jsonl"] = (1, 0)
    return expect


@pytest.mark.timeout(300)
def test_a_folder_of_hostile_inputs_loses_no_good_record(tmp_path):
    folder = tmp_path / "incoming"
    expect = _corpus(folder)
    db = str(tmp_path / "store.duckdb")
    env = {**os.environ, "LIBRA_MAX_RECORD_BYTES": "200000", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-m", "libra.cli.main", "ingest", "--workers", "1", "--db", db,
                           str(folder)], capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 1, done.stdout + done.stderr  # quarantined records: exit 1, no traceback
    assert "Traceback" not in done.stderr, done.stderr
    s = Store(db)
    tallies = {Path(src).name.removesuffix(".gz") if False else Path(src).name: (r, st, q, enc)
               for src, r, st, q, enc in s.execute(
                   "SELECT source, records, stored, quarantined, encoding FROM ingest_files")}
    names = {n.removesuffix(".gz"): n for n in expect}
    got = {names.get(k, k): v for k, v in tallies.items()}
    assert set(got) == set(expect), set(got) ^ set(expect)
    for name, (records, stored) in expect.items():
        r, st, q, enc = got[name]
        assert r == st + q, f"{name}: records read = stored + quarantined"
        assert (r, st) == (records, stored), f"{name}: read {r}, stored {st}; expected {records}, {stored}"
    encodings = {name: got[name][3] for name in expect}
    assert encodings["bom.jsonl"] == "utf-8-sig" and encodings["utf16.jsonl"] == "utf-16-le"
    assert encodings["utf16be_unmarked.jsonl"] == "utf-16-be" and encodings["windows1252.jsonl"] == "cp1252"
    assert encodings["classic_mac.jsonl"].endswith("CR line ends")
    assert "windows1252.jsonl" in done.stdout and "cp1252" in done.stdout, "the encoding assumed is said"
    # what the decoded files stored is what the clean records store
    assert s.scalar("SELECT count(*) FROM runs WHERE task = 'réserver un vol à Zürich — “vite”'") == N
    total = sum(stored for _, stored in expect.values())
    assert s.scalar("SELECT count(*) FROM runs") == total
    reasons = " | ".join(r for r, in s.execute("SELECT reason FROM quarantine"))
    for needle in ("named pipe", "link to a file that is not there", "gzip data ends early", "nested deeper",
                   "longer than 200,000 bytes", "passes 200,000 bytes"):
        assert needle in reasons, needle
    quarantined = s.scalar("SELECT coalesce(sum(records), 0) FROM quarantine")
    assert quarantined == sum(r - st for r, st in expect.values())
