"""Read-side queries the app, the CLI and notebooks share. Parameterised SQL only."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from traces.store import Store


@dataclass(frozen=True)
class RunFilter:
    formats: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    text: str | None = None
    annotated: bool | None = None
    since: str | None = None
    until: str | None = None
    extra: dict = field(default_factory=dict)

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        for col, values in (("format", self.formats), ("agent", self.agents), ("outcome", self.outcomes)):
            if values:
                clauses.append(f"r.{col} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(list(values))
        if self.text:
            clauses.append("(r.task ILIKE ? OR r.run_id ILIKE ? OR r.native_id ILIKE ?)")
            like = f"%{self.text}%"
            params += [like, like, like]
        if self.annotated is not None:
            clauses.append(("" if self.annotated else "NOT ") +
                           "EXISTS (SELECT 1 FROM feedback f WHERE f.run_id = r.run_id AND f.deleted_at IS NULL)")
        if self.since:
            clauses.append("coalesce(r.started_at, r.ingested_at) >= CAST(? AS TIMESTAMP)")
            params.append(self.since)
        if self.until:
            clauses.append("coalesce(r.started_at, r.ingested_at) < CAST(? AS TIMESTAMP)")
            params.append(self.until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def facets(store: Store) -> dict[str, list[str]]:
    with store.connection() as con:
        return {
            col: [r[0] for r in con.execute(
                f"SELECT DISTINCT {col} FROM runs WHERE {col} IS NOT NULL ORDER BY 1").fetchall()]
            for col in ("format", "agent", "outcome")
        }


def count_runs(store: Store, flt: RunFilter) -> int:
    where, params = flt.where()
    return store.scalar(f"SELECT count(*) FROM runs r{where}", params)


def list_runs(store: Store, flt: RunFilter, limit: int = 50, offset: int = 0) -> pd.DataFrame:
    where, params = flt.where()
    return store.df(
        "SELECT r.run_id, r.agent, r.format, r.outcome, r.reward, r.n_steps, "
        "left(r.task, 160) AS task, r.started_at, "
        "(SELECT count(*) FROM feedback f WHERE f.run_id = r.run_id AND f.deleted_at IS NULL) AS feedback "
        f"FROM runs r{where} ORDER BY coalesce(r.started_at, r.ingested_at) DESC, r.run_id "
        "LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )


def get_run(store: Store, run_id: str) -> tuple[dict | None, pd.DataFrame, pd.DataFrame]:
    with store.connection() as con:
        cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        row = cur.fetchone()
        if row is None:
            return None, pd.DataFrame(), pd.DataFrame()
        run = dict(zip([d[0] for d in cur.description], row, strict=True))
        steps = con.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY idx", [run_id]).df()
        fb = con.execute("SELECT * FROM feedback WHERE run_id = ? AND deleted_at IS NULL "
                         "ORDER BY created_at", [run_id]).df()
    return run, steps, fb
