"""The run viewer: a readable timeline, and feedback anchored to steps."""

from __future__ import annotations

import json

import pandas as pd

import streamlit as st

from libra.web import session
from libra.web.cache import cached, cached_past_notes
from libra.accounts import User
from libra.web.timeline import KEYS_HELP, go_to_step, header, timeline
from libra.web.widgets import KIND_LABEL, VERDICT_TEXT, chart, md, show_text, step_label
from traces.annotation import feedback, queues
from traces.annotation.feedback import FeedbackError
from metrics.reports.charts import waterfall_chart
from traces.display import for_chart, json_object
from traces.queries import get_run, same_task_runs
from traces.model import Feedback
from traces.tree import span_tree
from traces.store import Store


TO_APPLY = "notes-to-apply"  # session key: this rerun's click wrote to the journal; `_notes` applies it


def _save(s: Store, run_id: str, user: User, n_steps: int, draft_key: str) -> None:
    if not session.may(s, user, "annotate"):
        return
    try:
        rating = st.session_state.get(f"{draft_key}-rating")
        # durable in the journal on return; applied to the store by the notes' rerun that follows, inside
        # its hold (`_notes`), so the file is opened once for both; applied here, it was opened, written,
        # folded and closed before that rerun opened it again (in bench/app.py side by side, the save's
        # p50 246 → 238 ms: within noise). Left to the app's flusher instead, its commit came after the
        # rerun and every page's kept answers that read notes were recomputed once more on their next
        # visit: the save 244 → 156 ms, but the run view 277 → 314 and the first chart 261 → 299.
        feedback.add(s, run_id, user.username, st.session_state.get(draft_key, ""),
                     steps=st.session_state.get(f"{draft_key}-steps", []),
                     rating=None if rating in (None, "none") else float(rating), n_steps=n_steps,
                     flush_now=False)
        st.session_state[TO_APPLY] = True
    except FeedbackError as exc:
        st.session_state["flash"] = ("error", str(exc))
        return
    st.session_state[draft_key] = ""
    st.session_state[f"{draft_key}-steps"] = []
    st.session_state[f"{draft_key}-rating"] = "none"
    st.session_state["flash"] = ("success", "Saved.")


def _suggest(s: Store, run_id: str, draft_key: str) -> None:
    """Anchors for the draft, from the locator: its three likeliest steps, for the annotator to keep or change."""
    from libra.grounding import ground

    text = st.session_state.get(draft_key, "") or ""
    if not text.strip():
        st.session_state["flash"] = ("error", "write the remark first; the steps are suggested from it")
        return
    ranked = ground(s, run_id, text, k=3)
    st.session_state[f"{draft_key}-steps"] = sorted(r.idx for r in ranked)
    st.session_state["flash"] = ("success", "Suggested steps " + ", ".join(
        f"{r.idx} ({r.probability:.0%})" for r in ranked) + "; keep, change or clear them before saving.")


def _feedback_form(s: Store, run_id: str, user: User, steps: pd.DataFrame) -> None:
    st.subheader("Your feedback")
    draft = f"draft-{run_id}"
    options = [int(i) for i in steps["idx"]]
    labels = {int(r.idx): step_label(r) for r in steps.itertuples()}
    st.multiselect("About which steps? (leave empty for the whole run)", options, key=f"{draft}-steps",
                   format_func=lambda i: labels[i])
    st.text_area("What did the agent do well or badly?", key=draft, height=140,
                 placeholder="e.g. It booked the flight without confirming the price with the user.")
    st.radio("Overall rating (optional)", ["none", 1, 2, 3, 4, 5], horizontal=True, key=f"{draft}-rating")
    c1, c2 = st.columns([1, 1])
    c1.button("Save feedback", type="primary", key=f"{draft}-save",
              on_click=_save, args=(s, run_id, user, len(steps), draft))
    c2.button("Suggest steps", key=f"{draft}-suggest", on_click=_suggest, args=(s, run_id, draft),
              help="Anchors from the remark you wrote: the steps it is likeliest about")
    flash = st.session_state.pop("flash", None)
    if flash:
        (st.success if flash[0] == "success" else st.error)(flash[1])


def _anchors_moved(draft: str) -> bool:
    """Whether the note's anchors changed since the whole page was last drawn (both columns show them)."""
    return bool(list(st.session_state.get(f"{draft}-steps", [])) != st.session_state.get(f"{draft}-drawn", []))


