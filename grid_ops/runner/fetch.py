"""GET requests of the runner to the control plane's runner endpoints (standard library only).

Requests carry the experiment's ``X-Grid-Runner-Token``, never go through a proxy for this machine's
own addresses, and are retried for a while when the control plane cannot be reached (it may be
restarting); a 4xx answer is final.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
RETRY_SECONDS = 60.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class FetchError(Exception):
    """The control plane refused the request, or could not be reached in time; the message says why."""


def open_url(url: str, timeout: float, headers: dict[str, str] | None = None, data: bytes | None = None) -> Any:
    """GET ``url`` (POST ``data`` if given); never through a proxy for this machine's own addresses."""
    request = urllib.request.Request(url, data=data, headers=headers or {})
    host = urllib.parse.urlsplit(url).hostname or ""
    if host in _LOOPBACK:
        return _NO_PROXY.open(request, timeout=timeout)
    return urllib.request.urlopen(request, timeout=timeout)


def experiment_endpoint(env: dict[str, str], path: str) -> tuple[str, str]:
    """The URL of the experiment's runner endpoint ``path`` and the token to send with it."""
    url, token, exp = env.get("GRID_RUNNER_URL"), env.get("GRID_RUNNER_TOKEN"), env.get("GRID_EXPERIMENT_ID")
    if not url or not token or not exp:
        raise FetchError("the control plane cannot be reached: GRID_RUNNER_URL or GRID_RUNNER_TOKEN is unset")
    return f"{url.rstrip('/')}/v1/runner/experiments/{exp}/{path}", token


def get(url: str, token: str, what: str, read: Callable[[Any], T], seconds: float = RETRY_SECONDS) -> T:
    """GET ``url`` and return ``read(answer)``; retry for ``seconds`` while the control plane is unreachable
    or answers 5xx (``read`` must start over on each attempt). ``what`` names the thing in messages."""
    deadline = time.monotonic() + seconds
    delay = 0.2
    while True:
        try:
            with open_url(url, 30, {"X-Grid-Runner-Token": token}) as answer:
                return read(answer)
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            with contextlib.suppress(ValueError, AttributeError):
                detail = json.loads(detail).get("message") or detail
            if 400 <= exc.code < 500:
                raise FetchError(f"the control plane refused {what} ({exc.code}): {detail}") from None
            reason = f"HTTP {exc.code}: {detail[:300]}"
        except (OSError, ValueError) as exc:
            reason = str(getattr(exc, "reason", exc))
        if time.monotonic() > deadline:
            raise FetchError(f"{what} could not be read from the control plane: {reason}")
        time.sleep(delay)
        delay = min(5.0, delay * 2)
