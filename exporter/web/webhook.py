"""The Northflank notification webhook: a push that says "look at this addon now".

Northflank's notification integrations (type ``RAW_WEBHOOK``) POST ``{"event": "<type>", "data": {...}}``
with the headers ``X-Northflank-Notification-Integration-Token`` (the integration's secret, verbatim),
``-Event-Id`` and ``-Event-Type``. The shape of ``data`` for ``addon-backup:*`` events is not documented, so
an event is only a *hint*: the ids found in it (:func:`find_ids`) ask the planner to read that addon's
backups at once; the API stays the only source of what the metrics say. An event in which no known addon
can be found still nudges the planner (:meth:`Hints.hint_due`), is counted, and its shape (the keys, never
the values) is logged once.

Served on its own listener (``--webhook.listen-address``) by :func:`create_webhook_app`: only
``POST /webhook`` exists there, so the internet-facing port serves nothing else. Every request is answered
at once (the hint is queued, never awaited): Northflank disables a webhook whose requests keep failing.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import stat
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from exporter.clock import Clock
from exporter.metrics import WEBHOOK_EVENTS, WEBHOOK_LAST_EVENT
from exporter.northflank.routes import valid_id
from exporter.web.connections import ThrottledLog

log = logging.getLogger(__name__)

#: The one path the webhook listener serves.
WEBHOOK_PATH = "/webhook"
#: A notification is a few hundred bytes; anything much bigger is not one.
MAX_BODY_BYTES = 64 * 1024
#: Event ids remembered for deduplication (Northflank retries a delivery it thinks failed).
DEDUPE_CAPACITY = 4096
#: Addons hinted at most per event: a backup event is about one addon.
MAX_ADDONS_PER_EVENT = 4
#: JSON nodes visited at most per event, and how deep (a 64 KiB body cannot hold much more).
MAX_NODES = 20_000
MAX_DEPTH = 32
#: A secret is a few dozen bytes; a longer file is not a secret file.
MAX_SECRET_BYTES = 1024
#: The secret and a CRLF at each end, at most.
_MAX_SECRET_FILE_BYTES = MAX_SECRET_BYTES + 4
#: Distinct unmatched shapes logged (each once); then one line per interval says more were seen.
MAX_SHAPES_LOGGED = 32

TOKEN_HEADER = "x-northflank-notification-integration-token"  # noqa: S105 - a header's name
EVENT_ID_HEADER = "x-northflank-notification-integration-event-id"
EVENT_TYPE_HEADER = "x-northflank-notification-integration-event-type"

#: The events that concern backups; anything else is counted as ``other``. A start says a backup began:
#: it is noted (a final event will follow) without a read; the others end a backup: read at once.
BACKUP_START = "addon-backup:start"
FINAL_EVENTS = ("addon-backup:success", "addon-backup:failure", "addon-backup:abort")
EVENT_TYPES = (BACKUP_START, *FINAL_EVENTS)
OTHER = "other"
EVENT_LABELS = (*EVENT_TYPES, OTHER)

#: Outcomes, the ``outcome`` label: accepted (a known addon hinted), duplicate (an event id seen before),
#: unauthorized (no or a wrong token), too_large (body over MAX_BODY_BYTES), invalid (not a JSON object),
#: unmatched (a backup event naming no known addon: the planner's due runs are moved forward instead),
#: ignored (not a backup event).
OUTCOMES = ("accepted", "duplicate", "unauthorized", "too_large", "invalid", "unmatched", "ignored")

_PROJECT_KEYS = frozenset(("projectid", "project_id"))
_ADDON_KEYS = frozenset(("addonid", "addon_id"))
#: Key names are logged (never values): only a safe, short spelling of them.
_KEY_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,40}")


class WebhookSecretError(ValueError):
    """The secret file cannot be used. The message never contains the secret."""


def _read_secret_file(path: Path) -> bytes:
    """The file's bytes (a secret and its line ends; no more). Opened without blocking and
    only when it is a regular file: a FIFO or a device given by mistake would otherwise hang the start or,
    on SIGHUP, the event loop that serves everything."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise WebhookSecretError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise WebhookSecretError(f"{path} is not a regular file")
        if info.st_size > _MAX_SECRET_FILE_BYTES:
            raise WebhookSecretError(f"{path} holds more than {MAX_SECRET_BYTES} bytes: not a webhook secret")
        return os.read(fd, _MAX_SECRET_FILE_BYTES + 1)
    except OSError as error:
        raise WebhookSecretError(f"cannot read {path}: {error.strerror or type(error).__name__}") from None
    finally:
        os.close(fd)


