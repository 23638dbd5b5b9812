"""Domain errors: the one error language of every Mnemo module.

Domain code (the step planner, memory's agents and steps, the llm engine) raises and catches these;
it never sees a transport status. The transport adapters translate them once, both ways:
`mnemo.common.grpcutil` (gRPC status codes) and `mnemo.common.natsrpc` (NATS request-reply), and the
gateway maps them to HTTP statuses. `code` is the name of the matching gRPC status code, kept as a
plain string so that this module imports no transport.
"""

from __future__ import annotations


class MnemoError(Exception):
    """An expected failure. `code` names the status it travels as; `retryable` says whether the same
    call may succeed later; `retry_after` (seconds) is the callee's hint, when it gave one."""

    code = "UNKNOWN"
    retryable = False

    def __init__(self, message: str = "", *, retry_after: float | None = None,
                 retryable: bool | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        if retryable is not None:
            self.retryable = retryable

    @property
    def message(self) -> str:
        return str(self)


class InvalidArgument(MnemoError):
    """The request is malformed or a value is out of its allowed set."""

    code = "INVALID_ARGUMENT"


class NotFound(MnemoError):
    code = "NOT_FOUND"


class AlreadyExists(MnemoError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(MnemoError):
    """The request is valid but the system is not in a state to do it (e.g. wrong embedding dimension)."""

    code = "FAILED_PRECONDITION"


class Conflict(MnemoError):
    """A compare-and-set write lost against a newer revision: read again and redo."""

    code = "ABORTED"
    retryable = True


class ContextOverflow(MnemoError):
    """The request does not fit the model's context window."""

    code = "OUT_OF_RANGE"


class ResourceExhausted(MnemoError):
    """A quota, rate limit or size limit was hit."""

    code = "RESOURCE_EXHAUSTED"
    retryable = True


class PermissionDenied(MnemoError):
    code = "PERMISSION_DENIED"


class Unauthenticated(MnemoError):
    code = "UNAUTHENTICATED"


class Unavailable(MnemoError):
    """A dependency is down or restarting; the same call may succeed shortly."""

    code = "UNAVAILABLE"
    retryable = True


class DeadlineExceeded(MnemoError):
    code = "DEADLINE_EXCEEDED"
    retryable = True


class Cancelled(MnemoError):
    code = "CANCELLED"
    retryable = True


class Unimplemented(MnemoError):
    code = "UNIMPLEMENTED"


class Internal(MnemoError):
    """A bug or an unexpected failure in the callee."""

    code = "INTERNAL"
    retryable = True


_BY_CODE: dict[str, type[MnemoError]] = {
    cls.code: cls for cls in (
        InvalidArgument, NotFound, AlreadyExists, FailedPrecondition, Conflict, ContextOverflow,
        ResourceExhausted, PermissionDenied, Unauthenticated, Unavailable, DeadlineExceeded,
        Cancelled, Unimplemented, Internal)
}


def error_for(code: str, message: str = "", *, retry_after: float | None = None) -> MnemoError:
    """The domain error a status name (`"NOT_FOUND"`, ...) stands for; unknown names give `MnemoError`."""
    cls = _BY_CODE.get(code, MnemoError)
    err = cls(message, retry_after=retry_after)
    if cls is MnemoError:
        err.code = code or "UNKNOWN"
        err.retryable = True  # UNKNOWN / DATA_LOSS: possibly transient
    return err
