"""What a page of steps costs the browser: Streamlit elements per step, or the page as one element.

The run view is the one page over the 300 ms goal (`bench/app.py`), and nearly all of its time is the
browser's own work on about 160 elements. This prices the route past that, in the same run, in
Chromium, with `bench/app.py`'s click-to-drawn clock, rounds alternated:

- elements: each step as the timeline draws it now, a keyed container holding the step's head as a
  tertiary button with an icon and its content in `st.code`, 25 steps (one page);
- one element: the same 25 steps drawn by one `st.components.v2` component, which builds the page
  from the steps as data, sets every text with `textContent` (never as HTML) and sends a head's click
  back as a trigger value, as the anchor buttons do;
- one element, 200 steps: a whole 200-step run at once, no pages.

    python bench/timeline_elements.py --reps 20

It measures drawing only: it is the evidence for rebuilding the timeline as one element, not that
rebuild (keys j/k/a, scrolling to a step and folding spans would move into the component).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("bench_app", HERE / "app.py")
assert _spec and _spec.loader
clicks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(clicks)  # bench/app.py: its server start, click clock and percentiles

APP = '''
import streamlit as st

TEXT = "step {i}: " + "the agent checks the booking and replies. " * 4

# The component's own code and style, no data in them; the steps arrive as data and are set as text.
JS = """
export default function(component) {
  const { data, setTriggerValue, parentElement } = component;
  let root = parentElement.querySelector('.tl');
  if (!root) { root = document.createElement('div'); root.className = 'tl'; parentElement.appendChild(root); }
  root.replaceChildren();
  for (const s of data.steps) {
    const box = document.createElement('div'); box.className = 'step';
    const head = document.createElement('button'); head.className = 'head'; head.textContent = s.head;
    head.onclick = () => setTriggerValue('anchor', s.idx);
    const body = document.createElement('pre'); body.textContent = s.text;
    box.append(head, body); root.append(box);
  }
  const done = document.createElement('p'); done.textContent = 'page drawn'; root.append(done);
}
"""
CSS = """
.step { margin: 0 0 0.75rem 0; }
.head { background: none; border: none; font-weight: 600; cursor: pointer; padding: 0; text-align: left; }
pre { white-space: pre-wrap; background: var(--st-secondary-background-color); padding: 0.75rem;
      border-radius: 0.5rem; font-family: var(--st-code-font); font-size: 0.85rem; margin: 0.25rem 0 0 0; }
"""
timeline = st.components.v2.component("bench_timeline", js=JS, css=CSS, isolate_styles=False)


def steps(n):
    return [{"idx": i, "head": f"{i}. AGENT · search", "text": TEXT.format(i=i)} for i in range(n)]


def blank():
    st.header("Blank")


def elements():
    st.header("Elements")
    for s in steps(25):
        with st.container(key=f"step-{s['idx']}"):
            st.button(f"**{s['head']}**", key=f"anchor-{s['idx']}", type="tertiary", icon=":material/add_comment:")
            st.code(s["text"], language=None, wrap_lines=True)
    st.markdown("page drawn")


def one(n):
    def draw():
        st.header(f"One element, {n} steps")
        timeline(data={"steps": steps(n)}, key=f"timeline-{n}", on_anchor_change=lambda: None)
    return draw


st.navigation([st.Page(blank, title="Blank", url_path="blank", default=True),
               st.Page(elements, title="Elements", url_path="elements"),
               st.Page(one(25), title="One element", url_path="one"),
               st.Page(one(200), title="One element, 200 steps", url_path="one200")]).run()
'''

PAGES = ("Elements", "One element", "One element, 200 steps")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    times: dict[str, list[tuple[float, float, float]]] = {}
    with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as profile:
        script = Path(work) / "timeline_app.py"
        script.write_text(APP)
        port = clicks.free_port()
        proc = clicks.start(script, port, dict(os.environ))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch_persistent_context(profile, executable_path=clicks.CHROMIUM,
                                                               args=clicks.FLAGS, headless=True,
                                                               viewport={"width": 1500, "height": 1100})
                page = browser.new_page()
                page.goto(f"http://127.0.0.1:{port}/")
                page.get_by_role("heading", name="Blank").wait_for(timeout=60_000)
                nav = page.get_by_test_id("stSidebarNav")
                for rep in range(a.reps + 1):  # the first round warms the app and the browser; not counted
                    for name in (PAGES if rep % 2 else PAGES[::-1]):
                        ms = clicks.timed(page, nav.get_by_role("link", name=name, exact=True).click, "p",
                                          "page drawn")
                        clicks.timed(page, nav.get_by_role("link", name="Blank", exact=True).click, "h1, h2",
                                     "Blank")
                        if rep:
                            times.setdefault(name, []).append(ms)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"{a.reps} clicks each, alternated; click to page drawn by the page's clock")
    print(f"{'page of steps':<28}{'p50 ms':>10}{'p95 ms':>10}{'browser p50':>13}")
    for name, xs in times.items():
        p50, p95 = clicks.percentiles([ms for ms, _, _ in xs])
        print(f"{name:<28}{p50:>10.0f}{p95:>10.0f}{statistics.median(w for _, w, _ in xs):>13.0f}")


if __name__ == "__main__":
    main()
