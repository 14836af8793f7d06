"""Which ``http(s)`` URLs the control plane downloads datastore sources from (``datastores.http_allow`` and
``datastores.http_allow_public`` in the server config).

A control plane that others reach must not become a way into the network behind it (SSRF): by default it
downloads from public addresses only; loopback, private, link-local and other non-public addresses are
refused unless the host (``name``, ``name:port``, an address or a network such as ``10.0.0.0/8``) or a URL
prefix (``http://files.internal:8080/data/``) is listed in ``http_allow``. Every redirect is checked the
same way, and so is the address actually connected to, so a name that resolves differently later gains
nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from grid_ops.server.datastore_config import DatastoreSettings

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class UrlRefused(ValueError):
    """The URL may not be downloaded by this control plane; the message names the setting to change."""


def _host_port(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"{url!r} is not an http(s) URL with a host")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused(f"{url!r} has an invalid port") from exc
    return parts.scheme, parts.hostname.lower(), port


def _listed(url: str, host: str, port: int, addresses: list[Address], allow: tuple[str, ...]) -> bool:
    """Whether an entry of ``http_allow`` names this URL's host, one of its addresses, or a prefix of it."""
    scheme = urlsplit(url).scheme
    for entry in allow:
        entry = entry.strip()
        if "://" in entry:
            e = urlsplit(entry)
            try:
                e_port = e.port or (443 if e.scheme == "https" else 80)
            except ValueError:
                continue
            same_origin = (e.scheme, (e.hostname or "").lower(), e_port) == (scheme, host, port)
            if same_origin and urlsplit(url).path.startswith(e.path or "/"):
                return True
            continue
        name = entry.lower().strip("[]")
        if name in (host, f"{host}:{port}", f"[{host}]:{port}"):
            return True
        try:
            network = ipaddress.ip_network(name, strict=False)
        except ValueError:
            continue
        if addresses and all(a in network for a in addresses):
            return True
    return False


def _resolve(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return []  # unresolvable: the download fails and says so
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


def check_url(url: str, settings: DatastoreSettings, connected: str | None = None) -> None:
    """Raise ``UrlRefused`` unless ``settings`` allow downloading ``url`` (``connected``: the address a
    connection for it actually reached, checked instead of resolving the name)."""
    _scheme, host, port = _host_port(url)
    addresses = [ipaddress.ip_address(connected.split("%")[0])] if connected else _resolve(host, port)
    if _listed(url, host, port, addresses, settings.http_allow):
        return
    private = [a for a in addresses if not a.is_global]
    if private:
        raise UrlRefused(
            f"{url} points at {private[0]}, a loopback, private or link-local address, which this control plane "
            f"does not download from unless its server config allows it: add {host!r} (or a URL prefix) to "
            "datastores.http_allow"
        )
    if not settings.http_allow_public:
        raise UrlRefused(
            f"this control plane downloads datastore sources only from the hosts and URL prefixes in "
            f"datastores.http_allow of its server config, and {host!r} is not one of them; add it there"
        )
