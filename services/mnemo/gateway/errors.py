"""Errors of the gateway: one exception for every failure, mapped to HTTP statuses and gRPC codes."""

from __future__ import annotations

from typing import Any

import grpc

# gRPC status of an internal service -> HTTP status of the REST API.
HTTP_OF_GRPC: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}

GRPC_OF_HTTP: dict[int, grpc.StatusCode] = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    409: grpc.StatusCode.FAILED_PRECONDITION,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    422: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    501: grpc.StatusCode.UNIMPLEMENTED,
    503: grpc.StatusCode.UNAVAILABLE,
    504: grpc.StatusCode.DEADLINE_EXCEEDED,
}


class ApiError(Exception):
    """An expected failure with an HTTP status and a reason for the client."""

    def __init__(self, status: int, detail: Any, headers: dict[str, str] | None = None,
                 grpc_code: grpc.StatusCode | None = None) -> None:
        super().__init__(str(detail))
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        self._grpc_code = grpc_code

    @property
    def grpc_code(self) -> grpc.StatusCode:
        if self._grpc_code is not None:
            return self._grpc_code
        return GRPC_OF_HTTP.get(self.status, grpc.StatusCode.UNKNOWN if self.status >= 500
                                else grpc.StatusCode.INVALID_ARGUMENT)

    @classmethod
    def from_rpc(cls, exc: grpc.aio.AioRpcError, what: str = "") -> ApiError:
        code = exc.code()
        status = HTTP_OF_GRPC.get(code, 502)
        details = exc.details() or code.name
        if code == grpc.StatusCode.UNAVAILABLE:
            details = f"{what or 'an internal service'} is unavailable: {details}"
        return cls(status, details, grpc_code=code if code in HTTP_OF_GRPC else grpc.StatusCode.UNAVAILABLE)


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found")


def invalid(field: str, msg: str, kind: str = "value_error") -> ApiError:
    """A 422 in FastAPI's shape, naming the field path."""
    return ApiError(422, [{"loc": ["body", *field.split(".")], "msg": msg, "type": kind}],
                    grpc_code=grpc.StatusCode.INVALID_ARGUMENT)


class BodyTooLarge(ApiError):
    """The request body is over the route's limit (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes",
                         grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED)
