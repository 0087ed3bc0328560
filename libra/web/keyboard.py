"""Keyboard shortcuts for reading and annotating a run, and scrolling to a step the app asks for.

Streamlit has no key bindings, so a one-pixel frame (`page_script`) puts one listener into the app's page
(its own origin). The keys press the page's own buttons (`Done, next run`, `Skip`, `Save feedback`,
a step's head, its anchor), so a shortcut does exactly what the click does, with the same checks; nothing
from the run's data goes into the script.

j / k    next / previous step (turning the timeline's page at its ends)
a        anchor the note to the step at the top of the view
n        done, next run (a queue)    s    skip (a queue)
Ctrl+Enter (or Cmd+Enter)            save the note being written
Letter keys do nothing while a text box has the focus. When the timeline is asked to show a step
(a verdict's evidence, a page turned by j/k), it draws a marker naming the step; the script scrolls
to it once.
"""

from __future__ import annotations

from libra.web.widgets import page_script

_SCRIPT = r"""
(function () {
  const w = window.parent, d = w.document;
  if (w.__libraKeys) return;
  w.__libraKeys = true;
  const typing = (t) => t && (t.tagName === 'TEXTAREA' || t.tagName === 'INPUT' || t.isContentEditable);
  const button = (label) => Array.from(d.querySelectorAll('button'))
    .find((b) => b.innerText.trim() === label && !b.disabled);
  const steps = () => Array.from(d.querySelectorAll('[class*="st-key-step-"]'));
  // the step being read: the one j/k (or a link) last brought up while it is still in view, else the
  // first whose block reaches below the app's header bar. Remembered by its key, not its element
  // (a redrawn page may reuse the element for another step), because the last steps of a page can
  // never reach the top of the view, so their position alone would keep j from getting to them.
  let readKey = null;
  const inView = (el) => { const r = el.getBoundingClientRect(); return r.bottom > 110 && r.top < w.innerHeight; };
  const keyOf = (el) => Array.from(el.classList).find((c) => c.startsWith('st-key-step-'));
  const current = () => {
    const kept = readKey && d.querySelector('.' + CSS.escape(readKey));
    return kept && inView(kept) ? kept : steps().find((el) => el.getBoundingClientRect().bottom > 110);
  };
  // bring a step's block to the top of the view, below the header bar that covers the top. Scrolls
  // are instant: on a page that scrolls smoothly, the nudge would cancel the scroll before it.
  const show = (el) => {
    readKey = keyOf(el);
    el.scrollIntoView({block: 'start', behavior: 'instant'});
    const main = d.querySelector('[data-testid="stMain"]') || d.scrollingElement;
    if (main) main.scrollBy({top: -100, behavior: 'instant'});
  };
  const toStep = (n, tries) => {
    const el = d.querySelector('.st-key-step-' + CSS.escape(n));
    if (!el) {  // the page may still be drawing the timeline
      if (tries > 0) w.setTimeout(() => toStep(n, tries - 1), 100);
      return;
    }
    show(el);
  };
  // the timeline leaves a marker (st-key-libra-goto-NONCE-STEP) when asked to show a step, perhaps
  // on another page: scroll to that step once per marker
  let handled = null, turning = 0;
  w.setInterval(() => {
    const m = d.querySelector('[class*="st-key-libra-goto-"]');
    const at = m && Array.from(m.classList).find((c) => c.startsWith('st-key-libra-goto-'));
    if (!at || at === handled) return;
    handled = at;
    turning = 0;
    toStep(at.split('-').pop(), 30);
  }, 150);
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
      const b = el && el.querySelector('[class*="st-key-anchor-"] button');  // the step's head
      if (b) { e.preventDefault(); b.click(); }
    } else if (e.key === 'j' || e.key === 'k') {
      if (Date.now() - turning < 5000) { e.preventDefault(); return; }
      const all = steps();
      if (!all.length) return;
      const at = Math.max(all.indexOf(current()), 0);
      e.preventDefault();
      // past a page's last (or before its first) step: turn the page; the app then shows the next step
      const turn = e.key === 'j' ? (at === all.length - 1 && button('Later steps'))
        : (at === 0 && button('Earlier steps'));
      if (turn) {
        // keys pressed while the next page draws would act on the old one (and turn it again)
        turning = Date.now();
        turn.click();
        return;
      }
      const next = all[e.key === 'j' ? Math.min(at + 1, all.length - 1) : Math.max(at - 1, 0)];
      show(next);
    }
  }, true);
})();
"""


def install() -> None:
    """Listen for the shortcuts on this page (once per browser tab; later calls change nothing)."""
    page_script("<script>const s = window.parent.document.createElement('script'); "
                f"s.textContent = {_js_string(_SCRIPT)}; window.parent.document.head.appendChild(s);</script>")


def _js_string(text: str) -> str:
    import json

    return json.dumps(text)
