"""Pagination as the API does it: ``per_page`` (max 100), ``page``, and an opaque ``cursor``.

Items are served in a deterministic but unsorted order: by a hash of (seed, list, item id). A cursor
names the last item served (keyset pagination), so a walk returns every item exactly once even when
items appear meanwhile, and it is signed so a made-up or damaged cursor is refused (400), not
misread.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 100
_CURSOR_KEY = b"northflank-simulator-cursor"


class PaginationError(ValueError):
    """A query parameter the API would refuse (answered with 400)."""


@dataclass(frozen=True)
class PageRequest:
    per_page: int = DEFAULT_PER_PAGE
    page: int | None = None
    cursor: str | None = None


def parse_page_request(
    query: Mapping[str, str], *, default_per_page: int = DEFAULT_PER_PAGE, max_per_page: int = MAX_PER_PAGE
) -> PageRequest:
    def integer(name: str) -> int | None:
        raw = query.get(name)
        if raw is None or raw == "":
            return None
        try:
            return int(raw)
        except ValueError:
            raise PaginationError(f"{name} must be an integer") from None

    per_page = integer("per_page")
    per_page = default_per_page if per_page is None else min(max(per_page, 1), max_per_page)
    page = integer("page")
    if page is not None and page < 1:
        raise PaginationError("page must be at least 1")
    cursor = query.get("cursor") or None
    return PageRequest(per_page=per_page, page=page, cursor=cursor)


def _sign(payload: str) -> str:
    return hashlib.blake2b(payload.encode(), key=_CURSOR_KEY, digest_size=6).hexdigest()


def encode_cursor(sort_key: str, item_id: str) -> str:
    payload = f"{sort_key}:{item_id}"
    raw = f"{payload}:{_sign(payload)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise PaginationError("invalid cursor") from None
    payload, _, signature = raw.rpartition(":")
    sort_key, sep, item_id = payload.partition(":")
    if not sep or signature != _sign(payload):
        raise PaginationError("invalid cursor")
    return sort_key, item_id


#: A cursor that points before the first item: serving it returns the list from its beginning.
START_CURSOR = encode_cursor("", "")


def sort_key(seed: int, scope: str, item_id: str) -> str:
    return hashlib.blake2b(f"{seed}|{scope}|{item_id}".encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Page:
    items: list[Any]
    has_next_page: bool
    cursor: str | None
    #: The cursor that would serve this very page again (the request's, or START_CURSOR).
    request_cursor: str

    def pagination(self) -> dict[str, Any]:
        body: dict[str, Any] = {"hasNextPage": self.has_next_page}
        if self.cursor is not None:
            body["cursor"] = self.cursor
        body["count"] = len(self.items)
        return body


T = TypeVar("T")


def paginate(
    items: Sequence[T], item_id: Callable[[T], str], request: PageRequest, *, seed: int, scope: str
) -> Page:
    """One page of ``items`` in the list's hash order (a cursor wins over ``page``)."""
    keyed = sorted(
        (((sort_key(seed, scope, item_id(it)), item_id(it)), it) for it in items), key=lambda pair: pair[0]
    )
    keys = [k for k, _ in keyed]
    if request.cursor is not None:
        first = bisect.bisect_right(keys, decode_cursor(request.cursor))
        request_cursor = request.cursor
    else:
        first = ((request.page or 1) - 1) * request.per_page
        request_cursor = START_CURSOR if first == 0 else encode_cursor(*keys[min(first, len(keys)) - 1])
    chunk = keyed[first : first + request.per_page]
    has_next = first + request.per_page < len(keyed)
    cursor = encode_cursor(*chunk[-1][0]) if has_next and chunk else None
    return Page(
        items=[it for _, it in chunk], has_next_page=has_next, cursor=cursor, request_cursor=request_cursor
    )


__all__ = [
    "DEFAULT_PER_PAGE",
    "MAX_PER_PAGE",
    "START_CURSOR",
    "Page",
    "PageRequest",
    "PaginationError",
    "decode_cursor",
    "encode_cursor",
    "paginate",
    "parse_page_request",
    "sort_key",
]
