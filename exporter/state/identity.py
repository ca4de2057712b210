"""Whose state file it is: the API host it was saved for and the token, identified without being stored.

The token is identified by an HMAC-SHA256 of it under a random salt stored in the file: the file says
whether it belongs to the token in use, and nothing about the token itself. A file saved for another host
or token is refused (:class:`~exporter.state.fileformat.StateFileError`): its data describe another
account, and its request log another rate limit.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from hashlib import sha256

from exporter.apitoken import ApiToken
from exporter.state.fileformat import StateFileError

SALT_BYTES = 16


def new_salt() -> bytes:
    """A fresh random salt: each save's hash differs, so files cannot be matched with one another."""
    return secrets.token_bytes(SALT_BYTES)


@dataclass(frozen=True, slots=True)
class StateIdentity:
    """Whose state it is: the API host and the token (held, never written: only a salted hash is)."""

    api_url: str
    token: ApiToken

    def token_hash(self, salt: bytes) -> str:
        return hmac.new(salt, self.token.get_secret_value().encode(), sha256).hexdigest()

    def check(self, *, api_url: str, token_salt: str, token_hash: str) -> None:
        """That a file saved for ``api_url`` with the token's ``token_hash`` under ``token_salt`` (hex)
        is this identity's; :class:`StateFileError` otherwise."""
        if api_url != self.api_url:
            raise StateFileError(f"it was saved for another API host ({api_url})")
        # Constant time: the comparison says nothing about how much of a guessed hash was right.
        if not hmac.compare_digest(token_hash, self.token_hash(bytes.fromhex(token_salt))):
            raise StateFileError("it was saved for another API token")

    def __repr__(self) -> str:
        return f"StateIdentity(api_url={self.api_url!r}, token=<hidden>)"


__all__ = ["SALT_BYTES", "StateIdentity", "new_salt"]
