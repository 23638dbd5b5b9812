"""Domain errors ↔ gRPC status codes, both ways, for both transports (NATS RPC carries gRPC codes).

Servers end a call that raised a `MnemoError` with `abort(context, err)`; clients turn a status back
into the domain error with `from_status` / `from_rpc_error`. A `retry_after` hint travels as the
trailing metadata `retry-after-ms`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import grpc

from mnemo.common.errors import MnemoError, error_for

RETRY_AFTER_MS = "retry-after-ms"
# Longest status details sent: grpc-message is percent-encoded into trailers of at most 16 KiB, so a
# huge value quoted back (a 1 MB id) would lose the whole reason.
MAX_DETAILS = 1000
_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def grpc_code(err: MnemoError) -> grpc.StatusCode:
    return getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN)


def code_of_number(number: int) -> grpc.StatusCode:
    return _BY_NUMBER.get(number, grpc.StatusCode.UNKNOWN)


def clip_details(text: str) -> str:
    """`text` cut to MAX_DETAILS characters, saying how much was left out."""
    if len(text) <= MAX_DETAILS:
        return text
    return text[:MAX_DETAILS] + f"... ({len(text) - MAX_DETAILS} more characters)"


def trailer(err: MnemoError) -> tuple[tuple[str, str], ...]:
    """Trailing metadata that carries the error's retry hint, if any."""
    if err.retry_after is None:
        return ()
    return ((RETRY_AFTER_MS, str(max(0, int(err.retry_after * 1000)))),)


def from_status(code: grpc.StatusCode, details: str,
                trailing: Iterable[tuple[str, Any]] = ()) -> MnemoError:
    """The domain error a gRPC status stands for."""
    retry_after = None
    for key, value in trailing:
        if key == RETRY_AFTER_MS:
            try:
                retry_after = int(value) / 1000
            except (TypeError, ValueError):
                pass
    return error_for(code.name, details, retry_after=retry_after)


def from_rpc_error(exc: grpc.aio.AioRpcError) -> MnemoError:
    return from_status(exc.code(), exc.details() or "", exc.trailing_metadata() or ())


def to_rpc_error(err: MnemoError) -> grpc.aio.AioRpcError:
    """The exception a generated gRPC stub would raise for `err` (for gRPC-shaped stubs only)."""
    return grpc.aio.AioRpcError(grpc_code(err), grpc.aio.Metadata(), grpc.aio.Metadata(*trailer(err)),
                                details=str(err))


async def abort(context: Any, err: MnemoError) -> NoReturn:
    """End the call on `context` (a grpc.aio.ServicerContext or its NATS twin) with `err`'s status."""
    await context.abort(grpc_code(err), clip_details(str(err)), trailing_metadata=trailer(err))
    raise AssertionError("unreachable: abort raises")  # pragma: no cover