@st.fragment
def _steps(run_id: str, user: User, steps: pd.DataFrame, tree: pd.DataFrame) -> None:
    """The timeline's steps. A fragment: turning a page or folding a span redraws only them."""
    draft = f"draft-{run_id}" if user.can("annotate") else None
    if draft and _anchors_moved(draft):  # an anchor button here: the note's form lists the anchors too
        st.rerun(scope="app")
    timeline(steps, tree, draft, run_key=run_id)


@st.fragment
def _notes(s: Store, run_id: str, user: User, steps: pd.DataFrame, gold: object) -> None:
    """The note being written and the run's notes. A fragment: saving or editing a note redraws this
    column, not the whole timeline beside it (a save took seconds on a long run, bench/app.py)."""
    with s.hold(lazy=True):  # a fragment's rerun is outside the app's hold: without it each read reopens the file
        if st.session_state.pop(TO_APPLY, False):
            feedback.maybe_flush(s)
        _notes_held(s, run_id, user, steps, gold)


def _notes_held(s: Store, run_id: str, user: User, steps: pd.DataFrame, gold: object) -> None:
    draft = f"draft-{run_id}"
    if user.can("annotate") and _anchors_moved(draft):
        # the note's anchors changed here (picked, suggested, or cleared by a save): the timeline
        # marks anchored steps, so it is drawn again too
        st.rerun(scope="app")
    if user.can("annotate"):
        _feedback_form(s, run_id, user, steps)
    else:
        st.caption("Viewers can read feedback but not write it.")
    _feedback_list(s, run_id, user, steps, gold)


def _edit(s: Store, fid: str, user: User, n_steps: int) -> None:
    if not session.may(s, user, "annotate"):
        return
    try:
        rating = st.session_state.get(f"edit-{fid}-rating")
        feedback.edit(s, fid, user.username, text=st.session_state.get(f"edit-{fid}"),
                      rating=None if rating in (None, "none") else float(rating),
                      steps=st.session_state.get(f"edit-{fid}-steps", []), n_steps=n_steps,
                      flush_now=False)  # applied as a save's
        st.session_state[TO_APPLY] = True
        st.session_state["flash"] = ("success", "Updated; the earlier version is kept in the history.")
    except FeedbackError as exc:
        st.session_state["flash"] = ("error", str(exc))


def _delete(s: Store, fid: str, user: User) -> None:
    if not session.may(s, user, "annotate"):
        return
    try:
        feedback.delete(s, fid, user.username, flush_now=False)
        st.session_state[TO_APPLY] = True
        st.session_state["flash"] = ("success", "Deleted; it stays in the history.")
        st.session_state[EDITING] = None
    except FeedbackError as exc:
        st.session_state["flash"] = ("error", str(exc))


# The newest notes drawn, the rest on request: each note drawn slowed the run's page and every save on
# it by ~7 ms (bench/app.py's run view, --raw: ~235 ms with ten notes, 300-330 with twenty).
NOTES_SHOWN = 10


def _feedback_list(s: Store, run_id: str, user: User, steps: pd.DataFrame, gold: object = None) -> None:
    items = cached(s, feedback.for_run, run_id)
    st.subheader(f"Feedback ({len(items)})")
    if len(items) > NOTES_SHOWN and not st.toggle(f"show all {len(items)} notes", key=f"all-notes-{run_id}"):
        st.caption(f"the newest {NOTES_SHOWN} of {len(items)} notes")
        items = items[-NOTES_SHOWN:]
    labels = {int(r.idx): step_label(r) for r in steps.itertuples()}
    mine = cached(s, feedback.histories, [f.feedback_id for f in items if f.author == user.username and f.feedback_id]) \
        if user.can("annotate") else {}
    for f in items:
        named = (f.metadata or {}).get("source_step")
        if named is None and (f.metadata or {}).get("dataset") == "who-and-when":  # stored before it was kept
            named = json_object(gold).get("mistake_step")
        on = (f" on step{'s' if len(f.steps) > 1 else ''} {', '.join(map(str, f.steps))}" if f.steps
              else f" about step {named} (named by the source; not anchored)" if named is not None
              else " on the whole run")
        rating = f" · rating {f.rating:g}" if f.rating is not None else ""
        when = f" · {f.created_at:%Y-%m-%d %H:%M} UTC" if f.created_at else ""
        edited = f" · edited {f.edited_at:%Y-%m-%d %H:%M}" if f.edited_at else ""
        st.text(f"{f.author}{on}{rating}{when}{edited}")
        lost = feedback.past_end(f.steps, len(steps))
        if lost:
            st.warning(f"Anchored to step{'s' if len(lost) > 1 else ''} {', '.join(map(str, lost))}, which this run "
                       f"no longer has (it was ingested again with {len(steps)} steps). The anchors are kept, "
                       "also when the note is edited; `libra check` lists every such note.")
        show_text(f.text, 800)
        if user.can("annotate") and f.author == user.username and f.feedback_id:
            _edit_form(s, f, user, labels, len(steps), mine.get(f.feedback_id))


