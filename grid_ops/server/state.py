"""What every request handler shares: config, sessions, scheduler, authenticator, signing secret."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Header, Request, Response
from sqlalchemy.orm import Session, sessionmaker

from grid_ops.schemas import WireModel
from grid_ops.server.auth import Authenticator, Principal
from grid_ops.server.config import ServerConfig
from grid_ops.server.models import Setting
from grid_ops.server.scheduler import Scheduler


@dataclass
class AppState:
    config: ServerConfig
    sessions: sessionmaker[Session]
    scheduler: Scheduler
    auth: Authenticator
    state_dir: Path
    secret: bytes

    def sign(self, purpose: str, value: str) -> str:
        """An unguessable token binding ``value`` to ``purpose`` (used in upload URLs)."""
        return hmac.new(self.secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def verify(self, purpose: str, value: str, token: str) -> bool:
        return hmac.compare_digest(self.sign(purpose, value), token)


def load_secret(sessions: sessionmaker[Session]) -> bytes:
    """The server's signing secret, created once and kept in the database."""
    with sessions.begin() as session:
        row = session.get(Setting, "signing_secret")
        if row is None:
            row = Setting(key="signing_secret", value=secrets.token_hex(32))
            session.add(row)
        return bytes.fromhex(row.value)


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.grid
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[Session]:
    """One transaction per request: committed on success, rolled back on any error.

    Declared async so that FastAPI runs it on the event loop instead of hopping to a worker thread;
    the database calls it wraps are short (SQLite on local disk, or a nearby PostgreSQL)."""
    with state.sessions.begin() as session:
        yield session
    if session.info.pop("wake", False):
        state.scheduler.wake(cancel=True)


def wake_after_commit(session: Session, needed: bool = True) -> None:
    """Ask for the scheduler to look again once this request's transaction has committed."""
    if needed:
        session.info["wake"] = True


# "function" scope: the transaction commits before the answer is sent, so a client that got a 2xx
# never reads the state from before its own change.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


async def current_user(
    state: StateDep, session: SessionDep, authorization: Annotated[str | None, Header()] = None
) -> Principal:
    return state.auth.authenticate(session, authorization)


UserDep = Annotated[Principal, Depends(current_user)]


def wire_response(model: WireModel) -> Response:
    """Serialise a wire model once, straight to JSON (camelCase, no nulls), skipping FastAPI's
    re-validation of the returned value: the model is already valid by construction."""
    return Response(content=model.model_dump_json(by_alias=True, exclude_none=True), media_type="application/json")
