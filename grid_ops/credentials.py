"""Where the client finds its control plane and API key: environment first, then the credentials file.

``GRID_URL``, ``GRID_USER_ID`` and ``GRID_API_KEY`` win; otherwise ``$GRID_OPS_HOME/credentials.json``
(written by ``grid_ops.login()``). When neither names a URL the caller falls back to the embedded local
control plane (``grid_ops.embedded``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from grid_ops.errors import AuthenticationError, ValidationError

CREDENTIALS_FILE = "credentials.json"


@dataclass(frozen=True)
class Credentials:
    """A control plane URL and the API key of one user on it (the key is hidden from ``repr``)."""

    url: str
    user_id: str
    api_key: str = field(repr=False)


def grid_ops_home() -> Path:
    """The directory of grid-ops' local state: ``$GRID_OPS_HOME``, default ``~/.grid_ops``."""
    configured = os.environ.get("GRID_OPS_HOME")
    return Path(configured).expanduser().absolute() if configured else Path.home() / ".grid_ops"


def credentials_path(home: Path | None = None) -> Path:
    """The credentials file under ``home`` (default ``grid_ops_home()``)."""
    return (home or grid_ops_home()) / CREDENTIALS_FILE


def normalize_url(url: str, *, source: str = "url") -> str:
    """``url`` without a trailing slash, after checking that it is an http(s) URL with a host."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValidationError(
            f"{source} {url!r} is not a control plane URL: use the form http(s)://host[:port], "
            "e.g. http://127.0.0.1:8080"
        )
    return url.strip().rstrip("/")


def read_json_file(path: Path) -> dict[str, object]:
    """The JSON object stored in ``path``; a file that is not one is an error naming the file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValidationError(f"cannot read {path}: {exc}; delete it or fix its JSON") from exc
    if not isinstance(data, dict):
        raise ValidationError(f"{path} must hold a JSON object; delete it or fix it")
    return data


def write_private_json(path: Path, data: dict[str, object]) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2)
            handle.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _field(data: dict[str, object], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def load_credentials(home: Path | None = None) -> Credentials | None:
    """Credentials from the environment, else from the credentials file; ``None`` if no URL is configured.

    The user id and key come as a pair: both from the environment, or both from the file (only when the
    file is for the same URL). A URL without a key is an error that says how to provide one.
    """
    path = credentials_path(home)
    stored = read_json_file(path) if path.is_file() else {}
    env_url = os.environ.get("GRID_URL")
    stored_url = _field(stored, "url", "URL")
    url = env_url or stored_url
    if not url:
        return None
    url = normalize_url(url, source="GRID_URL" if env_url else f"the url in {path}")
    user_id, api_key = os.environ.get("GRID_USER_ID"), os.environ.get("GRID_API_KEY")
    file_matches = stored_url is None or stored_url.rstrip("/") == url
    if not (user_id and api_key) and file_matches:
        # the original SDK's file used UserID/APIKey; accept both spellings
        user_id, api_key = _field(stored, "userId", "UserID"), _field(stored, "apiKey", "APIKey")
    if not (user_id and api_key):
        raise AuthenticationError(
            f"no API key for the control plane at {url}: set GRID_USER_ID and GRID_API_KEY, "
            "or run `grid-ops login` (grid_ops.login(username=..., api_key=..., url=...))"
        )
    return Credentials(url=url, user_id=user_id, api_key=api_key)


def save_credentials(credentials: Credentials, home: Path | None = None) -> Path:
    """Store ``credentials`` in the credentials file (mode 0600) and return its path."""
    path = credentials_path(home)
    write_private_json(path, {"url": credentials.url, "userId": credentials.user_id, "apiKey": credentials.api_key})
    return path
