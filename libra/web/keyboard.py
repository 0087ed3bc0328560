"""Keyboard shortcuts for reading and annotating a run, and links from a verdict to its evidence step.

Streamlit has no key bindings, so a zero-height component puts one listener into the app's page
(its own origin). The keys press the page's own buttons (`Done, next run`, `Skip`, `Save feedback`,
a step's `anchor`), so a shortcut does exactly what the click does, with the same checks; nothing
from the run's data goes into the script.

j / k    next / previous step        a    anchor the note to the step at the top of the view
n        done, next run (a queue)    s    skip (a queue)
Ctrl+Enter (or Cmd+Enter)            save the note being written
Letter keys do nothing while a text box has the focus.
"""

from __future__ import annotations

import streamlit.components.v1 as components

_SCRIPT = r"""
(function () {
  const w = window.parent, d = w.document;
  if (w.__libraKeys) return;
  w.__libraKeys = true;
  const typing = (t) => t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable);
  const button = (label) => Array.from(d.querySelectorAll('button'))
    .find((b) => b.innerText.trim() === label && !b.disabled);
  const steps = () => Array.from(d.querySelectorAll('[class*="st-key-step-"]'));
  // the step whose block reaches below the app's header bar: the one being read
  const current = () => steps().find((el) => el.getBoundingClientRect().bottom > 110);
  // evidence links (#libra-step-N) scroll the timeline to that step's block. Scrolls are instant: on a
  // page that scrolls smoothly, the nudge below the header bar would cancel the scroll before it.
  const toStep = (n, tries) => {
    const el = d.querySelector('.st-key-step-' + CSS.escape(n));
    if (!el) {  // the page may still be drawing the timeline
      if (tries > 0) w.setTimeout(() => toStep(n, tries - 1), 100);
      return;
    }
    el.scrollIntoView({block: 'start', behavior: 'instant'});
    const main = d.querySelector('[data-testid="stMain"]') || d.scrollingElement;
    if (main) main.scrollBy({top: -100, behavior: 'instant'});
  };
  const STEP = '#libra-step-';
  d.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href^="' + STEP + '"]');
    if (!a) return;
    e.preventDefault();
    toStep(a.getAttribute('href').slice(STEP.length), 30);
  }, true);
  // and if the browser followed the link anyway, the address's fragment does the same, then goes
  w.addEventListener('hashchange', () => {
    if (!w.location.hash.startsWith(STEP)) return;
    toStep(w.location.hash.slice(STEP.length), 30);
    w.history.replaceState(null, '', w.location.pathname + w.location.search);
  });
  d.addEventListener('keydown', (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === 'Enter') {
      const b = button('Save feedback');
      if (!b) return;
      e.preventDefault();
      // the text box hands its value to the app when it loses the focus; then the click saves it
      if (d.activeElement) d.activeElement.blur();
      setTimeout(() => b.click(), 200);
      return;
    }
    if (typing(e.target) || e.ctrlKey || e.metaKey || e.altKey) return;
    const press = (label) => { const b = button(label); if (b) { e.preventDefault(); b.click(); } };
    if (e.key === 'n') press('Done, next run');
    else if (e.key === 's') press('Skip');
    else if (e.key === 'a') {
      const el = current();
      const b = el && Array.from(el.querySelectorAll('button'))
        .find((x) => ['anchor', 'unanchor'].includes(x.innerText.trim()));
      if (b) { e.preventDefault(); b.click(); }
    } else if (e.key === 'j' || e.key === 'k') {
      const all = steps();
      if (!all.length) return;
      const at = Math.max(all.indexOf(current()), 0);
      const next = all[e.key === 'j' ? Math.min(at + 1, all.length - 1) : Math.max(at - 1, 0)];
      e.preventDefault();
      next.scrollIntoView({block: 'start', behavior: 'instant'});
      // the header bar covers the top of the view; move the step out from under it
      const main = d.querySelector('[data-testid="stMain"]') || d.scrollingElement;
      if (main) main.scrollBy({top: -100, behavior: 'instant'});
    }
  }, true);
})();
"""


def install() -> None:
    """Listen for the shortcuts on this page (once per browser tab; later calls change nothing)."""
    components.html(
        "<script>const s = window.parent.document.createElement('script'); "
        f"s.textContent = {_js_string(_SCRIPT)}; window.parent.document.head.appendChild(s);</script>",
        height=0)


def _js_string(text: str) -> str:
    import json

    return json.dumps(text)
