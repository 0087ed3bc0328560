"""Sign-ins that survive a reload: a signed, expiring token per session, ended on sign-out.

The app keeps the token in a cookie. It is signed with `LIBRA_SESSION_SECRET`
(set it to keep sessions across app restarts; without it each app process
signs with a random secret of its own, so a restart signs everyone out), and
it carries a fingerprint of the account's role, password and state: a role
change, a new password or a disabled account ends every session of that
account. Signing out revokes the session's row, so a copied cookie stops
working too. Signing is itsdangerous's, not hand-rolled HMAC.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

from libra.accounts import User, get_user
from traces.store import Store

COOKIE = "libra_session"
DEFAULT_HOURS = 12
_process_secret = secrets.token_urlsafe(32)


def lifetime() -> timedelta:
    try:
        return timedelta(hours=float(os.environ.get("LIBRA_SESSION_HOURS", DEFAULT_HOURS)))
    except ValueError:
        return timedelta(hours=DEFAULT_HOURS)


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(os.environ.get("LIBRA_SESSION_SECRET") or _process_secret, salt="libra-session")


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _fingerprint(store: Store, username: str) -> str | None:
    rows = store.execute("SELECT role, coalesce(password_hash, ''), disabled FROM users WHERE username = ?",
                         [username])
    if not rows:
        return None
    role, digest, disabled = rows[0]
    return hashlib.sha256(f"{role}\0{digest}\0{disabled}".encode()).hexdigest()[:24]


def issue(store: Store, user: User) -> str:
    """A new session for `user`; the token to keep in the cookie."""
    sid = secrets.token_urlsafe(18)
    now = _now()
    store.write(lambda con: con.execute(
        "INSERT INTO app_sessions (session_id, username, issued_at, expires_at) VALUES (?, ?, ?, ?)",
        [sid, user.username, now, now + lifetime()]))
    return _signer().dumps({"s": sid, "u": user.username, "f": _fingerprint(store, user.username)})


def _claims(token: str | None) -> dict[str, object] | None:
    if not token:
        return None
    try:
        claims = _signer().loads(token, max_age=int(lifetime().total_seconds()))
    except BadSignature:  # a forged, altered or expired token (SignatureExpired is one)
        return None
    return claims if isinstance(claims, dict) and {"s", "u", "f"} <= claims.keys() else None


def resolve(store: Store, token: str | None,
            lookup: Callable[[Store, str, str, str], tuple[User, datetime] | None] | None = None) -> User | None:
    """The account a token signs in, or None: unsigned, expired, revoked, or the account changed.

    `lookup` reads the session's row (default `session_account`); the app passes one that
    keeps the answer until the store changes, so a rerun asks the store nothing. The time
    is compared here, never kept: a session expires on time whatever was remembered.
    """
    claims = _claims(token)
    if claims is None:
        return None
    found = (lookup or session_account)(store, str(claims["s"]), str(claims["u"]), str(claims["f"]))
    return found[0] if found is not None and found[1] > _now() else None


def session_account(store: Store, session_id: str, username: str, fingerprint: str) -> tuple[User, datetime] | None:
    """The live account of an unrevoked session and when the session expires; None if the account changed."""
    rows = store.execute("SELECT username, expires_at FROM app_sessions WHERE session_id = ? AND revoked_at IS NULL",
                         [session_id])
    if not rows or rows[0][0] != username or _fingerprint(store, username) != fingerprint:
        return None
    user = get_user(store, username)
    return (user, rows[0][1]) if user is not None and not user.disabled else None


def revoke(store: Store, token: str | None) -> None:
    """End the session a token names (signing out); an unreadable token ends nothing."""
    claims = _claims(token)
    if claims is not None:
        store.write(lambda con: con.execute(
            "UPDATE app_sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            [_now(), str(claims["s"])]))
