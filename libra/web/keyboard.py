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
  // evidence links (#libra-step-N) scroll the timeline to that step's block
  d.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a[href^="#libra-step-"]');
    if (!a) return;
    const n = a.getAttribute('href').slice('#libra-step-'.length);
    const el = d.querySelector('.st-key-step-' + CSS.escape(n));
    if (!el) return;
    e.preventDefault();
    el.scrollIntoView({block: 'start'});
    const main = d.querySelector('[data-testid="stMain"]') || d.scrollingElement;
    if (main) main.scrollBy(0, -100);
  }, true);
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
      next.scrollIntoView({block: 'start'});
      // the header bar covers the top of the view; move the step out from under it
      const main = d.querySelector('[data-testid="stMain"]') || d.scrollingElement;
      if (main) main.scrollBy(0, -100);
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
