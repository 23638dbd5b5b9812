"""Typed errors of model calls: domain errors (mnemo.common.errors) with the kind of failure.

Each is also the domain error its callers rely on (a ContextOverflow is OUT_OF_RANGE, a RateLimited
RESOURCE_EXHAUSTED, ...). `retryable` says whether the proxy itself tries the call again; it is set
per failure (429, 408, 409, 5xx, connection failures), never by the class.
"""

from __future__ import annotations

from mnemo.common import errors as domain


class LLMError(domain.MnemoError):
    """A model call failed; `kind` names the failure in metrics and spans."""

    code = "INTERNAL"
    kind = "internal"
    retryable = False

    def __init__(self, message: str, *, retry_after: float | None = None, retryable: bool = False) -> None:
        super().__init__(message, retry_after=retry_after, retryable=retryable)


class InvalidRequest(domain.InvalidArgument, LLMError):
    kind = "invalid_request"


class ContextOverflow(domain.ContextOverflow, LLMError):
    kind = "context_length_exceeded"


class RateLimited(domain.ResourceExhausted, LLMError):
    kind = "rate_limited"


class Timeout(domain.DeadlineExceeded, LLMError):
    kind = "timeout"


class ProviderUnavailable(domain.Unavailable, LLMError):
    kind = "unavailable"


class CircuitOpen(ProviderUnavailable):
    kind = "circuit_open"


class ProviderError(domain.Unavailable, LLMError):
    """The provider answered with an error that is not the caller's fault (5xx and the like)."""

    kind = "provider_error"
