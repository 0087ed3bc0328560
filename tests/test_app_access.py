"""Who may do what in the app: sign-in, its throttle, roles, and a role taken away from an open page."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from libra import accounts
from traces.annotation import feedback
from app_pages import APP, app_store, page_app  # noqa: I001 - the suite's own helpers


@pytest.fixture
def db(location, monkeypatch, demo_into):
    return app_store(location, monkeypatch, demo_into)


def test_sign_in_is_throttled_after_a_few_wrong_passwords(db, monkeypatch):
    from libra.throttle import Throttle
    from libra.web import session

    # The app's throttle on a clock that moves 0.3 s per guess: thirty guesses in nine seconds
    # however fast or slow this machine runs the page (under CI's load a page took over a second).
    now = [0.0]
    throttle = Throttle(clock=lambda: now[0])
    monkeypatch.setattr(session, "_throttle", lambda: throttle)
    at = AppTest.from_file(APP, default_timeout=60).run()
    refused = 0
    for _ in range(30):
        now[0] += 0.3
        at.text_input(key="signin-user").input("bo")
        at.text_input(key="signin-pass").input("a guess")
        at.button[0].click().run()
        refused += any("Too many failed sign-ins" in e.value for e in at.error)
    assert refused >= 15  # three free failures, then each try must wait (1 s, 2 s, 4 s, ...)
    now[0] += 0.3
    at.text_input(key="signin-pass").input("battery staple")  # the right one, while throttled
    at.button[0].click().run()
    assert "user" not in at.session_state and any("Too many" in e.value for e in at.error)


def test_throttle_backs_off_then_locks_out_and_forgets_on_success():
    from libra.throttle import Throttle

    now = [0.0]
    t = Throttle(free=3, first_wait=1.0, lock_after=6, lockout=900.0, window=600.0, clock=lambda: now[0])
    checked = 0
    for _ in range(30):  # thirty tries in ten seconds
        if t.wait("account:x") == 0:
            checked += 1
            t.failed("account:x")
        now[0] += 1 / 3
    assert checked <= 6  # 3 free, then after 1 s, 2 s and 4 s
    assert t.wait("account:x") > 0
    now[0] += 100
    assert t.wait("account:x") > 0  # six failures: locked for fifteen minutes
    now[0] += 900
    assert t.wait("account:x") == 0
    t.failed("account:y")
    t.succeeded("account:y")
    assert t.wait("account:y") == 0


def test_sign_in_with_password_and_roles(db):
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception and "Libra" in at.title[0].value
    at.text_input(key="signin-user").input("ana")
    at.text_input(key="signin-pass").input("wrong one")
    at.button[0].click().run()
    assert any("Wrong username or password" in e.value for e in at.error)
    at.text_input(key="signin-pass").input("correct horse")
    at.button[0].click().run()
    assert not at.exception
    assert at.session_state["user"].username == "ana"
    assert len(at.dataframe) == 1  # landed on the runs browser
    accounts.set_disabled(db, "ana", True)
    at.run()
    assert any("disabled" in e.value for e in at.error)


def test_a_role_taken_away_stops_the_next_action_of_an_open_page(db):
    run_id = db.scalar("SELECT run_id FROM runs WHERE agent = 'travel-concierge@v1' LIMIT 1")
    at = page_app("run_view", "ana", db, run_id).run()  # drawn while ana is an annotator
    accounts.set_role(db, "ana", "viewer")  # an admin demotes her; her page is still open
    at.text_area(key=f"draft-{run_id}").input("Saved after losing the role?")
    at.button(key=f"draft-{run_id}-save").click().run()
    feedback.flush(db)
    assert not db.scalar("SELECT count(*) FROM feedback WHERE text = 'Saved after losing the role?'")
    assert all("Saved after losing" not in f.text for f in feedback.for_run(db, run_id))
    accounts.set_role(db, "ana", "annotator")
    accounts.set_disabled(db, "ana", True)
    at.button(key=f"draft-{run_id}-save").click().run()
    feedback.flush(db)
    assert not db.scalar("SELECT count(*) FROM feedback WHERE text = 'Saved after losing the role?'")


def test_others_feedback_is_not_editable_and_viewers_cannot_write(db):
    run_id = db.scalar("SELECT run_id FROM runs LIMIT 1")
    feedback.add(db, run_id, "bo", "bo's note")
    at = page_app("run_view", "ana", db, run_id).run()
    assert not [t for t in at.text_area if t.key and t.key.startswith("edit-")]
    at = page_app("run_view", "vic", db, run_id).run()
    assert not at.exception and not [b for b in at.button if b.key and b.key.endswith("-save")]
    assert any("Viewers can read" in c.value for c in at.caption)


def test_accounts_page_for_admins_only(db):
    at = page_app("admin", "root", db).run()
    at.text_input(key="u-name").input("cy")
    at.text_input(key="u-pass").input("long enough pw")
    at.button[0].click().run()
    assert accounts.get_user(db, "cy").role == "annotator"
    at = page_app("admin", "ana", db).run()
    assert any("Only admins" in w.value for w in at.warning)
