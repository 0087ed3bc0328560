"""Serialising writers on a lake: lock rows that concurrent transactions conflict on.

A DuckLake table takes no keys, so two lake transactions inserting the same
new key would both commit. Each such transaction rewrites its lock table's
row; DuckLake then sees the two as conflicting and the loser, run again,
sees what the winner wrote. A DuckDB file needs nothing: one process writes
it at a time.
"""

from __future__ import annotations

import duckdb

from traces.schema import LOCKS

LAKE_CATALOG = "libra_lake"  # the name a DuckLake store is attached under


def on_lake(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether this connection writes a DuckLake lake (whose tables take no keys or indexes)."""
    return con.execute("SELECT current_database()").fetchone()[0] == LAKE_CATALOG


def lock_statement(name: str) -> str:
    """The statement that takes lock `name` in the current transaction (on a lake)."""
    if name not in LOCKS:
        raise ValueError(f"no lock table for {name!r}; add it to traces.schema.LOCKS")
    return f"UPDATE lock_{name} SET n = n + 1"