EDITING = "editing-note"  # session key: the one note whose edit form is open


def _open_editor(fid: str | None) -> None:
    st.session_state[EDITING] = fid


def _edit_form(s: Store, f: Feedback, user: User, labels: dict[int, str], n_steps: int,
               hist: pd.DataFrame | None) -> None:
    """One's own note's edit form, drawn only while open: a form per note (a step list each)
    made a run with many notes slow to draw and to save on."""
    fid = f.feedback_id
    if st.session_state.get(EDITING) != fid:
        st.button("edit or delete", key=f"edit-{fid}-open", type="tertiary", on_click=_open_editor, args=(fid,))
        return
    with st.container(border=True):
        st.text_area("text", value=f.text, key=f"edit-{fid}")
        st.multiselect("steps", list(labels), default=[i for i in f.steps if i in labels],
                       format_func=lambda i: labels[i], key=f"edit-{fid}-steps")
        current = int(f.rating) if f.rating is not None else "none"
        st.radio("rating", ["none", 1, 2, 3, 4, 5], index=["none", 1, 2, 3, 4, 5].index(current),
                 horizontal=True, key=f"edit-{fid}-rating")
        c1, c2, c3 = st.columns(3)
        c1.button("Save changes", key=f"edit-{fid}-save", on_click=_edit, args=(s, fid, user, n_steps))
        c2.button("Delete", key=f"edit-{fid}-del", on_click=_delete, args=(s, fid, user))
        c3.button("Close", key=f"edit-{fid}-close", on_click=_open_editor, args=(None,))
        if hist is not None and len(hist) > 1:
            st.caption("history")
            for h in hist.itertuples():
                st.text(f"revision {h.revision} · {h.action} by {h.edited_by} at {h.edited_at:%Y-%m-%d %H:%M}")
                if isinstance(h.text, str):
                    show_text(h.text, 400)


def _scores(s: Store, run_id: str) -> None:
    """The judges' verdicts on this run, and its PIPA profile when it has one."""
    from pipa import profile

    from metrics.reports.queries import run_scores

    df = cached_past_notes(s, run_scores, run_id)
    if df.empty:
        return
    subjects = sorted(set(df["about"]) - {"the run"})
    with st.expander(f"Scores ({len(df)} verdicts" + (f", per agent: {', '.join(map(md, subjects))})" if subjects else ")"),
                     expanded=bool(subjects)):
        if subjects:
            # one column per agent, so the two sides of a dialogue read side by side
            st.caption("Verdicts per agent (+1 did well, −1 did something wrong, n/a not raised)")
            per = df.assign(verdict=df["verdict"].map({1: "+1", -1: "−1", 0: "n/a"}))
            st.dataframe(per.pivot_table(index=["set", "v", "metric"], columns="about", values="verdict",
                                         aggfunc="first").reset_index(), hide_index=True)
        st.dataframe(_readable_scores(df), hide_index=True, width="stretch",
                     column_config={"pass rate": st.column_config.NumberColumn(format="percent"),
                                    "reason": st.column_config.TextColumn(width="large")})
        _evidence_links(df)
        prof = cached_past_notes(s, profile.run_profile, run_id)
        if not prof.empty:
            chart(profile.profile_chart, prof)


def _evidence_links(df: pd.DataFrame, most: int = 30) -> None:
    """Each "did wrong" verdict's evidence steps as buttons that bring the step up in the timeline."""
    wrong = df[(df["verdict"] == -1) & df["evidence"].map(lambda e: e is not None and len(e) > 0)]
    if wrong.empty:
        return
    st.caption("Where the judges saw it (click a step to go to it in the timeline, on whichever page it is):")
    for n, r in enumerate(wrong.head(most).itertuples()):
        about = f" · about {md(r.about)}" if r.about != "the run" else ""
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"{md(r.metric)}{about}:", width="content")
            for i in r.evidence:  # Libra's own step numbers: only they go into the labels
                st.button(f"step {int(i)}", key=f"evidence-{n}-{int(i)}", type="tertiary",
                          on_click=go_to_step, args=(int(i),))


