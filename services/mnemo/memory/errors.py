"""Domain errors of the memory service; server.py maps each to a gRPC status code."""

from __future__ import annotations


class MemoryServiceError(Exception):
    """Base of every expected failure (bad input, missing record, conflict)."""

    code = "UNKNOWN"


class InvalidArgument(MemoryServiceError):
    code = "INVALID_ARGUMENT"


class NotFound(MemoryServiceError):
    code = "NOT_FOUND"


class AlreadyExists(MemoryServiceError):
    code = "ALREADY_EXISTS"


class FailedPrecondition(MemoryServiceError):
    code = "FAILED_PRECONDITION"


class Conflict(MemoryServiceError):
    """A compare-and-set write lost against a newer revision."""

    code = "ABORTED"


class Unavailable(MemoryServiceError):
    code = "UNAVAILABLE"
