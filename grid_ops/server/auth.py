"""Users, API keys and bearer tokens. Keys and tokens are random and stored as SHA-256 hashes.

API keys carry 256 bits of randomness, so a fast hash is safe (as with GitHub tokens) and keeps
authentication off the latency budget; a small in-memory cache maps a verified hash to its user.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from grid_ops.server.db import as_utc, utcnow
from grid_ops.server.errors import ApiError, unauthorized
from grid_ops.server.ids import new_id
from grid_ops.server.models import Token, User

_USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")
DEFAULT_TOKEN_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    id: str
    username: str
    team: str | None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> str:
    return secrets.token_urlsafe(32)


def create_user(session: Session, username: str, team: str | None = None) -> tuple[User, str]:
    """Create a user and return it with its API key (shown once; only its hash is stored)."""
    if not _USERNAME.match(username):
        raise ApiError(400, f"invalid user name {username!r}: use letters, digits, '_', '.', '@', '-'")
    if session.scalar(select(User).where(User.username == username)) is not None:
        raise ApiError(409, f"user {username!r} already exists")
    key = new_api_key()
    user = User(id=new_id(), username=username, api_key_hash=hash_secret(key), team=team, created_at=utcnow())
    session.add(user)
    session.flush()
    return user, key


def rotate_key(session: Session, user: User) -> str:
    """Give ``user`` a new API key; the old one stops working."""
    key = new_api_key()
    user.api_key_hash = hash_secret(key)
    return key


class Authenticator:
    """Checks Basic (user id or name : API key) and Bearer credentials against the store."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], Principal] = {}
        self._lock = threading.Lock()

    def forget(self) -> None:
        with self._lock:
            self._cache.clear()

    def authenticate(self, session: Session, header: str | None) -> Principal:
        if not header:
            raise unauthorized(
                "missing credentials: send 'Authorization: Basic base64(user_id:api_key)' "
                "(set GRID_USER_ID and GRID_API_KEY, or run 'grid-ops login')"
            )
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            return self._basic(session, value.strip())
        if scheme.lower() == "bearer":
            return self._bearer(session, value.strip())
        raise unauthorized(f"unsupported authorization scheme {scheme!r}: use Basic or Bearer")

    def _basic(self, session: Session, value: str) -> Principal:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise unauthorized("malformed Basic credentials: expected base64 of 'user_id:api_key'") from exc
        user_ref, sep, key = decoded.partition(":")
        if not sep or not user_ref or not key:
            raise unauthorized("malformed Basic credentials: expected base64 of 'user_id:api_key'")
        return self.check_key(session, user_ref, key)

    def check_key(self, session: Session, user_ref: str, key: str) -> Principal:
        digest = hash_secret(key)
        with self._lock:
            cached = self._cache.get((user_ref, digest))
        if cached is not None:
            return cached
        user = session.scalar(select(User).where((User.id == user_ref) | (User.username == user_ref)))
        if user is None or not hmac.compare_digest(user.api_key_hash, digest):
            raise unauthorized(
                f"wrong user id or API key for {user_ref!r}: check GRID_USER_ID and GRID_API_KEY "
                "(a server's admin creates keys with 'grid-ops users create NAME')"
            )
        principal = Principal(id=user.id, username=user.username, team=user.team)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[(user_ref, digest)] = principal
        return principal

    def _bearer(self, session: Session, token: str) -> Principal:
        row = session.get(Token, hash_secret(token))
        if row is None:
            raise unauthorized("unknown or revoked token: log in again with POST /v1/auth/login")
        expires = as_utc(row.expires_at)
        if expires is None or expires <= utcnow():
            raise unauthorized("the token has expired: log in again with POST /v1/auth/login")
        user = session.get(User, row.user_id)
        if user is None:
            raise unauthorized("the token's user no longer exists")
        return Principal(id=user.id, username=user.username, team=user.team)

    def issue_token(self, session: Session, user_id: str, seconds: int = DEFAULT_TOKEN_SECONDS) -> str:
        token = secrets.token_urlsafe(32)
        session.add(
            Token(
                token_hash=hash_secret(token),
                user_id=user_id,
                expires_at=utcnow() + timedelta(seconds=seconds),
            )
        )
        return token

    def revoke_token(self, session: Session, token: str) -> None:
        row = session.get(Token, hash_secret(token))
        if row is not None:
            session.delete(row)


def parse_duration(text: str | None) -> int:
    """Seconds from a duration like ``"3600s"``, ``"90m"``, ``"24h"`` (the login request's field)."""
    if not text:
        return DEFAULT_TOKEN_SECONDS
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise ApiError(400, f"invalid duration {text!r}: use a number of seconds or e.g. '90m', '24h'")
    factor = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    seconds = int(float(m.group(1)) * factor)
    if seconds <= 0 or seconds > 30 * 86400:
        raise ApiError(400, f"invalid duration {text!r}: must be between 1s and 30d")
    return seconds
