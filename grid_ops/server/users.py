"""Managing users on the server's host: create one (printing its key once) or rotate a key."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from grid_ops.server.auth import create_user, rotate_key
from grid_ops.server.errors import ApiError
from grid_ops.server.models import User


def add_user(sessions: sessionmaker[Session], username: str, team: str | None = None) -> tuple[str, str]:
    """Create ``username``; return its id and API key."""
    with sessions.begin() as session:
        user, key = create_user(session, username, team)
        return user.id, key


def ensure_user_key(
    sessions: sessionmaker[Session], username: str, user_id: str | None, key: str | None
) -> tuple[str, str]:
    """Make sure ``username`` exists and ``key`` is its API key; otherwise create or re-key it.

    The embedded control plane uses this to keep the key in ``local.json`` valid across restarts.
    """
    from grid_ops.server.auth import hash_secret

    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            user, new_key = create_user(session, username)
            return user.id, new_key
        if key and user.id == user_id and user.api_key_hash == hash_secret(key):
            return user.id, key
        return user.id, rotate_key(session, user)


def list_users(sessions: sessionmaker[Session]) -> list[tuple[str, str, str | None]]:
    with sessions() as session:
        return [(u.id, u.username, u.team) for u in session.scalars(select(User).order_by(User.created_at))]


__all__ = ["ApiError", "add_user", "ensure_user_key", "list_users"]
