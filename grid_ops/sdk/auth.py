"""``login``: check an API key against a control plane and store it in the credentials file."""

from __future__ import annotations

import os

from grid_ops.client import GridClient, get_client, set_client
from grid_ops.credentials import Credentials, credentials_path, read_json_file, save_credentials
from grid_ops.errors import ValidationError


def login(
    username: str | None = None,
    user_id: str | None = None,
    api_key: str | None = None,
    *,
    url: str | None = None,
) -> bool:
    """Log in with your grid-ops credentials for this process and later ones.

    With ``api_key`` and ``username`` (or ``user_id``), the key is verified against the control plane at
    ``url`` (default ``$GRID_URL``, else the URL already stored) through ``/v1/auth/login``, and written
    to ``$GRID_OPS_HOME/credentials.json`` (mode 0600). Without arguments, the configured credentials
    (environment, file, or the local control plane) are checked. ``GRID_USER_ID``/``GRID_API_KEY`` in the
    environment still take precedence over the file in other processes.
    """
    if not api_key and not username and not user_id:
        set_client(None)
        get_client().get_user()
        return True
    if not api_key or not (username or user_id):
        raise ValidationError(
            "login needs api_key together with username or user_id, e.g. login(username='me', api_key='...')"
        )
    target = url or os.environ.get("GRID_URL") or _stored_url()
    if not target:
        raise ValidationError(
            "login needs the control plane URL, e.g. https://grid.example.com: pass it as url (--url on the "
            "command line) or set GRID_URL "
            "(the local control plane needs no login)"
        )
    with GridClient(target) as anonymous:
        token = anonymous.login(username or user_id or "", api_key)
        user = anonymous.get_user(token)
    credentials = Credentials(url=anonymous.url, user_id=user.id, api_key=api_key)
    save_credentials(credentials)
    set_client(GridClient.from_credentials(credentials))
    return True


def _stored_url() -> str | None:
    """The URL in the credentials file, if there is one."""
    path = credentials_path()
    url = read_json_file(path).get("url") if path.is_file() else None
    return url if isinstance(url, str) and url else None
