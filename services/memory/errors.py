"""Domain errors of the memory service; server.py maps each to a gRPC status code."""

from __future__ import annotations


class MemoryError_(Exception):
    """Base of every expected failure (bad input, missing record, conflict)."""

    code = "UNKNOWN"


class InvalidArgument(MemoryError_):
    code = "INVALID_ARGUMENT"


class NotFound(MemoryError_):
    code = "NOT_FOUND"


class AlreadyExists(MemoryError_):
    code = "ALREADY_EXISTS"


class FailedPrecondition(MemoryError_):
    code = "FAILED_PRECONDITION"


class Conflict(MemoryError_):
    """A compare-and-set write lost against a newer revision."""

    code = "ABORTED"


class Unavailable(MemoryError_):
    code = "UNAVAILABLE"
