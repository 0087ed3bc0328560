"""Libra's Streamlit app. Start it with `libra app` or `make demo`.

Thin on purpose: pages live in `libra/web/` and every action calls the
library. Trace content is untrusted and only ever shown as text.
"""

from __future__ import annotations

import streamlit as st

from libra.web import admin, metrics_page, queues_page, run_view, runs, session

st.set_page_config(page_title="Libra", layout="wide")
store = session.store()
user = session.sign_in(store)
if user is not None:
    pages = {
        "runs": st.Page(runs.page, title="Runs", url_path="runs", default=True),
        "run": st.Page(run_view.page, title="Run", url_path="run"),
        "queues": st.Page(queues_page.page, title="Queues", url_path="queues"),
        "metrics": st.Page(metrics_page.page, title="Metrics", url_path="metrics"),
    }
    if user.can("admin"):
        pages["admin"] = st.Page(admin.page, title="Accounts", url_path="accounts")
    st.session_state["pages"] = pages
    with st.sidebar:
        st.caption(f"signed in as **{user.username}** ({user.role})")
        if st.button("Sign out", key="sign-out"):
            session.sign_out()
            st.rerun()
    st.navigation(list(pages.values())).run()
