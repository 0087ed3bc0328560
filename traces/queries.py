"""Read-side queries the app, the CLI and notebooks share. Parameterised SQL only."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pandas as pd

from traces.store import Store


@dataclass(frozen=True)
class RunFilter:
    formats: tuple[str, ...] = ()
    agents: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    text: str | None = None
    annotated: bool | None = None
    since: str | None = None
    until: str | None = None
    # (metric set id, version, metric id) and the verdicts wanted: +1, -1 and/or 0
    metric: tuple[str, int, str] | None = None
    metric_values: tuple[int, ...] = ()
    fts: bool = False  # search with the BM25 index (when built) instead of substring matching
    extra: dict = field(default_factory=dict)

    def where(self) -> tuple[str, list]:
        clauses, params = [], []
        for col, values in (("format", self.formats), ("agent", self.agents), ("outcome", self.outcomes),
                            ("model", self.models)):
            if values:
                clauses.append(f"r.{col} IN (SELECT unnest(?::VARCHAR[]))")
                params.append(list(values))
        if self.text and self.fts:
            # BM25 over the runs the index holds; runs written since it was built (or replaced) are
            # matched by any of the query's words, so search is never stale while indexing waits
            words = list(dict.fromkeys(re.findall(r"\w+", self.text.lower())))[:16] or [self.text]
            any_word = " OR ".join(["s.content ILIKE ? OR s.tool_name ILIKE ?"] * len(words))
            clauses.append(
                "(r.run_id IN (SELECT run_id FROM (SELECT run_id, fts_main_run_text.match_bm25(run_id, ?) AS score "
                "FROM run_text) WHERE score IS NOT NULL) OR (NOT EXISTS (SELECT 1 FROM run_text t WHERE "
                f"t.run_id = r.run_id) AND EXISTS (SELECT 1 FROM steps s WHERE s.run_id = r.run_id AND ({any_word}))))")
            params += [self.text, *[f"%{w}%" for w in words for _ in (0, 1)]]
        elif self.text:
            clauses.append("(r.task ILIKE ? OR r.run_id ILIKE ? OR r.native_id ILIKE ? OR r.run_id IN "
                           "(SELECT run_id FROM steps WHERE content ILIKE ? OR tool_name ILIKE ?))")
            like = f"%{self.text}%"
            params += [like] * 5
        if self.metric and self.metric_values:
            clauses.append("EXISTS (SELECT 1 FROM scores s WHERE s.run_id = r.run_id AND s.metric_set_id = ? "
                           "AND s.metric_set_version = ? AND s.metric_id = ? AND s.value IN "
                           "(SELECT unnest(?::INTEGER[])))")
            params += [*self.metric, list(self.metric_values)]
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
            for col in ("format", "agent", "outcome", "model")
        }


def search_index_ready(con) -> bool:
    """Whether the BM25 index exists and the extension loads in this connection."""
    from traces import search

    exists = con.execute("SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'fts_main_run_text'"
                         ).fetchone()[0]
    return bool(exists) and search.load_fts(con)


def unindexed(store: Store) -> int | None:
    """Runs full-text search matches by their words because the index does not hold them yet;
    None when there is no index at all (every run is matched by substring)."""
    from traces import search

    with store.connection() as con:
        return search.unindexed_runs(con) if search_index_ready(con) else None


def _query(store: Store, flt: RunFilter, sql_of, tail: list) -> pd.DataFrame:
    with store.connection() as con:
        if flt.text and flt.fts and not search_index_ready(con):
            flt = replace(flt, fts=False)
        where, params = flt.where()
        return con.execute(sql_of(where), [*params, *tail]).df()


def count_runs(store: Store, flt: RunFilter) -> int:
    return int(_query(store, flt, lambda w: f"SELECT count(*) AS n FROM runs r{w}", []).iloc[0, 0])


# What the runs table can be sorted by: an expression over `list_runs`' columns, and, for those the
# runs table itself holds, the same order over `runs`, so a page is cut before anything is joined.
RUN_SORTS = {
    "started": ("started_at", "coalesce(r.started_at, r.ingested_at)"), "duration": ("duration_s", None),
    "tokens": ("tokens", None), "cost": ("cost_usd", None), "steps": ("steps", "r.n_steps"),
    "feedback": ("feedback", None), "failed verdicts": ("failed", None), "reward": ("reward", "r.reward"),
    "agent": ("lower(agent)", "lower(r.agent)"), "outcome": ("outcome", "r.outcome"),
}


def picks_by_notes(flt: RunFilter, sort: str | None = None) -> bool:
    """Whether which runs a filter matches (and in what order, by `sort`) depends on people's notes."""
    return flt.annotated is not None or sort == "feedback"


