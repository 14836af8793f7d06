"""The exceptions of grid-ops, and the mapping from the control plane's error answers to them.

Every error carries a message that says what was wrong and how to fix it. The classes also derive from the
matching builtin (``ValueError``, ``LookupError``, ``ConnectionError``, ``TimeoutError``) so that code written
against the original SDK, which raised builtins, keeps catching them. Stdlib only: the server imports it too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class GridError(Exception):
    """Base of every grid-ops error: ``message``, the HTTP ``status_code`` if any, and ``details``."""

    def __init__(self, message: str, *, status_code: int | None = None, details: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.details = [d for d in details if d]

    def __str__(self) -> str:
        extra = [d for d in self.details if d not in self.message]
        if not extra:
            return self.message
        return self.message + "".join(f"\n  - {d}" for d in extra)


class ValidationError(GridError, ValueError):
    """A request or argument is invalid (HTTP 400/422, or found before anything was sent)."""


class AuthenticationError(GridError, PermissionError):
    """The credentials are missing, wrong or expired (HTTP 401/403)."""


class NotFoundError(GridError, LookupError):
    """The resource does not exist, or belongs to someone else (HTTP 404)."""


class ConflictError(GridError):
    """The request clashes with existing state, e.g. a run name already taken (HTTP 409)."""


class ServerError(GridError):
    """The control plane failed while handling the request (HTTP 5xx)."""


class ControlPlaneUnavailable(GridError, ConnectionError):
    """The control plane cannot be reached (connection refused, DNS failure, timeout, not started)."""


class WaitTimeout(GridError, TimeoutError):
    """``wait()`` gave up before the run or experiment reached a terminal state."""


_BY_STATUS: dict[int, type[GridError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
}


def error_class(status: int) -> type[GridError]:
    """The error class for an HTTP status code (``GridError`` for codes without a dedicated class)."""
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, GridError)


def from_response(status: int, body: object) -> GridError:
    """Turn a non-2xx answer into the matching error, keeping the server's message and details.

    ``body`` is the decoded JSON (``{"code", "message", "details": [{"message"}]}``) or, when the answer
    was not JSON, its text.
    """
    message = ""
    details: list[str] = []
    if isinstance(body, Mapping):
        raw_message = body.get("message")
        if isinstance(raw_message, str):
            message = raw_message.strip()
        raw_details = body.get("details")
        if isinstance(raw_details, list):
            for item in raw_details:
                if isinstance(item, Mapping) and isinstance(item.get("message"), str):
                    details.append(item["message"])
                elif isinstance(item, str):
                    details.append(item)
        if not message and isinstance(body.get("detail"), str):  # FastAPI's default error shape
            message = body["detail"]
    elif isinstance(body, str):
        message = body.strip()[:500]
    if not message:
        message = details[0] if len(details) == 1 else f"the control plane answered HTTP {status}"
    return error_class(status)(message, status_code=status, details=details)