def _readable_scores(df: pd.DataFrame) -> pd.DataFrame:
    """Verdicts as words, the evidence as step numbers, and no column this run leaves empty."""
    out = df.assign(verdict=df["verdict"].map(VERDICT_TEXT),
                    evidence=df["evidence"].map(lambda e: ", ".join(map(str, e)) if e is not None and len(e) else ""),
                    set=[f"{a} v{b}" for a, b in zip(df["set"], df["v"], strict=True)]).drop(columns=["v"])
    out = out.rename(columns={"rate": "pass rate", "evidence": "evidence steps", "backend": "judge"})
    if (out["about"] == "the run").all():
        out = out.drop(columns=["about"])
    out = out.drop(columns=[c for c in out.columns if out[c].isna().all()])
    return for_chart(out.fillna({"reason": ""}), ("metric", "about", "reason", "set", "judge"))


def _go(run_id: str | None, queue_id: str | None) -> None:
    """Show another run; the address bar moves with it, or the next rerun would take the old link back."""
    st.session_state["run_id"] = run_id
    st.session_state["queue_id"] = queue_id if run_id else None
    if run_id:
        st.query_params["run_id"] = run_id
    else:
        st.query_params.pop("run_id", None)
        st.query_params.pop("queue", None)
    st.rerun()


RUN_FACTS = (("session", "session_id"), ("conversation", "conversation_id"), ("user", "user_id"),
             ("release", "release"), ("agent version", "agent_version"))


def _run_facts(metadata: object) -> list[tuple[str, str]]:
    meta = json_object(metadata)
    seen, out = set(), []
    for label, key in RUN_FACTS:
        v = meta.get(key)
        if v not in (None, "") and str(v) not in seen:
            seen.add(str(v))
            out.append((label, str(v)))
    return out


def page() -> None:
    s = session.store()
    user = session.user()
    linked = st.query_params.get("run_id")
    if linked and linked != st.session_state.get("run_id"):  # a shared link, or a reload
        st.session_state["run_id"] = linked
        st.session_state["queue_id"] = st.query_params.get("queue")
    run_id = st.session_state.get("run_id")
    if not run_id:
        st.info("Pick a run in the Runs page, or take the next one from a queue.")
        return
    run, steps = cached_past_notes(s, get_run, run_id)
    if run is None:
        st.warning("That run is not in the store.")
        return
    queue_id = st.session_state.get("queue_id")
    st.query_params["run_id"] = run_id  # the address bar always links to this run
    if queue_id:
        st.query_params["queue"] = queue_id
    elif "queue" in st.query_params:
        del st.query_params["queue"]
    st.header(f"Run {md(run_id)}")
    tree = span_tree(steps, run.get("metadata"))
    header(run, steps, tree)
    st.caption(f"format {md(run['format'])} · source {md(run['source'])}")
    facts = _run_facts(run.get("metadata"))
    if facts:  # where the trace came from: its session, user and release, as the producer named them
        st.caption(" · ".join(f"{label} {md(v)}" for label, v in facts))
    if queue_id:
        prog = queues.progress(s, queue_id, user.username)
        st.progress(min(1.0, prog["mine_done"] / max(prog["mine_done"] + prog["mine_available"], 1)),
                    text=f"queue: {prog['mine_done']} done by you; {prog['done']}/{prog['slots']} overall")
        b1, b2 = st.columns(2)
        done = b1.button("Done, next run", type="primary", key="queue-next")
        if done or b2.button("Skip", key="queue-skip"):
            queues.finish(s, queue_id, run_id, user.username, "done" if done else "skipped")
            _go(queues.next_run(s, queue_id, user.username), queue_id)
    if run["task"]:
        st.markdown("**Task**")
        show_text(run["task"], 600)
    if cached_past_notes(s, same_task_runs, run_id, limit=1) and st.button("Compare with another run of this task", key="to-compare"):
        st.query_params.clear()
        st.session_state["run_id"] = run_id
        st.switch_page(st.session_state["pages"]["compare"])
    _scores(s, run_id)
    if run["gold"]:
        with st.expander("gold labels from the source"):
            st.json(json.loads(run["gold"]), expanded=False)
    left, right = st.columns([3, 2])
    # the anchors this run of the page marks in the timeline; the notes' column reruns alone
    # until they change
    st.session_state[f"draft-{run_id}-drawn"] = list(st.session_state.get(f"draft-{run_id}-steps", []))
    with right:
        _notes(s, run_id, user, steps, run["gold"])
    with left:
        st.subheader("Timeline")
        if tree["start_s"].notna().any():
            with st.expander("trace timeline (waterfall)", expanded=bool((tree["kind"] == "span").any())):
                chart(waterfall_chart, tree)
        if user.can("annotate"):
            st.caption(KEYS_HELP)
        _steps(run_id, user, steps, tree)


__all__ = ["page", "KIND_LABEL"]
