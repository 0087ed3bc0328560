"""People's feedback on runs: add, edit and delete one's own, with every revision kept.

Writes go through the journal (see `traces.annotation.journal`), so saving never waits
on another process holding the store; `flush` applies them. Reads merge what
is still in the journal, so a saved note shows at once.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import duckdb

from traces.annotation.journal import Journal
from traces.model import Feedback
from traces.store import Store, StoreBusy, merge, only_in

if TYPE_CHECKING:
    import pandas as pd

MAX_TEXT = 20_000
# A process applies its journal at most this often on its own saves: flushing takes the store's
# file lock, and sixteen busy annotators flushing on every keystroke would starve batch jobs of it.
FLUSH_INTERVAL = 2.0
# What `flush` writes (the feedback tables and nothing else), so that what this process keeps in
# memory from other tables outlives its own saves (`Store.data_version(ignoring=...)`).
NOTES = "feedback"
_journals: dict[str, Journal] = {}
_last_flush: dict[str, float] = {}


class FeedbackError(ValueError):
    pass


def journal(store: Store) -> Journal:
    key = store.path if store.path != ":memory:" else f":memory:{id(store)}"
    if key not in _journals:
        # A lake is shared by many machines; each process journals on its own disk.
        where = store.path if not store.lake else str(
            store.local_dir / f"journal-{hashlib.sha256(store.path.encode()).hexdigest()[:12]}")
        _journals[key] = Journal(where)
    return _journals[key]


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat()


def _clean_steps(steps: Iterable[int] | None, n_steps: int | None) -> list[int]:
    out = sorted({int(s) for s in steps or ()})
    if any(s < 0 for s in out) or (n_steps is not None and any(s >= n_steps for s in out)):
        raise FeedbackError(f"steps must be between 0 and {(n_steps or 1) - 1}")
    return out


def past_end(steps: Iterable[int] | None, n_steps: int) -> list[int]:
    """The anchors of a note that its run, as stored now, does not have."""
    return [s for s in steps or () if s >= n_steps]


def _check_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise FeedbackError("write something before saving")
    if len(text) > MAX_TEXT:
        raise FeedbackError(f"feedback is limited to {MAX_TEXT:,} characters")
    return text


def _check_rating(rating: float | None) -> float | None:
    if rating is None:
        return None
    r = float(rating)
    if not 1 <= r <= 5:
        raise FeedbackError("a rating is between 1 and 5")
    return r


def add(store: Store, run_id: str, author: str, text: str, steps: Iterable[int] = (), rating: float | None = None,
        n_steps: int | None = None, metadata: dict[str, Any] | None = None, flush_now: bool = True) -> str:
    """Save a note on a run (optionally on some of its steps); returns its id. Durable on return."""
    if not isinstance(run_id, str) or not run_id:
        # checked before the journal: a note it cannot apply would hold back every note after it
        raise FeedbackError(f"a note needs the id of the run it is about, not {run_id!r}")
    fid = f"app-{uuid.uuid4().hex}"
    journal(store).append("create", {
        "feedback_id": fid, "run_id": run_id, "author": author, "text": _check_text(text),
        "steps": _clean_steps(steps, n_steps), "rating": _check_rating(rating), "at": _now(),
        "metadata": metadata or {}})
    if flush_now:
        maybe_flush(store)
    return fid


def maybe_flush(store: Store) -> int:
    """Flush unless this process flushed this store within FLUSH_INTERVAL seconds."""
    now = time.monotonic()
    if now - _last_flush.get(store.path, 0.0) < FLUSH_INTERVAL:
        return 0
    _last_flush[store.path] = now
    return flush(store, timeout=0.3)


def _replay(events: list[tuple[int, str, dict[str, Any]]], cur: dict[str, Any] | None,
            revision: int) -> tuple[dict[str, Any] | None, int]:
    for _, kind, p in events:
        if kind == "create":
            cur = {"author": p["author"], "text": p["text"], "rating": p["rating"], "steps": p["steps"],
                   "deleted": False, "run_id": p["run_id"]}
            revision = max(revision, 1)
        elif cur is not None:
            cur = {**cur, **{k: p[k] for k in ("text", "rating", "steps") if k in p}}
            cur["deleted"] = kind == "delete" or cur["deleted"]
            revision = max(revision, p["revision"])
    return cur, revision


def _current(store: Store, feedback_id: str) -> dict[str, Any] | None:
    # A note written in the app has all its events in the journal, which keeps applied events:
    # its state is read there alone, without waiting for the store file that an ingest or a
    # scoring job may hold (edits waited seconds for it under load). Not on a lake: each
    # machine keeps a journal of its own, and another may have edited the note since.
    own = [] if store.lake else journal(store).events_for(feedback_id)
    if own and own[0][1] == "create":
        cur, revision = _replay(own, None, 0)
        if cur is not None:
            cur["revision"] = revision
        return cur
    # Otherwise the journal first, then the store: a flush between the two reads moves events
    # from the first to the second, so each event is seen at least once. Read the other way
    # round, an event applied in between was in neither, and a note saved a moment ago "did not exist".
    pending = journal(store).pending()
    rows = store.execute("SELECT author, text, rating, steps, deleted_at IS NOT NULL, run_id FROM feedback "
                         "WHERE feedback_id = ?", [feedback_id])
    cur = {"author": rows[0][0], "text": rows[0][1], "rating": rows[0][2], "steps": list(rows[0][3] or []),
           "deleted": rows[0][4], "run_id": rows[0][5]} if rows else None
    revision = store.scalar("SELECT coalesce(max(revision), 0) FROM feedback_history WHERE feedback_id = ?",
                            [feedback_id]) or (1 if cur else 0)
    cur, revision = _replay([e for e in pending if e[2].get("feedback_id") == feedback_id], cur, revision)
    if cur is not None:
        cur["revision"] = revision
    return cur


def edit(store: Store, feedback_id: str, editor: str, text: str | None = None, rating: Any = ...,
         steps: Iterable[int] | None = None,
         n_steps: int | None = None, flush_now: bool = True) -> None:
    """A new revision of a note. With `n_steps` (the run's length now), the steps given must be
    within the run, and anchors the note has past its end (the run was ingested again,
    shorter) are kept: a form that cannot show them must not drop them."""
    cur = _current(store, feedback_id)
    if cur is None or cur["deleted"]:
        raise FeedbackError("that feedback does not exist (any more)")
    if cur["author"] != editor:
        raise FeedbackError("you can only edit your own feedback")
    if steps is not None:
        steps = _clean_steps(steps, n_steps)
        if n_steps is not None:
            steps = sorted({*steps, *past_end(cur["steps"], n_steps)})
    payload = {"feedback_id": feedback_id, "editor": editor, "revision": cur["revision"] + 1, "at": _now(),
               "text": _check_text(text) if text is not None else cur["text"],
               "rating": _check_rating(rating) if rating is not ... else cur["rating"],
               "steps": steps if steps is not None else cur["steps"]}
    journal(store).append("edit", payload)
    if flush_now:
        maybe_flush(store)


def delete(store: Store, feedback_id: str, editor: str, flush_now: bool = True) -> None:
    cur = _current(store, feedback_id)
    if cur is None or cur["deleted"]:
        raise FeedbackError("that feedback does not exist (any more)")
    if cur["author"] != editor:
        raise FeedbackError("you can only delete your own feedback")
    journal(store).append("delete", {"feedback_id": feedback_id, "editor": editor,
                                     "revision": cur["revision"] + 1, "at": _now()})
    if flush_now:
        maybe_flush(store)


_FEEDBACK_COLS = ["feedback_id", "run_id", "steps", "author", "text", "rating", "origin", "created_at", "metadata"]
_HISTORY_COLS = ["feedback_id", "revision", "action", "text", "rating", "steps", "edited_by", "edited_at"]


def flush(store: Store, timeout: float | None = None) -> int:
    """Apply journalled writes to the store; returns how many. Leaves them for later if the store is busy."""
    j = journal(store)
    events = j.pending()
    if not events:
        return 0
    target = store if timeout is None or store.path == ":memory:" else Store(store.path, lock_timeout=timeout)

    def apply(con: duckdb.DuckDBPyConnection) -> None:
        # A few statements per flush whatever its size (on a lake each one is a catalog round
        # trip): every note created first, in one upsert, then edits and deletes in order.
        created, history = [], []
        for _, kind, p in events:
            if kind == "create":
                at = datetime.fromisoformat(p["at"])
                created.append([p["feedback_id"], p["run_id"], p["steps"], p["author"], p["text"], p["rating"],
                                "app", at, json.dumps(p.get("metadata") or {})])
                history.append([p["feedback_id"], 1, "create", p["text"], p["rating"], p["steps"], p["author"], at])
        merge(con, "feedback", created, keys=["feedback_id"], columns=_FEEDBACK_COLS)
        for _, kind, p in events:
            at = datetime.fromisoformat(p["at"])
            if kind == "edit":
                con.execute("UPDATE feedback SET text = ?, rating = ?, steps = ?, edited_at = ? "
                            "WHERE feedback_id = ?", [p["text"], p["rating"], p["steps"], at, p["feedback_id"]])
                history.append([p["feedback_id"], p["revision"], "edit", p["text"], p["rating"], p["steps"],
                                p["editor"], at])
            elif kind == "delete":
                con.execute("UPDATE feedback SET deleted_at = ? WHERE feedback_id = ? AND deleted_at IS NULL",
                            [at, p["feedback_id"]])
                history.append([p["feedback_id"], p["revision"], "delete", None, None, None, p["editor"], at])
        # Applying the journal again after a crash must not add a revision twice.
        merge(con, "feedback_history", history, keys=["feedback_id", "revision"], columns=_HISTORY_COLS)

    try:
        target.write(apply, touches=NOTES)
    except StoreBusy:
        return 0
    j.mark_applied([s for s, _, _ in events])
    return len(events)


_SELECT = ("SELECT feedback_id, run_id, author, text, steps, rating, origin, created_at, edited_at, metadata "
           "FROM feedback WHERE deleted_at IS NULL")


def load(store: Store, run_ids: Sequence[str] | None = None, authors: Sequence[str] | None = None) -> list[Feedback]:
    """Live feedback, including what is saved but not yet applied to the store (the journal).

    The one reader of feedback: the app, induction and export all see the same
    notes, so a note saved a moment ago is never left out of `libra induce`.
    """
    pending = journal(store).pending()  # before the store, as in `_current`: nothing falls between
    (by_run, p1), (by_author, p2) = only_in("run_id", run_ids), only_in("author", authors)
    items = {r[0]: Feedback(feedback_id=r[0], run_id=r[1], author=r[2], text=r[3], steps=tuple(r[4] or ()),
                            rating=r[5], origin=r[6], created_at=r[7], edited_at=r[8],
                            metadata=json.loads(r[9]) if r[9] else None)
             for r in store.execute(_SELECT + by_run + by_author, p1 + p2)}
    runs, people = (set(run_ids) if run_ids is not None else None), (set(authors) if authors is not None else None)
    for _, kind, p in pending:
        fid = p.get("feedback_id")
        if kind == "create":
            if (runs is None or p["run_id"] in runs) and (people is None or p["author"] in people):
                items[fid] = Feedback(feedback_id=fid, run_id=p["run_id"], author=p["author"], text=p["text"],
                                      steps=tuple(p["steps"]), rating=p["rating"], origin="app",
                                      created_at=datetime.fromisoformat(p["at"]), metadata=p.get("metadata") or {},
                                      pending=True)
        elif kind == "edit" and fid in items:
            items[fid] = replace(items[fid], text=p["text"], rating=p["rating"], steps=tuple(p["steps"]),
                                 edited_at=datetime.fromisoformat(p["at"]), pending=True)
        elif kind == "delete":
            items.pop(fid, None)
    return sorted(items.values(), key=lambda f: (f.run_id or "", f.created_at or datetime.min, f.feedback_id or ""))


def ratings_version(store: Store) -> tuple[int, int, int]:
    """What changes when a stored rating does (added, changed, moved to another person or agent, deleted),
    and stays when a note without one is saved or edited: agreement figures read only ratings, and a
    save without one recomputed them all (45-75 ms on bench/app.py's store, the People & cost tab).
    The stored notes only, as those figures read them; a 64-bit hash per note, summed and xor-ed."""
    row = store.execute(
        "SELECT count(*), coalesce(bit_xor(h), 0), coalesce(sum(h::HUGEINT), 0) FROM ("
        "SELECT hash(feedback_id, run_id, author, rating, json_extract_string(metadata, '$.agent')) AS h "
        "FROM feedback WHERE rating IS NOT NULL AND deleted_at IS NULL)")[0]
    return int(row[0]), int(row[1]), int(row[2])


def for_run(store: Store, run_id: str) -> list[Feedback]:
    """Live feedback on one run, oldest first."""
    return load(store, [run_id])


def history(store: Store, feedback_id: str) -> pd.DataFrame:
    found = histories(store, [feedback_id]).get(feedback_id)
    if found is None:  # a frame of its own each time: a caller may add to it
        import pandas as pd  # here, not at the top: every ingest imports this module and needs no pandas

        found = pd.DataFrame(columns=["revision", "action", "text", "rating", "steps", "edited_by", "edited_at"])
    return found


def histories(store: Store, feedback_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each note's revisions, oldest first, in one query (a run's page lists many notes)."""
    if not feedback_ids:
        return {}
    df = store.df("SELECT feedback_id, revision, action, text, rating, steps, edited_by, edited_at "
                  "FROM feedback_history WHERE list_contains(?, feedback_id) ORDER BY feedback_id, revision",
                  [list(feedback_ids)])
    return {fid: part.drop(columns="feedback_id").reset_index(drop=True) for fid, part in df.groupby("feedback_id")}