class WebhookSecret:
    """The integration's secret, read from a file (``path``, kept so that SIGHUP can read it again);
    never shown by ``repr``/``str``."""

    __slots__ = ("_value", "path")

    def __init__(self, value: bytes, *, path: Path | None = None) -> None:
        if not value:
            raise WebhookSecretError("the secret is empty")
        self._value = value
        self.path = path

    @classmethod
    def from_file(cls, path: Path) -> WebhookSecret:
        # Secrets written by `echo` or Kubernetes tooling end in a newline that is not part of them.
        value = _read_secret_file(path).strip(b"\r\n")
        if len(value) > MAX_SECRET_BYTES:
            raise WebhookSecretError(f"{path} holds more than {MAX_SECRET_BYTES} bytes: not a webhook secret")
        if not value:
            raise WebhookSecretError(f"{path} is empty")
        return cls(value, path=path)

    def same_as(self, other: WebhookSecret) -> bool:
        return hmac.compare_digest(self._value, other._value)

    def matches(self, given: str | None) -> bool:
        """Constant-time comparison (the time taken says nothing about how much of it was right)."""
        if given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), self._value)

    def get_secret_value(self) -> str:
        """The secret itself (as pydantic's SecretStr says it), for whoever must send it: the demo."""
        return self._value.decode("utf-8", "surrogateescape")

    def __repr__(self) -> str:
        return "WebhookSecret('**********')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class FoundIds:
    """What :func:`find_ids` found: valid ids (first seen first) and the key names the body had."""

    projects: tuple[str, ...]
    addons: tuple[str, ...]
    keys: tuple[str, ...]


def _id_of(value: object) -> str | None:
    """A valid id given directly (``"addonId": "x"``) or as an object's ``id`` (``"addon": {"id": "x"}``)."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if valid_id(value) and len(value) <= 128 else None  # type: ignore[arg-type,return-value]


def find_ids(document: object) -> FoundIds:
    """Walk any JSON value for project and addon ids: keys ``projectId``/``project_id``/``addonId``/
    ``addon_id`` (any case) with an id as value, and ``project``/``addon`` with an id or an object with
    an ``id``. Ids are checked with the pattern the client uses for path parameters. Never raises; visits
    at most MAX_NODES values, MAX_DEPTH deep."""
    projects: dict[str, None] = {}
    addons: dict[str, None] = {}
    keys: dict[str, None] = {}
    stack: list[tuple[object, int]] = [(document, 0)]
    visited = 0
    while stack and visited < MAX_NODES:
        node, depth = stack.pop()
        visited += 1
        if depth > MAX_DEPTH:
            continue
        if isinstance(node, dict):
            items = list(node.items())
            for key, value in items:
                if not isinstance(key, str):
                    continue
                if len(keys) < 64 and _KEY_NAME.fullmatch(key):
                    keys[key] = None
                lowered = key.lower()
                found: str | None = None
                if lowered in _PROJECT_KEYS or lowered in _ADDON_KEYS:
                    found = value if valid_id(value) and len(value) <= 128 else None
                elif lowered in ("project", "addon"):
                    found = _id_of(value)
                if found is not None:
                    target = projects if lowered.startswith("project") else addons
                    target.setdefault(found, None)
            # Reversed onto the stack: the first key is visited first (its ids come first).
            stack.extend((value, depth + 1) for _, value in reversed(items))
        elif isinstance(node, list):
            stack.extend((value, depth + 1) for value in reversed(node))
    return FoundIds(tuple(projects), tuple(addons), tuple(keys))


class Hints(Protocol):
    """What the receiver asks of the planner (:class:`~exporter.planner.Planner` is one)."""

    def hint(self, addon: str, project: str | None = None, *, read: bool = True) -> bool:
        """An event about ``addon``: read its backups at once (``read``) or note that it is pushed. Whether
        the addon is known (False: nothing was done)."""
        ...

    def hint_due(self) -> int:
        """An event naming no known addon: move the fast tier's due checks forward; how many moved."""
        ...


class NoHints:
    """For a scheduler that takes no hints: events are counted, nothing else happens."""

    def hint(self, addon: str, project: str | None = None, *, read: bool = True) -> bool:
        return False

    def hint_due(self) -> int:
        return 0


