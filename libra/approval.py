"""Approving a metric set: only an admin account can, and the approval records who and when.

An approved set is what `libra score` and scheduled jobs bill runs with, so an
approval is checked against the accounts in the store at the moment it is
made: the password on the command line, the current account (not the one a
browser session signed in as) in the app.
"""

from __future__ import annotations

from libra import accounts
from metrics import sets
from traces.store import Store


class ApprovalRefused(PermissionError):
    pass


def _check_admin(user: accounts.User | None, username: str) -> accounts.User:
    if user is None or user.disabled:
        raise ApprovalRefused(f"{username!r} cannot approve: no such enabled account, or the wrong password")
    if not user.can("admin"):
        raise ApprovalRefused(f"{username!r} is a {user.role}; only an admin approves metric sets")
    return user


def approve(store: Store, set_id: str, version: int, username: str, password: str) -> accounts.User:
    """Approve as the admin whose password this is. ApprovalRefused otherwise; KeyError for no such set."""
    user = _check_admin(accounts.authenticate(store, username, password), username)
    sets.approve(store, set_id, version, user.username)
    return user


def approve_signed_in(store: Store, set_id: str, version: int, username: str) -> accounts.User:
    """Approve as a signed-in user, by their account as it is now (a role taken away since sign-in counts)."""
    user = _check_admin(accounts.get_user(store, username), username)
    sets.approve(store, set_id, version, user.username)
    return user


def check_admin(store: Store, username: str, password: str | None = None) -> accounts.User:
    """The admin account, by its password when one is given, else as it is now (a signed-in user)."""
    user = accounts.authenticate(store, username, password) if password is not None else accounts.get_user(store, username)
    return _check_admin(user, username)
