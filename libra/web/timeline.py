"""How a run reads: its facts in a row, and its steps nested as the trace nests them, with timings.

Shared by the Run page (with an anchor button per step for the note being written) and the Compare
page (two runs side by side, read-only). Trace content is only ever shown as text.
"""

from __future__ import annotations

from contextlib import nullcontext
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
        return nullcontext()
    d = min(depth, 8) * 0.035
    return st.columns([d, 1 - d])[1]


def _anchor(draft_key: str, idx: int) -> None:
    """Add the step to (or take it from) the note being written: the timeline's button and the `a` key."""
    chosen = list(st.session_state.get(f"{draft_key}-steps", []))
    st.session_state[f"{draft_key}-steps"] = sorted(set(chosen) ^ {idx})


# on each step's head: a click there anchors the note being written (a failed step's says it failed)
ANCHOR_ICON, ERROR_ICON = ":material/add_comment:", ":material/error:"
# A button centres its label: a head that wraps (a long tool or model name, a narrow window) reads
# as a heading only set left, its icon by its first line. Our own style, no data in it.
HEAD_STYLE = ("<style>[class*='st-key-anchor-'] button {justify-content: flex-start; align-items: flex-start;"
              " text-align: left;} [class*='st-key-anchor-'] button p {text-align: left;}</style>")


def _head(step: Any, stats: str, draft_key: str | None, anchored: bool) -> None:
    """A step's head: its number, kind, names and timings on one line.

    Where a note is being written the head is itself the step's anchor button: one element a step
    instead of a label, a button and the row that holds them, which cost the browser ~45 ms on a
    page of 40 steps (bench/app.py). The head reads as a heading, with an icon that says a click
    anchors the note.
    """
    label = f"**{md(step_label(step))}**"
    if step.is_error:
        label = f":red[{label} · error]"
    line = label + (f" · :gray[{md(stats)}]" if stats else "") + (" ◀ anchored to your note" if anchored else "")
    if draft_key is None:
        (st.error if step.is_error else st.markdown)(line)
        return
    st.button(line, key=f"anchor-{int(step.idx)}", type="tertiary", icon=ERROR_ICON if step.is_error else ANCHOR_ICON,
              on_click=_anchor, args=(draft_key, int(step.idx)))


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


# Streamlit draws every element of a page on each rerun, about eight per step: a 200-step run took
# 3.6 s to draw (bench/app.py). A page of steps bounds that; j/k and evidence links cross pages.
# 25 rather than 40: opening the 200-step run went 215 → 196 ms (slowest of 8: 267 → 217) and
# turning a page 203 → 148, the two sizes side by side; fifteen more steps a page were not worth
# that on every open and every turn.
PAGE_STEPS = 25
GOTO = "libra-goto"  # session key: (step idx, nonce) the timeline scrolls to once drawn


def step_pages(tree: pd.DataFrame, size: int = PAGE_STEPS) -> list[tuple[int, int]]:
    """The tree's rows cut into pages [start, end) of at most `size` steps each, in reading order.

    The spans just above a page's first step open that page (they are its context), and spans with
    no step after them close the last one; a run of up to `size` steps is one page.
    """
    kinds = tree["kind"].tolist()
    step_rows = [i for i, k in enumerate(kinds) if k != "span"]
    starts = [0]
    for n in range(size, len(step_rows), size):
        r = step_rows[n]
        while r > starts[-1] + 1 and kinds[r - 1] == "span":
            r -= 1
        starts.append(r)
    return list(zip(starts, starts[1:] + [len(kinds)], strict=True))


def _step_idxs(tree: pd.DataFrame, a: int = 0, b: int | None = None) -> list[int]:
    """The step numbers of the tree's rows [a, b), in reading order (span rows have none)."""
    return [int(v) for v in tree["idx"].iloc[a:b].tolist() if v is not None and not pd.isna(v)]


def page_of_step(tree: pd.DataFrame, pages: list[tuple[int, int]], idx: int) -> int | None:
    """Which page draws step `idx` (None: no such step)."""
    return next((p for p, (a, b) in enumerate(pages) if idx in _step_idxs(tree, a, b)), None)


def go_to_step(idx: int) -> None:
    """Ask the run's timeline to show step `idx` (turning to its page) and scroll to it when drawn."""
    # a new nonce each time, so the page's script scrolls again to a step it was sent to before
    nonce = st.session_state[f"{GOTO}-nonce"] = st.session_state.get(f"{GOTO}-nonce", 0) + 1
    st.session_state[GOTO] = (int(idx), nonce)


def _turn(page_key: str, page: int, tree: pd.DataFrame, pages: list[tuple[int, int]], last: bool,
          scroll: bool) -> None:
    """Show another page; with `scroll`, land on its first step (its last, going back: j/k read on)."""
    st.session_state[page_key] = page
    if not scroll:
        return
    idxs = _step_idxs(tree, *pages[page])
    if idxs:
        go_to_step(idxs[-1] if last else idxs[0])


