"""Typed errors of model calls, each mapped to the gRPC status the callers rely on."""

from __future__ import annotations

import grpc


class LLMError(Exception):
    """A model call failed; `code` is the gRPC status to answer with."""

    code = grpc.StatusCode.INTERNAL
    kind = "internal"

    def __init__(self, message: str, *, retry_after: float | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.retryable = retryable   # worth another attempt (429, 408, 409, 5xx, connection failures)


class InvalidRequest(LLMError):
    code, kind = grpc.StatusCode.INVALID_ARGUMENT, "invalid_request"


class ContextOverflow(LLMError):
    code, kind = grpc.StatusCode.OUT_OF_RANGE, "context_length_exceeded"


class RateLimited(LLMError):
    code, kind = grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited"


class Timeout(LLMError):
    code, kind = grpc.StatusCode.DEADLINE_EXCEEDED, "timeout"


class ProviderUnavailable(LLMError):
    code, kind = grpc.StatusCode.UNAVAILABLE, "unavailable"


class CircuitOpen(ProviderUnavailable):
    kind = "circuit_open"


class ProviderError(LLMError):
    """The provider answered with an error that is not the caller's fault (5xx and the like)."""

    code, kind = grpc.StatusCode.UNAVAILABLE, "provider_error"
