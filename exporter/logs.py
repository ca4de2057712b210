"""Log output as Go exporters write it: logfmt by default, JSON on request, one event per line.

Context goes in fields, not in the message: ``log.warning("refresh failed", extra={"resource": "backups",
"project": p, "addon": a, "reason": "auth"})`` writes ``... msg="refresh failed" resource=backups
project=p addon=a reason=auth`` (or JSON keys), so that a log pipeline can filter on them. Field values
come from the API too (ids, names): every character that could end a line or fake a field is escaped.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
from datetime import UTC, datetime

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn", logging.ERROR: "error"}


#: The attributes every LogRecord has: any other attribute came from ``extra=`` and is a field.
#: (uvicorn adds ``color_message``: the message again, with terminal colour codes.)
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {
    "message",
    "asctime",
    "color_message",
}
#: Field names are ours (``extra=`` keys in the code), but a library may set odd attributes too.
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,40}")
#: Loggers shown under a name that says what they are: uvicorn serves the exporter's HTTP side.
_LOGGER_NAMES = {"uvicorn": "http", "uvicorn.error": "http", "uvicorn.access": "http.access"}

FieldValue = str | int | float | bool


def logger_name(name: str) -> str:
    return _LOGGER_NAMES.get(name, name)


def _field_value(value: object) -> FieldValue:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        # JSON has no NaN or infinity; logfmt readers expect numbers as Go writes them.
        return value if math.isfinite(value) else str(value)
    return str(value)


def _fields(record: logging.LogRecord) -> dict[str, FieldValue]:
    fields: dict[str, FieldValue] = {
        "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
        "level": _NAMES.get(record.levelno, record.levelname.lower()),
        "logger": logger_name(record.name),
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key in _RECORD_ATTRIBUTES or key in fields or key == "err" or value is None:
            continue
        if _FIELD_NAME.fullmatch(key):
            fields[key] = _field_value(value)
    if record.exc_info:
        fields["err"] = logging.Formatter().formatException(record.exc_info)
    return fields


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(char: str) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    return _printable(char)


def _printable(char: str) -> str:
    """The character, or its JSON escape when it is not printable: control characters, line and paragraph
    separators, NEL, lone surrogates: nothing a reader could split a line on, nor fail to encode. JSON's
    escapes (surrogate pairs beyond U+FFFF) are what go-logfmt's decoder reads too."""
    if char == " " or char.isprintable():
        return char
    code = ord(char)
    if code > 0xFFFF:
        code -= 0x10000
        return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"
    return f"\\u{code:04x}"


def _logfmt_value(value: FieldValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if value and value.isprintable() and not any(c in value for c in ' "=\\'):
        return value
    return '"' + "".join(_escape(c) for c in value) + '"'


class LogfmtFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = json.dumps(_fields(record), ensure_ascii=False)
        # json.dumps leaves U+2028, NEL, DEL and lone surrogates as they are: a line splitter would cut
        # there and UTF-8 cannot encode a surrogate. Outside strings JSON has only printable ASCII.
        return text if text.isprintable() else "".join(_printable(c) for c in text)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[level])
    # httpx logs every request URL at INFO; our own request metrics say the same without the noise.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
