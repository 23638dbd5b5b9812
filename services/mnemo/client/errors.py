"""Typed errors of the Mnemo client: each carries the HTTP status and the server's reason."""

from __future__ import annotations

from typing import Any

import httpx


class MnemoError(Exception):
    """Any failed request. `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, status: int, reason: str, body: Any = None) -> None:
        super().__init__(f"{status} {reason}" if status else reason)
        self.status = status
        self.reason = reason
        self.body = body


class APIConnectionError(MnemoError):
    """The server could not be reached (is `mnemo up` running?)."""


class BadRequestError(MnemoError):
    """400: the request was malformed."""


class AuthenticationError(MnemoError):
    """401: missing or invalid API key."""


class PermissionDeniedError(MnemoError):
    """403: the key may not do this."""


class NotFoundError(MnemoError):
    """404: no such agent / record for this tenant."""


class ConflictError(MnemoError):
    """409: already exists, or a concurrent change."""


class PayloadTooLargeError(MnemoError):
    """413: the request body is over the server's limit."""


class ValidationError(MnemoError):
    """422: invalid fields; `reason` names the field paths."""


class RateLimitError(MnemoError):
    """429: slow down; `retry_after` seconds as the server said."""

    def __init__(self, status: int, reason: str, body: Any = None, retry_after: float | None = None) -> None:
        super().__init__(status, reason, body)
        self.retry_after = retry_after


class ServerError(MnemoError):
    """5xx: the server failed."""


class StreamError(MnemoError):
    """A streamed turn ended with `turn_failed`, or the stream broke and could not be resumed."""


_BY_STATUS: dict[int, type[MnemoError]] = {
    400: BadRequestError, 401: AuthenticationError, 403: PermissionDeniedError, 404: NotFoundError,
    409: ConflictError, 413: PayloadTooLargeError, 422: ValidationError, 429: RateLimitError,
}


def reason_of(body: Any, fallback: str) -> str:
    """The human reason in an error body: FastAPI `detail` (text or field list) or `error.message`."""
    if isinstance(body, dict):
        detail = body.get("detail", body.get("error", body.get("message")))
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("detail") or detail
        if isinstance(detail, list):
            parts = []
            for item in detail:
                if isinstance(item, dict):
                    loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                    msg = item.get("msg", "")
                    parts.append(f"{loc}: {msg}" if loc else str(msg))
                else:
                    parts.append(str(item))
            return "; ".join(parts) or fallback
        if detail:
            return str(detail)
    if isinstance(body, str) and body.strip():
        return body.strip()[:500]
    return fallback


def error_from_response(resp: httpx.Response) -> MnemoError:
    try:
        body: Any = resp.json()
    except ValueError:
        body = resp.text
    reason = reason_of(body, resp.reason_phrase or "error")
    status = resp.status_code
    if status == 429:
        retry = resp.headers.get("retry-after")
        try:
            retry_after = float(retry) if retry else None
        except ValueError:
            retry_after = None
        return RateLimitError(status, reason, body, retry_after)
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else MnemoError)
    return cls(status, reason, body)