def list_runs(store: Store, flt: RunFilter, limit: int = 50, offset: int = 0, *, sort: str = "started",
              descending: bool = True, prices: list[tuple[str, float, float]] | None = None,
              verdict_of: tuple[str, int, str] | None = None, notes: bool = True) -> pd.DataFrame:
    """One page of runs with what a reader compares them by, sorted and paged in the database.

    `prices` is (model, USD per million input tokens, per million output) for the models a price
    is known for; a run of any other model has no cost rather than a guessed one. `verdict_of`
    (set id, version, metric id) adds that metric's verdict (the worst of its subjects) as `verdict`.
    `notes=False` leaves out the columns counted from people's notes (`notes_on` gives them), so
    that the page does not read them: the app keeps such a page across the notes it saves.
    """
    if sort not in RUN_SORTS:
        raise ValueError(f"sort by one of {', '.join(RUN_SORTS)}, not {sort!r}")
    if not notes and picks_by_notes(flt, sort):
        raise ValueError("a page sorted or filtered by notes reads them: notes=True")
    way = "DESC" if descending else "ASC"
    outer, inner = RUN_SORTS[sort]
    order = f"{outer} {way} NULLS LAST"
    if inner and sort == "started":
        order = f"coalesce(r.started_at, r.ingested_at) {way} NULLS LAST"
    table = prices or []
    with store.connection() as con:
        if flt.text and flt.fts and not search_index_ready(con):
            flt = replace(flt, fts=False)
        where, params = flt.where()
        con.execute("BEGIN TRANSACTION")  # the page's runs and their sums from one snapshot
        try:
            if inner:
                # Sorted by a column of runs: the page is cut there first, and its runs' ids go to
                # the sums as a list. As a subquery (`IN (SELECT run_id FROM r)`) DuckDB joined
                # every step and verdict of the store to it; a list lets each scan skip the row
                # groups without those runs (70 -> 20 ms a page on 100k runs and 2M steps).
                ids = [r for r, in con.execute(
                    f"SELECT r.run_id FROM runs r{where} ORDER BY {inner} {way} NULLS LAST, "  # noqa: S608
                    "r.run_id LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()]
                source, source_params = "SELECT * FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))", [ids]
                among, among_params, page = "IN (SELECT unnest(?::VARCHAR[]))", [ids], []
            else:
                # sorted by a sum (tokens, cost, ...): every matching run is summed and the database sorts them
                source, source_params = f"SELECT r.* FROM runs r{where}", params  # noqa: S608
                among, among_params, page = "IN (SELECT run_id FROM r)", [], [limit, offset]
            return con.execute(
                f"WITH r AS ({source}), "  # noqa: S608 - fixed clauses, values are parameters
                "st AS (SELECT run_id, sum(input_tokens) AS tin, sum(output_tokens) AS tout, min(started_at) AS t0, "
                f"max(ended_at) AS t1, count(*) FILTER (WHERE is_error) AS errors FROM steps WHERE run_id {among} "
                "GROUP BY run_id), "
                + (f"fb AS ({_NOTES} AND run_id {among} GROUP BY run_id), " if notes else "") +
                "sc AS (SELECT run_id, count(*) FILTER (WHERE value = 1) AS pos, "
                f"count(*) FILTER (WHERE value = -1) AS neg FROM scores WHERE run_id {among} GROUP BY run_id), "
                "pr AS (SELECT unnest(?::VARCHAR[]) AS model, unnest(?::DOUBLE[]) AS pin, "
                "unnest(?::DOUBLE[]) AS pout) "
                "SELECT r.run_id, coalesce(r.started_at, st.t0) AS started_at, "
                "epoch(coalesce(r.ended_at, st.t1) - coalesce(r.started_at, st.t0)) AS duration_s, "
                "r.agent, coalesce(json_extract_string(r.metadata, '$.agent_version'), "
                "json_extract_string(r.metadata, '$.release')) AS version, r.model, r.outcome, r.reward, "
                "r.n_steps AS steps, coalesce(st.errors, 0) AS errors, "
                "CASE WHEN st.tin IS NULL AND st.tout IS NULL THEN NULL "
                "ELSE coalesce(st.tin, 0) + coalesce(st.tout, 0) END AS tokens, "
                "(coalesce(st.tin, 0) * pr.pin + coalesce(st.tout, 0) * pr.pout) / 1e6 "
                "* CASE WHEN st.tin IS NULL AND st.tout IS NULL THEN NULL ELSE 1 END AS cost_usd, "
                + ("coalesce(fb.n, 0) AS feedback, coalesce(fb.people, 0) AS annotators, " if notes else "") +
                "coalesce(sc.pos, 0) AS passed, coalesce(sc.neg, 0) AS failed, "
                + ("(SELECT min(v.value) FROM scores v WHERE v.run_id = r.run_id AND v.metric_set_id = ? "
                   "AND v.metric_set_version = ? AND v.metric_id = ?) AS verdict, " if verdict_of else "")
                + "left(r.task, 160) AS task, r.format "
                "FROM r LEFT JOIN st USING (run_id) " + ("LEFT JOIN fb USING (run_id) " if notes else "")
                + "LEFT JOIN sc USING (run_id) "
                f"LEFT JOIN pr ON pr.model = r.model ORDER BY {order}, r.run_id"
                + (" LIMIT ? OFFSET ?" if page else ""),
                [*source_params, *among_params * (3 if notes else 2), [m for m, _, _ in table], [p for _, p, _ in table],
                 [p for _, _, p in table], *(verdict_of or ()), *page]).df()
        finally:
            con.execute("COMMIT")


_NOTES = ("SELECT run_id, count(*) AS n, count(DISTINCT author) AS people FROM feedback "
          "WHERE deleted_at IS NULL")


def notes_on(store: Store, run_ids: Sequence[str]) -> pd.DataFrame:
    """How many notes each run has and from how many people (`list_runs`' two columns), 0 for none."""
    return store.df(
        f"WITH fb AS ({_NOTES} AND run_id IN (SELECT unnest(?::VARCHAR[])) GROUP BY run_id) "  # noqa: S608
        "SELECT i.run_id, coalesce(fb.n, 0) AS feedback, coalesce(fb.people, 0) AS annotators "
        "FROM (SELECT unnest(?::VARCHAR[]) AS run_id) i LEFT JOIN fb USING (run_id)",
        [list(run_ids), list(run_ids)])


def same_task_runs(store: Store, run_id: str, limit: int = 200) -> list[str]:
    """Other runs given the same task as `run_id` (newest first): what a side-by-side compares it with."""
    return [r for r, in store.execute(
        "SELECT b.run_id FROM runs a JOIN runs b ON b.task = a.task AND b.run_id <> a.run_id "
        "WHERE a.run_id = ? ORDER BY coalesce(b.started_at, b.ingested_at) DESC, b.run_id LIMIT ?",
        [run_id, limit])]


def get_run(store: Store, run_id: str) -> tuple[dict | None, pd.DataFrame]:
    """A run's row and its steps in order; (None, empty) for an unknown id. Its notes: `feedback.for_run`."""
    with store.connection() as con:
        cur = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id])
        row = cur.fetchone()
        if row is None:
            return None, pd.DataFrame()
        run = dict(zip([d[0] for d in cur.description], row, strict=True))
        steps = con.execute("SELECT * FROM steps WHERE run_id = ? ORDER BY idx", [run_id]).df()
    return run, steps


def runs_by_format_and_agent(store: Store, limit: int = 50) -> pd.DataFrame:
    """Runs, steps and mean reward per format and agent, largest first."""
    return store.df("SELECT format, coalesce(agent, '?') AS agent, count(*) AS runs, "
                    "sum(n_steps) AS steps, round(avg(reward), 3) AS mean_reward "
                    "FROM runs GROUP BY ALL ORDER BY runs DESC LIMIT ?", [limit])


def quarantined(store: Store, limit: int = 50, source: str | None = None) -> list[tuple]:
    """(id, source, line, field, reason, raw) of rejected records, oldest first."""
    where, params = ("WHERE source LIKE ?", [f"%{source}%"]) if source else ("", [])
    return store.execute(f"SELECT id, source, line, field, reason, raw FROM quarantine {where} "  # noqa: S608
                         "ORDER BY id LIMIT ?", [*params, limit])
