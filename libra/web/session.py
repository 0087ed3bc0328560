"""The store, the signed-in user, and sign-in itself.

Feedback is always attributed to the signed-in account. Teams with an
identity provider can use Streamlit's OIDC sign-in (`LIBRA_AUTH=oidc` and an
`[auth]` section in `.streamlit/secrets.toml`); the account is then found by
its email, and must have been added by an admin (`libra user add --email`).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from datetime import datetime
from collections.abc import Callable

import streamlit as st

from libra import accounts, sessions
from traces.annotation import feedback
from libra.accounts import User
from libra.throttle import Throttle
from libra.web.cache import cached_past_notes
from libra.web.widgets import page_script
from traces.store import Store, default_db_path

log = logging.getLogger("libra.signin")


def store() -> Store:
    s = Store(default_db_path(), lock_timeout=60)
    _start_flusher(s.path)
    return s


@st.cache_resource
def _flusher_registry() -> dict[str, threading.Thread]:
    return {}


def _start_flusher(path: str) -> None:
    """One thread per store applies journalled saves every second or two, whatever pages do."""
    reg = _flusher_registry()
    if path in reg or path == ":memory:":
        return

    def loop() -> None:
        s = Store(path, lock_timeout=2)
        while True:
            try:
                feedback.flush(s, timeout=2)
            except Exception:  # noqa: BLE001 - a failed attempt is retried on the next tick
                pass
            time.sleep(1.5)

    t = threading.Thread(target=loop, name=f"libra-flush-{path}", daemon=True)
    reg[path] = t
    t.start()


def current_user() -> User | None:
    return st.session_state.get("user")


def user() -> User:
    """The signed-in user, on pages that only run after sign-in (app.py sees to it)."""
    u = current_user()
    if u is None:
        raise RuntimeError("this page needs a signed-in user")
    return u


def may(s: Store, user: User, action: str) -> bool:
    """Whether the account may still do `action`, as it is in the store now, not as it was at sign-in.

    Widget callbacks run before the page is drawn again, with the user captured
    when it was last drawn; a role taken away or an account disabled since then
    must stop the very next action. Says why on the page when it does.
    """
    # kept answers move with any commit of any process but this one's notes (as the sign-in check's):
    # as fresh as a read, without opening the file in a save's callback (~30 ms on a 100k-run store)
    fresh = cached_past_notes(s, accounts.get_user, user.username)
    if fresh is not None and fresh.can(action):
        return True
    st.session_state["flash"] = ("error", "Your account can no longer do this; sign in again or ask an admin.")
    return False


def _oidc_enabled() -> bool:
    return os.environ.get("LIBRA_AUTH", "password") == "oidc"


def _cookie() -> str | None:
    try:
        return st.context.cookies.get(sessions.COOKIE)
    except Exception:  # noqa: BLE001 - no request context (bare runs in tests)
        return None


def _set_cookie(token: str | None) -> None:
    """Keep (or, with None, drop) the session cookie in the browser.

    Streamlit has no API that sets a cookie; a script frame on the app's own origin
    writes it (`page_script`). The token is JSON-quoted into the script, never spliced.
    """
    age = int(sessions.lifetime().total_seconds()) if token else 0
    page_script(
        "<script>const d = window.parent.document; "
        f"d.cookie = {json.dumps(sessions.COOKIE)} + '=' + encodeURIComponent({json.dumps(token or '')}) + "
        f"'; path=/; max-age={age}; SameSite=Strict' + "
        "(window.parent.location.protocol === 'https:' ? '; Secure' : '');</script>")


def _end(show: Callable[[str], object], message: str) -> None:
    for key in ("user", "token"):
        st.session_state.pop(key, None)
    st.session_state["cookie_write"] = None
    show(message)


def write_cookie() -> None:
    """Set or drop the session cookie when a sign-in or sign-out asked for it.

    Called last on the page (after the sidebar's own elements, or after the
    sign-in form): an element that comes and goes above others shifts their
    places, and the browser re-mounted a text box someone was typing into.
    """
    if "cookie_write" in st.session_state:
        _set_cookie(st.session_state.pop("cookie_write"))


def signed_in(s: Store) -> User | None:
    """The signed-in user, re-read so that a disabled account is signed out at once.

    After a reload the session is new: the cookie's token signs the user back in
    if it is still valid (not expired, not signed out, the account unchanged).
    """
    user = current_user()
    if user is None and not st.session_state.get("signed_out"):
        token = _cookie()
        back = sessions.resolve(s, token, _session_account)
        if back is not None:
            st.session_state["user"], st.session_state["token"] = back, token
            user = back
    if user is None:
        return None
    fresh = cached_past_notes(s, accounts.get_user, user.username)
    token = st.session_state.get("token")
    if fresh is None or fresh.disabled:
        _end(st.error, "Your account has been disabled.")
        return None
    if token is not None and sessions.resolve(s, token, _session_account) is None:
        # the role or password changed since sign-in, or the session was ended elsewhere
        _end(st.warning, "Your session has ended (the account changed or signed out elsewhere); sign in again.")
        return None
    st.session_state["user"] = fresh
    return fresh


def _session_account(s: Store, *key: str) -> tuple[User, datetime] | None:
    # Kept until any process commits (a sign-out elsewhere, a role changed, an account disabled):
    # every rerun asked the store four questions before drawing anything.
    return cached_past_notes(s, sessions.session_account, *key)


def sign_in(s: Store) -> None:
    """The sign-in form."""
    st.title("Libra")
    if _oidc_enabled():
        if getattr(st.user, "is_logged_in", False):
            found = accounts.user_by_email(s, str(st.user.get("email") or ""))
            if found and not found.disabled:
                _signed_in_as(s, found)
                st.rerun()
            st.error("Your identity provider account has no Libra account yet; ask an admin to add your email.")
        else:
            st.button("Sign in with your identity provider", on_click=st.login)
        return
    with st.form("sign-in"):
        username = st.text_input("Username", key="signin-user")
        password = st.text_input("Password", type="password", key="signin-pass")
        ok = st.form_submit_button("Sign in")
    if ok:
        client = _client()
        # by account, and by client where Streamlit knows the address (one guesser, many accounts)
        keys = (f"account:{username}",) + ((f"client:{client}",) if client else ())
        wait = _throttle().wait(*keys)
        if wait > 0:
            log.warning("sign-in refused while throttled: %s from %s", username, client or "an unknown address")
            st.error(f"Too many failed sign-ins; try again in {wait:.0f} seconds.")
            return
        user = accounts.authenticate(s, username, password)
        if user is None:
            _throttle().failed(*keys)
            log.warning("failed sign-in: %s from %s", username, client or "an unknown address")
            st.error("Wrong username or password, or the account is disabled.")
        else:
            _throttle().succeeded(*keys)
            _signed_in_as(s, user)
            st.rerun()
    if not accounts.any_users(s):
        st.info("No accounts yet: create the first admin with `libra user add NAME --role admin`.")


@st.cache_resource
def _throttle() -> Throttle:
    """One throttle for the app process: every session's sign-ins count against the same keys."""
    return Throttle()


def _client() -> str | None:
    """The client's address as Streamlit sees it (behind a proxy, the proxy's unless it forwards it)."""
    try:
        return str(st.context.ip_address) if st.context.ip_address else None
    except Exception:  # noqa: BLE001 - no request context (bare runs in tests)
        return None


def _signed_in_as(s: Store, user: User) -> None:
    token = sessions.issue(s, user)
    st.session_state.pop("signed_out", None)
    st.session_state.update(user=user, token=token, cookie_write=token)


def sign_out(s: Store) -> None:
    """End this session here and wherever its cookie was copied."""
    sessions.revoke(s, st.session_state.get("token"))
    st.session_state.clear()
    # the cookie is dropped on the next run; until then it no longer resolves (revoked)
    st.session_state.update(signed_out=True, cookie_write=None)
    if _oidc_enabled() and getattr(st.user, "is_logged_in", False):
        st.logout()
