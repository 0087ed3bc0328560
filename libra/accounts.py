"""Accounts and roles: admin, annotator, viewer. Passwords are hashed with Argon2."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from traces.store import Store

if TYPE_CHECKING:
    import pandas as pd

ROLES = ("admin", "annotator", "viewer")
PERMISSIONS = {"view": set(ROLES), "annotate": {"admin", "annotator"}, "admin": {"admin"}}
_NAME = re.compile(r"^[A-Za-z0-9_.@-]{2,64}$")
# LIBRA_CHEAP_PASSWORD_HASHING=1 (the test suite's setting) hashes with the smallest Argon2
# parameters: hashing at production cost in every test that makes an account took minutes.
# Hashes carry their parameters, so either kind verifies wherever it is read.
_hasher = (PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
           if os.environ.get("LIBRA_CHEAP_PASSWORD_HASHING") == "1" else PasswordHasher())
# Verifying against this when the user does not exist keeps timing alike for both failures.
_dummy: list[str] = []  # hashed on first login, not at import: every CLI command imports this


def _dummy_hash() -> str:
    if not _dummy:
        _dummy.append(_hasher.hash("not a real password"))
    return _dummy[0]


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    username: str
    role: str
    display_name: str | None = None
    email: str | None = None
    disabled: bool = False

    def can(self, action: str) -> bool:
        return not self.disabled and self.role in PERMISSIONS[action]


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def add_user(store: Store, username: str, password: str | None, role: str = "annotator",
             display_name: str | None = None, email: str | None = None) -> User:
    if not _NAME.match(username or ""):
        raise AccountError("a username is 2-64 letters, digits, or . _ @ -")
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    if password is not None and len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    if password is None and not email:
        raise AccountError("an account without a password signs in through the identity provider: give --email")
    digest = _hasher.hash(password) if password is not None else None
    with store.transaction() as con:
        if con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise AccountError(f"user {username!r} exists already")
        con.execute("INSERT INTO users VALUES (?, ?, ?, ?, ?, false, ?)",
                    [username, display_name, email, role, digest, _now()])
    return User(username, role, display_name, email)


def set_password(store: Store, username: str, password: str) -> None:
    if len(password) < 8:
        raise AccountError("a password needs at least 8 characters")
    with store.transaction() as con:
        if not con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise AccountError(f"no user {username!r}")
        con.execute("UPDATE users SET password_hash = ? WHERE username = ?", [_hasher.hash(password), username])


def set_disabled(store: Store, username: str, disabled: bool = True) -> None:
    with store.transaction() as con:
        if not con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise AccountError(f"no user {username!r}")
        con.execute("UPDATE users SET disabled = ? WHERE username = ?", [disabled, username])


def set_role(store: Store, username: str, role: str) -> None:
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}")
    with store.transaction() as con:
        if not con.execute("SELECT 1 FROM users WHERE username = ?", [username]).fetchone():
            raise AccountError(f"no user {username!r}")
        con.execute("UPDATE users SET role = ? WHERE username = ?", [role, username])


def any_users(store: Store) -> bool:
    return bool(store.scalar("SELECT count(*) FROM users"))


def get_user(store: Store, username: str) -> User | None:
    rows = store.execute("SELECT username, role, display_name, email, disabled FROM users WHERE username = ?",
                         [username])
    return User(*rows[0]) if rows else None


def user_by_email(store: Store, email: str) -> User | None:
    rows = store.execute("SELECT username, role, display_name, email, disabled FROM users "
                         "WHERE lower(email) = lower(?)", [email])
    return User(*rows[0]) if rows else None


def list_users(store: Store) -> pd.DataFrame:
    return store.df("SELECT username, role, display_name, email, disabled, created_at FROM users ORDER BY username")


def authenticate(store: Store, username: str, password: str) -> User | None:
    """The user when the password is right and the account enabled; None otherwise, without saying which."""
    rows = store.execute("SELECT password_hash FROM users WHERE username = ?", [username or ""])
    digest = rows[0][0] if rows and rows[0][0] else None
    try:
        _hasher.verify(digest or _dummy_hash(), password or "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if digest is None:
        return None
    user = get_user(store, username)
    if user is None or user.disabled:
        return None
    if _hasher.check_needs_rehash(digest):
        with store.transaction() as con:
            con.execute("UPDATE users SET password_hash = ? WHERE username = ?", [_hasher.hash(password), username])
    return user
