"""Accounts, for admins."""

from __future__ import annotations

import streamlit as st

from libra.web import session
from libra import accounts


def page() -> None:
    s = session.store()
    user = session.user()
    st.header("Accounts")
    if not user.can("admin"):
        st.warning("Only admins manage accounts.")
        return
    st.dataframe(accounts.list_users(s), hide_index=True, width="stretch")
    with st.form("add-user"):
        st.subheader("Add an account")
        name = st.text_input("username", key="u-name")
        role = st.selectbox("role", accounts.ROLES, index=1, key="u-role")
        pw = st.text_input("initial password", type="password", key="u-pass")
        email = st.text_input("email (for identity-provider sign-in)", key="u-email")
        if st.form_submit_button("Add"):
            try:
                accounts.add_user(s, name, pw or None, role, email=email or None)
                st.success(f"Added {name}.")
            except accounts.AccountError as exc:
                st.error(str(exc))
    with st.form("disable-user"):
        st.subheader("Disable or enable")
        who = st.text_input("username", key="u-dis")
        c1, c2 = st.columns(2)
        dis = c1.form_submit_button("Disable")
        en = c2.form_submit_button("Enable")
        if (dis or en) and who:
            if who == user.username and dis:
                st.error("You cannot disable yourself.")
            else:
                try:
                    accounts.set_disabled(s, who, dis)
                    st.success(f"{who} {'disabled' if dis else 'enabled'}.")
                except accounts.AccountError as exc:
                    st.error(str(exc))
