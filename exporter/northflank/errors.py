"""The exceptions the API client raises. Every one carries a bounded ``reason``, used as a metric label.

    NorthflankError                      any failure to read a listing
    ├── TransportError                   no usable HTTP response            reason: connection
    │   └── RequestTimeoutError                no answer in time                  reason: timeout
    ├── ApiError                         a non-2xx response                 reason: client_error
    │   ├── AuthError                    401: token missing or revoked      reason: auth
    │   ├── PermissionDeniedError        403: token lacks a permission      reason: permission
    │   ├── NotFoundError                404: resource gone                 reason: not_found
    │   ├── RateLimitedError             429 (after retries, or too long)   reason: rate_limited
    │   └── ServerError                  5xx (after retries)                reason: server_error
    └── InvalidResponseError             2xx whose body is not what the API documents
        │                                                                  reason: invalid_response
        └── InvalidIdentifierError       an id from a listing that cannot go into a request path
                                         (not ^[A-Za-z0-9-]+$): refused before any request is sent
                                                                           reason: invalid_response

Messages name the route template and what went wrong, never the token, a header, a query string or a
response body beyond the API's own short error message.
"""

from __future__ import annotations

REASONS: tuple[str, ...] = (
    "auth",
    "permission",
    "not_found",
    "rate_limited",
    "server_error",
    "client_error",
    "timeout",
    "connection",
    "invalid_response",
    # Not raised by the client: the poller's catch-all for a failure outside this taxonomy (a bug, an
    # exception from a library), so that no failed refresh goes uncounted.
    "unexpected",
)


class NorthflankError(Exception):
    reason = "error"

    def __init__(self, message: str, *, endpoint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.endpoint = endpoint

    def __str__(self) -> str:
        return f"{self.endpoint}: {self.message}" if self.endpoint else self.message


class TransportError(NorthflankError):
    reason = "connection"


class RequestTimeoutError(TransportError):
    reason = "timeout"


class ApiError(NorthflankError):
    reason = "client_error"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status_code: int,
        error_id: str | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status_code = status_code
        self.error_id = error_id

    def __str__(self) -> str:
        suffix = f" (error id {self.error_id})" if self.error_id else ""
        return f"{super().__str__()}: HTTP {self.status_code}{suffix}"


class AuthError(ApiError):
    reason = "auth"


class PermissionDeniedError(ApiError):
    reason = "permission"


class NotFoundError(ApiError):
    reason = "not_found"


class RateLimitedError(ApiError):
    reason = "rate_limited"

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status_code: int = 429,
        error_id: str | None = None,
        retry_at: float | None = None,
    ) -> None:
        super().__init__(message, endpoint=endpoint, status_code=status_code, error_id=error_id)
        #: Unix time before which the API should not be asked again, when it said so.
        self.retry_at = retry_at


class ServerError(ApiError):
    reason = "server_error"


class InvalidResponseError(NorthflankError):
    reason = "invalid_response"


class InvalidIdentifierError(InvalidResponseError):
    """An id the API listed that does not match its documented pattern: ``..`` as a project id would
    have the client read ``/v1/addons`` with the bearer token. The message names the parameter only."""


__all__ = [
    "REASONS",
    "ApiError",
    "AuthError",
    "InvalidIdentifierError",
    "InvalidResponseError",
    "NorthflankError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestTimeoutError",
    "ServerError",
    "TransportError",
]
