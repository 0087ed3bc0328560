"""How a run reads: its facts in a row, and its steps nested as the trace nests them, with timings.

Shared by the Run page (with an anchor button per step for the note being written) and the Compare
page (two runs side by side, read-only). Trace content is only ever shown as text.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from libra.web.widgets import md, show_text, step_label


def _took(seconds: object) -> str:
    if not isinstance(seconds, float | int) or pd.isna(seconds):
        return ""
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.1f} s"


def _stats(node: Any) -> str:
    """When a node started, how long it took, its tokens and model: what a reader scans for a slow step."""
    parts = []
    if isinstance(node.start_s, float) and not pd.isna(node.start_s):
        parts.append(f"+{node.start_s:.1f} s")
    if _took(node.duration_s):
        parts.append(f"took {_took(node.duration_s)}")
    if isinstance(node.tokens, float | int) and not pd.isna(node.tokens):
        parts.append(f"{int(node.tokens):,} tokens")
    if isinstance(node.model, str) and node.model:
        parts.append(node.model)
    return " · ".join(parts)


def _indented(depth: int) -> Any:
    """Where a node at `depth` of the trace's tree is drawn: its parent's width, moved right."""
    if depth <= 0:
        return st.container()
    d = min(depth, 8) * 0.035
    return st.columns([d, 1 - d])[1]


def _anchor(draft_key: str, idx: int) -> None:
    """Add the step to (or take it from) the note being written: the timeline's button and the `a` key."""
    chosen = list(st.session_state.get(f"{draft_key}-steps", []))
    st.session_state[f"{draft_key}-steps"] = sorted(set(chosen) ^ {idx})


def _toggle(folded: set[str], node: str) -> None:
    folded ^= {node}


def _under(node: str, up: dict[str, Any], folded: set[str]) -> bool:
    """Whether a folded span holds this node (a climb bounded by the tree's size: ids can loop)."""
    seen = 0
    at = up.get(node)
    while isinstance(at, str) and seen < len(up):
        if at in folded:
            return True
        at, seen = up.get(at), seen + 1
    return False


def _descendants(up: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in up:
        at, seen = up.get(node), 0
        while isinstance(at, str) and seen < len(up):
            counts[at] = counts.get(at, 0) + 1
            at, seen = up.get(at), seen + 1
    return counts


def timeline(steps: pd.DataFrame, tree: pd.DataFrame, draft_key: str | None, prefix: str = "step") -> None:
    """The steps in order, nested under the spans that hold them, each with its timing and tokens."""
    by_idx = {int(r.idx): r for r in steps.itertuples()}
    anchored = set(st.session_state.get(f"{draft_key}-steps", [])) if draft_key else set()
    folded: set[str] = st.session_state.setdefault(f"{prefix}-folded", set())
    up = dict(zip(tree["node"], tree["parent"], strict=True))
    inside = _descendants(up)
    for node in tree.itertuples():
        if _under(node.node, up, folded):
            continue
        if node.kind == "span":  # an agent or chain around the steps below it
            with _indented(int(node.depth)):
                text, fold = st.columns([5, 1])
                shut = node.node in folded
                text.caption(f"{'▸' if shut else '▾'} {md(node.label)}" + (f" · {_stats(node)}" if _stats(node) else "")
                             + (" · failed" if node.error else "")
                             + (f" · {inside.get(node.node, 0)} nodes folded" if shut else ""))
                fold.button("unfold" if shut else "fold", key=f"{prefix}-fold-{node.node}", on_click=_toggle,
                            args=(folded, node.node), help="Hide or show what this span holds")
            continue
        s_ = by_idx[int(node.idx)]
        label, stats = step_label(s_), _stats(node)
        with _indented(int(node.depth)), st.container(key=f"{prefix}-{int(node.idx)}"):
            head = st.columns([5, 1]) if draft_key else [st.container()]
            with head[0]:
                mark = " ◀ anchored to your note" if int(s_.idx) in anchored else ""
                if s_.is_error:
                    st.error(f"{md(label)} · error{mark}" + (f"  \n{md(stats)}" if stats else ""), icon="⚠️")
                else:
                    st.markdown(f"**{md(label)}**{mark}" if s_.kind in ("user_message", "system")
                                else f"{md(label)}{mark}")
                    if stats:
                        st.caption(md(stats))
            if draft_key:
                head[1].button("unanchor" if int(s_.idx) in anchored else "anchor", key=f"anchor-{int(s_.idx)}",
                               on_click=_anchor, args=(draft_key, int(s_.idx)),
                               help="Anchor your note to this step (key a: the step at the top of the view)")
            if isinstance(s_.tool_args, str) and s_.tool_args not in ("null", ""):
                st.code(s_.tool_args, language="json", wrap_lines=True)
            if s_.content:
                show_text(s_.content)


KEYS_HELP = ("Keys: j / k next / previous step · a anchor your note to the step at the top · "
             "Ctrl+Enter save the note · n done, next run · s skip (in a queue)")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def header(run: dict[str, Any], steps: pd.DataFrame, tree: pd.DataFrame, per_row: int = 8) -> None:
    """Who ran, how it ended, how long and how much: names as text, whole (a metric box cuts them)."""
    tokens = tree["tokens"].sum(min_count=1)
    t = pd.to_datetime(steps["started_at"]).min() if len(steps) else None
    started = run.get("started_at") or (None if t is None or pd.isna(t) else t)
    spans = tree["start_s"].add(tree["duration_s"].fillna(0)).max()
    facts = [("agent", run["agent"] or "?"), ("outcome", run["outcome"] or "?"),
             ("reward", "" if run["reward"] is None else f"{run['reward']:.2f}"),
             ("steps", f"{run['n_steps']}" + (f" ({_count(int(steps['is_error'].sum()), 'error')})"
                                               if steps["is_error"].any() else "")),
             ("model", run.get("model") or ""), ("started", f"{started:%Y-%m-%d %H:%M:%S} UTC" if started else ""),
             ("duration", _took(spans) if not pd.isna(spans) else ""),
             ("tokens", "" if pd.isna(tokens) else f"{int(tokens):,}")]
    shown = [(k, v) for k, v in facts if v]
    for at in range(0, len(shown), per_row):
        row = shown[at:at + per_row]
        for col, (label, value) in zip(st.columns(per_row), row, strict=False):
            col.caption(label)
            col.markdown(f"**{md(value)}**")
