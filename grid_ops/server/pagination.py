"""Opaque page tokens for list endpoints (``pageToken`` in, ``nextPageToken`` out)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query

from grid_ops.server.errors import bad_request

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size(*values: int | None) -> int:
    """The first page size given (``pageSize`` or ``limit``), bounded."""
    for v in values:
        if v is not None:
            if v < 0:
                raise bad_request(f"pageSize must not be negative, got {v}")
            return min(v or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    return DEFAULT_PAGE_SIZE


def decode(token: str | None) -> int:
    """The offset a page token stands for (0 for none)."""
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode() + b"==").decode()
        kind, _, value = text.partition(":")
        offset = int(value)
        if kind != "o" or offset < 0:
            raise ValueError(text)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_request(f"invalid pageToken {token!r}: pass back the nextPageToken of a previous answer") from exc
    return offset


def encode(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Page:
    """Where a list answer starts and how long it may be."""

    offset: int
    size: int


async def paging(
    page_token: Annotated[str | None, Query(alias="pageToken")] = None,
    page_size_: Annotated[int | None, Query(alias="pageSize")] = None,
    limit: Annotated[int | None, Query(description="the same as pageSize (the wire's older name)")] = None,
) -> Page:
    """The ``pageToken``, ``pageSize`` and ``limit`` query parameters every list endpoint takes."""
    return Page(offset=decode(page_token), size=page_size(page_size_, limit))


PageDep = Annotated[Page, Depends(paging)]