def _pager(page_key: str, page: int, tree: pd.DataFrame, pages: list[tuple[int, int]], where: str,
           scroll: bool) -> None:
    """Earlier / later buttons around which steps this page holds; the j and k keys press them at a page's end."""
    idxs = _step_idxs(tree, *pages[page])
    n_steps = int((tree["kind"] != "span").sum())
    back, label, on = st.columns([1, 3, 1])
    back.button("Earlier steps", key=f"{page_key}-{where}-back", disabled=page == 0,
                on_click=_turn, args=(page_key, page - 1, tree, pages, True, scroll))
    label.caption(f"steps {min(idxs, default=0)}–{max(idxs, default=0)} of {n_steps} · "
                  f"page {page + 1} of {len(pages)}")
    on.button("Later steps", key=f"{page_key}-{where}-on", disabled=page == len(pages) - 1,
              on_click=_turn, args=(page_key, page + 1, tree, pages, False, scroll))


def _context(first: str, up: dict[str, Any], labels: dict[str, Any], depths: dict[str, Any]) -> None:
    """The spans that hold a page's first node but opened on an earlier page, as one line each."""
    chain, at, seen = [], up.get(first), 0
    while isinstance(at, str) and seen < len(up):
        chain.append(at)
        at, seen = up.get(at), seen + 1
    for node in reversed(chain):
        with _indented(int(depths.get(node, 0))):
            st.caption(f"▾ {md(str(labels.get(node, node)))} (continued)")


def timeline(steps: pd.DataFrame, tree: pd.DataFrame, draft_key: str | None, prefix: str = "step",
             run_key: str = "") -> None:
    """The steps in order, nested under the spans that hold them, each with its timing and tokens.

    A long run is drawn a page of steps at a time. The run page's timeline (prefix "step") also
    answers `go_to_step`: it turns to the step's page and the page's script scrolls to it.
    """
    by_idx = {int(r.idx): r for r in steps.itertuples()}
    anchored = set(st.session_state.get(f"{draft_key}-steps", [])) if draft_key else set()
    folded: set[str] = st.session_state.setdefault(f"{prefix}-folded", set())
    up = dict(zip(tree["node"], tree["parent"], strict=True))
    inside = _descendants(up)
    pages = step_pages(tree)
    page_key = f"pager-{prefix}:{run_key}"  # not "step-…": that names step blocks
    goto = st.session_state.pop(GOTO, None) if prefix == "step" else None
    if goto is not None:
        target = page_of_step(tree, pages, goto[0])
        if target is not None:
            st.session_state[page_key] = target
    page = min(max(int(st.session_state.get(page_key, 0)), 0), len(pages) - 1)
    if draft_key:
        st.html(HEAD_STYLE)
    if len(pages) > 1:
        _pager(page_key, page, tree, pages, "top", prefix == "step")
    start, end = pages[page]
    if start > 0:
        _context(str(tree["node"].iloc[start]), up, dict(zip(tree["node"], tree["label"], strict=True)),
                 dict(zip(tree["node"], tree["depth"], strict=True)))
    for node in tree.iloc[start:end].itertuples():
        if _under(node.node, up, folded):
            continue
        if node.kind == "span":  # an agent or chain around the steps below it
            with _indented(int(node.depth)), st.container(horizontal=True, vertical_alignment="center"):
                shut = node.node in folded
                st.caption(f"{'▸' if shut else '▾'} {md(node.label)}" + (f" · {_stats(node)}" if _stats(node) else "")
                           + (" · failed" if node.error else "")
                           + (f" · {inside.get(node.node, 0)} nodes folded" if shut else ""))
                st.button("unfold" if shut else "fold", key=f"fold-{prefix}-{node.node}", on_click=_toggle,
                          args=(folded, node.node), help="Hide or show what this span holds")
            continue
        s_ = by_idx[int(node.idx)]
        with _indented(int(node.depth)), st.container(key=f"{prefix}-{int(node.idx)}"):
            _head(s_, _stats(node), draft_key, int(s_.idx) in anchored)
            if isinstance(s_.tool_args, str) and s_.tool_args not in ("null", ""):
                st.code(s_.tool_args, language="json", wrap_lines=True)
            if s_.content:
                show_text(s_.content)
    if len(pages) > 1:
        _pager(page_key, page, tree, pages, "bottom", prefix == "step")
    if goto is not None:
        # a marker the page's script watches for: it scrolls to the step once, by the nonce
        st.container(key=f"{GOTO}-{goto[1]}-{goto[0]}", height=1, border=False)


KEYS_HELP = ("Click a step's head to anchor your note to it (again to take it off). "
             "Keys: j / k next / previous step · a anchor your note to the step at the top · "
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
