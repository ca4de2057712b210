"""The body of an API error, read only for the API's short message and error id, with the token redacted.

The API may echo the request, token included, in any letter case: every field of the error body that is
kept is redacted, capped and put on one line; markup and anything that does not look like an error id are
dropped. ``details`` is not even parsed.
"""

from __future__ import annotations

import json
import re

from pydantic import ValidationError

from exporter.northflank.models import ApiErrorBody

#: The API's own error message is quoted in exceptions up to this many characters.
MAX_API_MESSAGE_CHARS = 200
MAX_ERROR_ID_CHARS = 64

_HTML = re.compile(r"<\s*[a-zA-Z!/?]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ERROR_ID = re.compile(r"[A-Za-z0-9._:-]+")


def parse_error_body(body: bytes | None) -> ApiErrorBody | None:
    """``{"error": {...}}`` when the body is that; empty, HTML or any other JSON gives ``None``."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict) or not isinstance(document.get("error"), dict):
        return None
    try:
        return ApiErrorBody.model_validate(document["error"])
    except ValidationError:
        pass
    return None


def _redact(text: str, secret: str) -> str:
    """``text`` with every occurrence of ``secret`` replaced, whatever its letter case."""
    if not secret:
        return text
    return re.sub(re.escape(secret), "[redacted]", text, flags=re.IGNORECASE)


def clean_message(message: str | None, secret: str) -> str | None:
    """The API's own message, on one line, capped, without markup or the token (in any letter case)."""
    if not message:
        return None
    if _HTML.search(message):
        return None
    message = _redact(message, secret)
    # Again once on one line: a token split by a control character is joined back by a space, not by
    # itself, but what the normalisation makes of the text is checked, not assumed.
    text = _redact(" ".join(_CONTROL.sub(" ", message).split()), secret)
    if len(text) > MAX_API_MESSAGE_CHARS:
        text = text[: MAX_API_MESSAGE_CHARS - 1] + "…"
    return text or None


def clean_error_id(error_id: str | None, secret: str) -> str | None:
    """The API's error id when it looks like one: short, plain, and not the token (in any letter case)."""
    if not error_id or len(error_id) > MAX_ERROR_ID_CHARS or not _ERROR_ID.fullmatch(error_id):
        return None
    if secret and secret.casefold() in error_id.casefold():
        return None
    return error_id


__all__ = [
    "MAX_API_MESSAGE_CHARS",
    "MAX_ERROR_ID_CHARS",
    "clean_error_id",
    "clean_message",
    "parse_error_body",
]
