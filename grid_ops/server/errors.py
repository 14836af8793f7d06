"""API errors in the wire's error shape: ``{"code", "message", "details": [{"message"}]}``."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from grid_ops.schemas import ErrorBody, ErrorDetail

log = logging.getLogger("grid_ops.server")


class ApiError(Exception):
    """An error the API answers with; raising it inside a request rolls its transaction back."""

    def __init__(self, status: int, message: str, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.details = details if details is not None else [message]


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def not_found(kind: str, name: str) -> ApiError:
    return ApiError(404, f"{kind} {name!r} not found")


def conflict(message: str) -> ApiError:
    return ApiError(409, message)


def unauthorized(message: str) -> ApiError:
    return ApiError(401, message)


def error_response(status: int, message: str, details: list[str] | None = None) -> JSONResponse:
    body = ErrorBody(
        code=status,
        message=message,
        details=[ErrorDetail(message=d) for d in (details if details is not None else [message])],
    )
    headers = {"WWW-Authenticate": 'Basic realm="grid-ops"'} if status == 401 else None
    return JSONResponse(status_code=status, content=body.wire(), headers=headers)


def _describe_validation(exc: RequestValidationError) -> list[str]:
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        out.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return out


def install_handlers(app: FastAPI) -> None:
    """Make every error, ours or the framework's, answer in the wire's error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _describe_validation(exc)
        return error_response(400, "invalid request: " + "; ".join(details), details)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return error_response(500, f"internal error ({type(exc).__name__}); the server's log has the details")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))
