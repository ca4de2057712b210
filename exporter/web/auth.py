"""Basic auth against the web config's bcrypt hashes, with a cache so a scrape does not pay bcrypt's
cost every time.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt

#: bcrypt only reads this many bytes of a password (bcrypt >= 5 raises beyond it; Go truncates).
_BCRYPT_MAX_PASSWORD = 72


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes, caching the pairs that verified.

    bcrypt costs tens of milliseconds on purpose; a scraper sends the same pair every few seconds, so the
    pairs that verified are remembered (as keyed digests, not as passwords) in a small LRU and a repeat
    costs one HMAC. Unknown users still pay one bcrypt check, and user names are compared in constant
    time, so timing does not tell which users exist. bcrypt runs in a thread, one check at a time.
    """

    def __init__(self, users: Mapping[str, str], *, cache_size: int = 100) -> None:
        if not users:
            raise ValueError("no users")
        self._users = [
            (hashlib.sha256(name.encode("utf-8")).digest(), hashed.encode("ascii"))
            for name, hashed in users.items()
        ]
        # An unknown user is checked against a real hash, so that the check costs what a known user's does.
        self._decoy = self._users[0][1]
        self._key = secrets.token_bytes(32)
        self._verified: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._lock = asyncio.Lock()
        self.bcrypt_checks = 0

    def _find(self, user: bytes) -> bytes | None:
        digest = hashlib.sha256(user).digest()
        found = None
        for name_digest, hashed in self._users:  # no early exit: the same work whichever user matches
            if hmac.compare_digest(digest, name_digest):
                found = hashed
        return found

    def _cache_key(self, user: bytes, password: bytes) -> bytes:
        message = len(user).to_bytes(4, "big") + user + password
        return hmac.new(self._key, message, hashlib.sha256).digest()

    @staticmethod
    def _checkpw(password: bytes, hashed: bytes) -> bool:
        try:
            return bool(bcrypt.checkpw(password[:_BCRYPT_MAX_PASSWORD], hashed))
        except ValueError:  # e.g. a NUL byte in the password
            return False

    async def check(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the user name and password of a user."""
        credentials = parse_basic_auth(authorization)
        if credentials is None:
            return False
        user, password = credentials
        hashed = self._find(user)
        key = self._cache_key(user, password)
        if hashed is not None and key in self._verified:
            self._verified.move_to_end(key)
            return True
        async with self._lock:
            if hashed is not None and key in self._verified:
                return True  # verified by the request this one waited for
            self.bcrypt_checks += 1
            ok = await asyncio.to_thread(self._checkpw, password, hashed or self._decoy)
        if not ok or hashed is None:
            return False
        self._verified[key] = None
        while len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return True


def parse_basic_auth(authorization: str | None) -> tuple[bytes, bytes] | None:
    """(user, password) of an ``Authorization: Basic`` value, as Go's ``Request.BasicAuth`` reads it."""
    if authorization is None or authorization[:6].lower() != "basic ":
        return None
    try:
        decoded = base64.b64decode(authorization[6:].encode("latin-1"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password
