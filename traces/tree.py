"""A run as a tree of spans: the steps and the wrapper spans (agents, chains) they hang from.

One row per node in reading order, each with its depth, what it is, when it started relative to the
run, how long it took, its tokens and model, and whether it failed. The run view draws the rows as
an indented outline and a waterfall chart; runs from formats without spans are a flat list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from traces.display import json_object

COLUMNS = ("node", "parent", "idx", "depth", "kind", "label", "start_s", "duration_s", "tokens", "model", "error")


def _time(value: Any) -> datetime | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NaT:
        return None
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).replace(tzinfo=None)
        except ValueError:
            return None
    ts = pd.Timestamp(value)
    return None if pd.isna(ts) else ts.to_pydatetime().replace(tzinfo=None)


def step_model(metadata: Any) -> str | None:
    """The model a step's call went to, as its producer named it (response model first)."""
    call = json_object(metadata).get("llm_call") or {}
    model = call.get("response_model") or call.get("request_model") or call.get("model") \
        or json_object(metadata).get("model")
    return str(model) if model else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def span_tree(steps: pd.DataFrame, run_metadata: Any = None) -> pd.DataFrame:
    """The run's nodes in reading order (see the module docstring); `steps` as `get_run` reads them."""
    outline = json_object(run_metadata).get("span_outline") or []
    wrappers = {str(w[0]): w for w in outline if isinstance(w, list) and len(w) >= 6 and w[0]}
    parent: dict[str, str | None] = {sid: (str(w[1]) if w[1] else None) for sid, w in wrappers.items()}
    for r in steps.itertuples():
        if _text(r.span_id) and r.span_id not in parent:
            parent[r.span_id] = _text(r.parent_id)
    depth_of: dict[str, int] = {}

    def depth(sid: str | None) -> int:
        seen: list[str] = []
        while sid is not None and sid in parent and sid not in depth_of and sid not in seen:
            seen.append(sid)
            sid = parent[sid]
        base = depth_of.get(sid, -1) if sid is not None else -1
        for s in reversed(seen):  # a cycle someone wrote into the ids ends the climb; never loops
            base += 1
            depth_of[s] = base
        return depth_of.get(seen[0], 0) if seen else depth_of.get(sid or "", 0)

    starts = [t for t in (_time(v) for v in steps["started_at"]) if t] + \
        [t for t in (_time(w[3]) for w in wrappers.values()) if t]
    t0 = min(starts) if starts else None

    def offset(t: datetime | None) -> float | None:
        return (t - t0).total_seconds() if t and t0 else None

    def span_of(t: datetime | None, u: datetime | None) -> float | None:
        return max((u - t).total_seconds(), 0.0) if t and u else None

    rows: list[dict] = []
    shown: set[str] = set()
    node_of: dict[str, str] = {}  # span id -> the first row that stands for it (its wrapper or its step)

    def ancestors(sid: str | None) -> list[str]:
        chain: list[str] = []
        while sid is not None and sid in wrappers and sid not in shown and sid not in chain:
            chain.append(sid)
            sid = parent.get(sid)
        return chain[::-1]

    for r in steps.itertuples():
        sid = _text(r.span_id)
        for w in ancestors(parent.get(sid) if sid else None):
            shown.add(w)
            ws, we = _time(wrappers[w][3]), _time(wrappers[w][4])
            node_of.setdefault(w, f"span:{w}")
            rows.append({"node": f"span:{w}", "parent": node_of.get(parent.get(w) or ""), "idx": None,
                         "depth": depth(w), "kind": "span",
                         "label": str(wrappers[w][2] or "span"), "start_s": offset(ws),
                         "duration_s": span_of(ws, we), "tokens": None, "model": None,
                         "error": bool(wrappers[w][5])})
        ts, te = _time(r.started_at), _time(r.ended_at)
        tin, tout = _int(r.input_tokens), _int(r.output_tokens)
        up = node_of.get(parent.get(sid) or "") if sid else None
        if sid:
            node_of.setdefault(sid, f"step:{int(r.idx)}")
        rows.append({"node": f"step:{int(r.idx)}", "parent": up, "idx": int(r.idx), "depth": depth(sid) if sid else 0,
                     "kind": str(r.kind), "label": _text(r.tool_name) or _text(r.actor) or str(r.kind),
                     "start_s": offset(ts), "duration_s": span_of(ts, te),
                     "tokens": None if tin is None and tout is None else (tin or 0) + (tout or 0),
                     "model": step_model(r.metadata), "error": bool(r.is_error)})
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    for c in ("start_s", "duration_s", "tokens"):  # missing times and tokens are NaN, never None
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    return df
