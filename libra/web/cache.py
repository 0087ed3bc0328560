"""Answers of the app's read-only library calls, kept until the store changes.

A page reruns on every click, and on a 100k-run store the same few queries (the
runs list's facets and page, a dashboard's aggregates over a million verdicts)
were most of the time Libra added to Streamlit's own (`bench/app.py`). An answer
is kept under the store's data version (`Store.data_version`: it changes when any
process commits) and its feedback journal's, so a save, an ingest or a scoring job is
seen on the next rerun. Answers that read no notes (`cached_past_notes`) are kept
across the notes this app saves, which otherwise threw away every answer of every
page after each save.
Stores whose changes cannot be seen that cheaply (a lake, memory) are not cached.

Not `st.cache_data`: it keys by the arguments' contents but knows nothing of the
store's version, and it pickles every answer; here each caller gets its own copy.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import streamlit as st

from traces.annotation import feedback
from traces.store import Store

T = TypeVar("T")
MAX_ANSWERS = 256  # across every session of the app process; a page keeps a few dozen


class _Unkeyable(Exception):
    pass


def _frozen(x: Any) -> Any:
    """A hashable stand-in for an argument (lists, dicts, dataclasses with dicts inside)."""
    if isinstance(x, (str, int, float, bool, type(None))):
        return x
    if isinstance(x, (list, tuple)):
        return tuple(_frozen(v) for v in x)
    if isinstance(x, dict):
        return tuple(sorted((repr(k), _frozen(v)) for k, v in x.items()))
    if isinstance(x, (set, frozenset)):
        return frozenset(_frozen(v) for v in x)
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return (type(x).__qualname__, tuple(_frozen(getattr(x, f.name)) for f in dataclasses.fields(x)))
    try:
        hash(x)
    except TypeError:
        raise _Unkeyable from None
    return x


MISSING = object()  # what `Kept.get` answers for a key it does not hold


class Kept:
    """At most `size` values by key, the least recently used let go first; shared by the app's threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.lock = threading.Lock()
        self.table: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, key: Hashable) -> Any:
        with self.lock:
            hit = self.table.get(key, MISSING)
            if hit is not MISSING:
                self.table.move_to_end(key)
            return hit

    def put(self, key: Hashable, value: Any) -> None:
        with self.lock:
            self.table[key] = value
            while len(self.table) > self.size:
                self.table.popitem(last=False)



@st.cache_resource
def _answers() -> Kept:
    return Kept(MAX_ANSWERS)


def cached(s: Store, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """fn(s, *args, **kwargs), from memory when the store has not changed since it was last asked."""
    stored = s.data_version()
    # notes saved a moment ago are in the journal before the store
    return _kept(s, None if stored is None else (stored, feedback.journal(s).version()), fn, args, kwargs)


def cached_past_notes(s: Store, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`cached`, for an fn that reads no notes: its answer outlives the notes this app saves.

    A saved note is applied by this process's own commit of the feedback tables only, so the
    store's version for answers ignoring those commits stays put (`traces.changes`); any other
    commit, from any process, moves it. `tests/test_web_cache.py` runs every fn given here
    against a store without feedback tables, so one that starts reading notes fails there.
    """
    return _kept(s, s.data_version(ignoring=(feedback.NOTES,)), fn, args, kwargs)


def cached_on_ratings(s: Store, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`cached`, for an fn whose only reading of notes is their stored ratings (`feedback.ratings_version`,
    whose columns it may read): its answer outlives saves of notes that rate nothing.

    The ratings' version is itself kept by the store's and the journal's versions, so a rerun with
    nothing changed neither opens the file nor asks it.
    """
    stored = s.data_version(ignoring=(feedback.NOTES,))
    if stored is None:
        return fn(s, *args, **kwargs)
    ratings = _kept(s, (stored, feedback.journal(s).version()), feedback.ratings_version, (), {})
    return _kept(s, (stored, ratings), fn, args, kwargs)


def _kept(s: Store, version: Any, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]) -> T:
    try:
        key = (s.path, version, fn, _frozen(args), _frozen(kwargs))
    except _Unkeyable:
        version = None
    if version is None:
        return fn(s, *args, **kwargs)
    answers = _answers()
    hit = answers.get(key)
    if hit is MISSING:
        hit = fn(s, *args, **kwargs)
        answers.put(key, hit)
    # pages add columns to the frames they are given: each gets its own
    out: T = copy.deepcopy(hit)
    return out
