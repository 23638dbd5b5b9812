"""Errors of the gateway: one exception for every failure, mapped to HTTP statuses and gRPC codes.

Statuses are named as in `mnemo.common.errors` (the gRPC status names); `HTTP_OF_CODE` is the one
table from a domain error of an internal service to the HTTP status of the REST API.
"""

from __future__ import annotations

import json
import math
from typing import Any

import grpc

from mnemo.common.errors import MnemoError

# Status of an internal service (domain error code) -> HTTP status of the REST API; others are 502.
HTTP_OF_CODE: dict[str, int] = {
    "INVALID_ARGUMENT": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "FAILED_PRECONDITION": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
HTTP_OF_GRPC: dict[grpc.StatusCode, int] = {grpc.StatusCode[name]: http for name, http in HTTP_OF_CODE.items()}

# HTTP status of an ApiError -> the status it has on the public gRPC API.
CODE_OF_HTTP: dict[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "FAILED_PRECONDITION",
    413: "RESOURCE_EXHAUSTED",
    422: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class ApiError(Exception):
    """An expected failure with an HTTP status and a reason for the client.

    `detail` is the REST body's "detail"; `text` the same as one line (the gRPC status details);
    `code` the gRPC status name (by default the one of `status`).
    """

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None,
                 code: str | None = None, text: str | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self._code = code
        self._text = text

    @property
    def code(self) -> str:
        if self._code is not None:
            return self._code
        return CODE_OF_HTTP.get(self.status, "UNKNOWN" if self.status >= 500 else "INVALID_ARGUMENT")

    @property
    def grpc_code(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.code]

    @property
    def text(self) -> str:
        if self._text is not None:
            return self._text
        return _one_line(self.detail)

    @classmethod
    def from_error(cls, err: MnemoError, what: str = "") -> ApiError:
        """The answer to a client when an internal service (`what`, e.g. "the memory service") failed."""
        code = err.code
        details = str(err) or code
        if code == "UNAVAILABLE":
            details = f"{what or 'an internal service'} is unavailable: {details}"
        status = HTTP_OF_CODE.get(code, 502)
        # A 429 always says when to come back; so does a 503 that knows.
        headers = {}
        if status == 429 or (status == 503 and err.retry_after):
            headers["Retry-After"] = retry_after_header(err.retry_after or 1.0)
        return cls(status, details, headers=headers, code=code if code in HTTP_OF_CODE else "UNAVAILABLE")


def retry_after_header(wait: float) -> str:
    """Seconds for a Retry-After header: whole, at least 1."""
    return str(max(1, math.ceil(wait)))


def _one_line(detail: Any) -> str:
    """A REST detail as text: FastAPI's list of field errors as "field: msg; ..."."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                parts.append(f"{loc}: {item.get('msg', '')}")
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return detail if isinstance(detail, str) else json.dumps(detail)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def invalid(field: str, msg: str, kind: str = "value_error", text: str | None = None) -> ApiError:
    """A 422 in FastAPI's shape, naming the field path (`text`: its gRPC wording, when another)."""
    return ApiError(422, [{"loc": ["body", *field.split(".")], "msg": msg, "type": kind}],
                    code="INVALID_ARGUMENT", text=text)


class BodyTooLarge(ApiError):
    """The request body is over the route's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes", code="RESOURCE_EXHAUSTED")