class WebhookReceiver:
    """Authenticates, bounds, deduplicates and counts webhook deliveries and turns them into hints."""

    def __init__(
        self,
        secret: WebhookSecret,
        hints: Hints,
        *,
        clock: Clock,
        max_body: int = MAX_BODY_BYTES,
        dedupe_capacity: int = DEDUPE_CAPACITY,
    ) -> None:
        self._secret = secret
        self.hints = hints
        self._clock = clock
        self._max_body = max_body
        self._capacity = dedupe_capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.counts: dict[tuple[str, str], int] = {(e, o): 0 for e in EVENT_LABELS for o in OUTCOMES}
        #: When the latest authenticated delivery arrived (None: none yet).
        self.last_event_at: float | None = None
        self._shapes_logged: set[tuple[str, ...]] = set()
        self._refused_log = ThrottledLog(log, logging.WARNING)
        self._shapes_log = ThrottledLog(log, logging.INFO)

    def __repr__(self) -> str:
        return f"WebhookReceiver(seen={len(self._seen)})"

    def reload_secret(self) -> bool:
        """SIGHUP: read ``--webhook.secret-file`` again; True when it holds a new secret, required of every
        delivery from now on. A file that cannot be used keeps the secret in use, with one error line that
        names the file, never the secret."""
        path = self._secret.path
        if path is None:  # given as a value (tests, the demo): nothing to read again
            return False
        try:
            secret = WebhookSecret.from_file(path)
        except WebhookSecretError as error:
            log.error("--webhook.secret-file: %s; keeping the webhook secret in use", error)
            return False
        if secret.same_as(self._secret):
            return False
        self._secret = secret
        log.info("--webhook.secret-file %s changed: deliveries need the new secret from now on", path)
        return True

    def _count(self, event: str, outcome: str) -> None:
        self.counts[(event, outcome)] += 1

    def _is_duplicate(self, key: str) -> bool:
        if key in self._seen:
            self._seen.move_to_end(key)
            return True
        self._seen[key] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return False

    async def _read_body(self, request: Request) -> bytes | None:
        """The body, or None when it is over the cap (announced or streamed: chunked bodies too)."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self._max_body:
            return None
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self._max_body:
                return None
        return bytes(body)

    async def handle(self, request: Request) -> Response:
        if not self._secret.matches(request.headers.get(TOKEN_HEADER)):
            self._count(OTHER, "unauthorized")
            client = request.client.host if request.client is not None else "unknown"
            self._refused_log("webhook: refused a delivery from %s without the integration's token", client)
            return PlainTextResponse("Unauthorized.\n", 401)
        body = await self._read_body(request)
        if body is None:
            self._count(OTHER, "too_large")
            return PlainTextResponse(f"Body over {self._max_body} bytes.\n", 413)
        self.last_event_at = self._clock.now()
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            document = None
        if not isinstance(document, dict):
            self._count(OTHER, "invalid")
            self._refused_log("webhook: a delivery was not a JSON object; ignored")
            return PlainTextResponse("Not a JSON object.\n", 400)
        event = self._event_type(document, request.headers.get(EVENT_TYPE_HEADER))
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        # Without an event id, the body itself identifies a retried delivery.
        key = event_id if 0 < len(event_id) <= 256 else "sha256:" + hashlib.sha256(body).hexdigest()
        if self._is_duplicate(key):
            self._count(event, "duplicate")
            return PlainTextResponse("Duplicate.\n", 200)
        outcome = self._hint(event, document)
        self._count(event, outcome)
        return PlainTextResponse("Accepted.\n", 202)

    @staticmethod
    def _event_type(document: dict[object, object], header: str | None) -> str:
        for candidate in (document.get("event"), header):
            if isinstance(candidate, str) and candidate in EVENT_TYPES:
                return candidate
        return OTHER

    def _hint(self, event: str, document: dict[object, object]) -> str:
        found = find_ids(document)
        known = False
        project = found.projects[0] if len(found.projects) == 1 else None
        for addon in found.addons[:MAX_ADDONS_PER_EVENT]:
            known |= self.hints.hint(addon, project, read=event != BACKUP_START)
        if known:
            return "accepted"
        if event == OTHER:
            return "ignored"
        moved = self.hints.hint_due()
        shape = found.keys
        if shape not in self._shapes_logged and len(self._shapes_logged) < MAX_SHAPES_LOGGED:
            self._shapes_logged.add(shape)
            log.warning(
                "webhook: an %s event named no known addon (its keys: %s); moved %d due backup checks "
                "forward instead. This shape is logged once.",
                event,
                ", ".join(shape) or "none",
                moved,
            )
        elif shape not in self._shapes_logged:
            self._shapes_log("webhook: more unmatched event shapes than are logged; see the events counter")
        return "unmatched"

    def app(self) -> Starlette:
        return create_webhook_app(self)


def create_webhook_app(receiver: WebhookReceiver) -> Starlette:
    """Only ``POST /webhook``: every other path is a 404, every other method a 405."""
    return Starlette(routes=[Route(WEBHOOK_PATH, receiver.handle, methods=["POST"])])


class WebhookCollector(Collector):
    """The receiver's counters and the time of its latest authenticated delivery."""

    def __init__(self, receiver: WebhookReceiver) -> None:
        self._receiver = receiver

    def describe(self) -> Iterable[Metric]:
        return ()

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            WEBHOOK_EVENTS.name.removesuffix("_total"), WEBHOOK_EVENTS.help, labels=WEBHOOK_EVENTS.labels
        )
        for (event, outcome), count in self._receiver.counts.items():
            events.add_metric([event, outcome], count)
        yield events
        last = GaugeMetricFamily(WEBHOOK_LAST_EVENT.name, WEBHOOK_LAST_EVENT.help)
        if self._receiver.last_event_at is not None:
            last.add_metric([], self._receiver.last_event_at)
        yield last


__all__ = [
    "BACKUP_START",
    "EVENT_LABELS",
    "EVENT_TYPES",
    "FINAL_EVENTS",
    "MAX_BODY_BYTES",
    "OUTCOMES",
    "WEBHOOK_PATH",
    "FoundIds",
    "Hints",
    "NoHints",
    "WebhookCollector",
    "WebhookReceiver",
    "WebhookSecret",
    "WebhookSecretError",
    "create_webhook_app",
    "find_ids",
]
