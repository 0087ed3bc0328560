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


def resolve(store: Store, token: str | None) -> User | None:
    """The account a token signs in, or None: unsigned, expired, revoked, or the account changed."""
    claims = _claims(token)
    if claims is None:
        return None
    rows = store.execute("SELECT username FROM app_sessions WHERE session_id = ? AND revoked_at IS NULL "
                         "AND expires_at > ?", [str(claims["s"]), _now()])
    if not rows or rows[0][0] != claims["u"] or _fingerprint(store, str(claims["u"])) != claims["f"]:
        return None
    user = get_user(store, str(claims["u"]))
    return user if user is not None and not user.disabled else None


def revoke(store: Store, token: str | None) -> None:
    """End the session a token names (signing out); an unreadable token ends nothing."""
    claims = _claims(token)
    if claims is not None:
        store.write(lambda con: con.execute(
            "UPDATE app_sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
            [_now(), str(claims["s"])]))
