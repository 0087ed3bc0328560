"""Libra's Streamlit app. Start it with `libra app`, `make demo`, or `streamlit run app.py` in a checkout.

Thin on purpose: pages live in `libra/web/` and every action calls the
library. Trace content is untrusted and only ever shown as text.
"""

from __future__ import annotations

import gc

import streamlit as st

from libra.web import (admin, compare, dashboards, keyboard, metrics_page, prefer, queues_page, releases, run_view,
                       runs, session)


@st.cache_resource
def _settle_heap() -> bool:
    """Once per server: what is alive after start-up is set aside from the collector's full passes.

    With Streamlit's collection after every script run (its default, turned off by `libra app`
    and `.streamlit/config.toml`), a full pass over the app's imported libraries took
    about 40 % of each rerun on a 100k-run store (py-spy of `bench/app.py`).
    """
    gc.collect()
    gc.freeze()
    return True


def main() -> None:
    st.set_page_config(page_title="Libra", layout="wide")
    _settle_heap()
    store = session.store()
    # Held for this script run and released when it ends (a rerun ends it too): one open of the
    # file per run instead of one per statement, and other processes get the file between runs.
    # Lazily: a rerun answered wholly from the web cache does not open the file at all.
    with store.hold(lazy=True):
        user = session.signed_in(store)
        # Pages are declared on every run, signed in or not, so a link to /run?run_id=... still
        # lands on that run after signing in.
        pages = {
            "runs": st.Page(runs.page, title="Runs", url_path="runs", default=True),
            "run": st.Page(run_view.page, title="Run", url_path="run"),
            "compare": st.Page(compare.page, title="Compare runs", url_path="compare"),
            "releases": st.Page(releases.page, title="Compare releases", url_path="releases"),
            "queues": st.Page(queues_page.page, title="Queues", url_path="queues"),
            "prefer": st.Page(prefer.page, title="Which is better?", url_path="prefer"),
            "metrics": st.Page(metrics_page.page, title="Metrics", url_path="metrics"),
            "dashboards": st.Page(dashboards.page, title="Dashboards", url_path="dashboards"),
            "admin": st.Page(admin.page, title="Accounts", url_path="accounts"),
        }
        visible = [p for k, p in pages.items() if k != "admin" or (user is not None and user.can("admin"))]
        nav = st.navigation(visible, position="sidebar" if user is not None else "hidden")
        st.session_state["pages"] = pages
        if user is None:
            session.sign_in(store)
            session.write_cookie()
            return
        with st.sidebar:
            st.caption(f"signed in as **{user.username}** ({user.role})")
            if st.button("Sign out", key="sign-out"):
                session.sign_out(store)
                st.rerun()
            # Here, the same element on every page: the browser keeps its frame from page to page.
            # Drawn on the run page, a new frame was made on each visit (~30 ms of the browser's
            # work, bench/app.py); the keys act only where a page has what they press.
            keyboard.install()
            session.write_cookie()
        nav.run()


# Streamlit runs this file as __main__ (`libra app`); app.py at the top of a checkout imports it.
if __name__ == "__main__":
    main()
