"""Sign-ins that survive a reload: signed, expiring, ended on sign-out and on account changes."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from libra import accounts, sessions
from traces.store import Store


@pytest.fixture
def store(tmp_path):
    s = Store(str(tmp_path / "s.duckdb"))
    accounts.add_user(s, "ann", "pw-123456", "annotator")
    accounts.add_user(s, "bob", "pw-123456", "annotator")
    return s


def test_a_token_signs_its_user_back_in_until_it_is_revoked(store):
    ann = accounts.get_user(store, "ann")
    token = sessions.issue(store, ann)
    assert sessions.resolve(store, token) == ann
    other = sessions.issue(store, ann)  # a second browser: its own session
    sessions.revoke(store, token)
    assert sessions.resolve(store, token) is None
    assert sessions.resolve(store, other) == ann


@pytest.mark.parametrize("change", ["role", "password", "disabled"])
def test_an_account_change_ends_its_sessions_and_no_one_elses(store, change):
    token, bobs = (sessions.issue(store, accounts.get_user(store, u)) for u in ("ann", "bob"))
    {"role": lambda: accounts.set_role(store, "ann", "viewer"),
     "password": lambda: accounts.set_password(store, "ann", "another-pw-1"),
     "disabled": lambda: accounts.set_disabled(store, "ann")}[change]()
    assert sessions.resolve(store, token) is None
    assert sessions.resolve(store, bobs).username == "bob"


def test_forged_altered_foreign_and_expired_tokens_sign_no_one_in(store, monkeypatch):
    token = sessions.issue(store, accounts.get_user(store, "ann"))
    payload, _, sig = token.rpartition(".")
    assert sessions.resolve(store, payload + "." + ("A" if sig[0] != "A" else "B") + sig[1:]) is None
    body, stamp, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    as_bob = base64.urlsafe_b64encode(json.dumps({**claims, "u": "bob"}).encode()).decode().rstrip("=")
    for bad in (None, "", "not-a-token", f"{as_bob}.{stamp}.{sig}"):
        assert sessions.resolve(store, bad) is None
    monkeypatch.setenv("LIBRA_SESSION_SECRET", "another app's secret")
    assert sessions.resolve(store, token) is None
    monkeypatch.delenv("LIBRA_SESSION_SECRET")
    assert sessions.resolve(store, token) is not None
    monkeypatch.setattr(sessions, "lifetime", lambda: timedelta(seconds=-1))
    assert sessions.resolve(store, token) is None


def test_a_remembered_session_still_expires_on_time(store, monkeypatch):
    token = sessions.issue(store, accounts.get_user(store, "ann"))
    memo: dict = {}
    asked = []

    def remembered(s, *key):  # what the app's cache does: the row kept, the time compared on every call
        if key not in memo:
            asked.append(key)
            memo[key] = sessions.session_account(s, *key)
        return memo[key]

    assert sessions.resolve(store, token, remembered).username == "ann"
    assert sessions.resolve(store, token, remembered).username == "ann"
    assert len(asked) == 1
    later = sessions._now() + sessions.lifetime() + timedelta(minutes=1)
    monkeypatch.setattr(sessions, "_now", lambda: later)
    assert sessions.resolve(store, token, remembered) is None
    assert len(asked) == 1
