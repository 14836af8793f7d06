"""``/v1/auth``: log in with an API key for a bearer token, read the caller, log out, refresh."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from grid_ops.schemas import LoginRequest, LoginResponse, RefreshRequest, User, UserStatus
from grid_ops.server.auth import parse_duration
from grid_ops.server.errors import unauthorized
from grid_ops.server.state import SessionDep, StateDep, UserDep, wire_response

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/login", response_model=LoginResponse, response_model_exclude_none=True, response_model_by_alias=True)
def login(body: LoginRequest, state: StateDep, session: SessionDep) -> Response:
    seconds = parse_duration(body.duration)
    principal = state.auth.check_key(session, body.username, body.api_key)
    return wire_response(LoginResponse(token=state.auth.issue_token(session, principal.id, seconds)))


@router.get("/user", response_model=User)
async def get_user(user: UserDep) -> Response:
    return wire_response(
        User(
            id=user.id,
            username=user.username,
            team=user.team,
            status=UserStatus(completed_signup=True, installed_grid=True, verified=True),
        )
    )


def _bearer(header: str | None) -> str:
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("this call needs 'Authorization: Bearer <token>' from POST /v1/auth/login")
    return token.strip()


@router.post("/logout")
def logout(
    state: StateDep, session: SessionDep, user: UserDep, authorization: Annotated[str | None, Header()] = None
) -> dict[str, object]:
    state.auth.revoke_token(session, _bearer(authorization))
    return {}


@router.post("/refresh", response_model=LoginResponse)
def refresh(
    body: RefreshRequest,
    state: StateDep,
    session: SessionDep,
    user: UserDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Response:
    old = _bearer(authorization)
    seconds = parse_duration(body.duration)
    token = state.auth.issue_token(session, user.id, seconds)
    state.auth.revoke_token(session, old)
    return wire_response(LoginResponse(token=token))
