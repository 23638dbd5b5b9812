"""Unary calls to a servicer running in the same process: the combined layout of `mnemo up`, where
gateway, orchestrator, memory and llm-proxy share one process, calls them directly instead of through
NATS (no serialization to the wire, no broker hop, no socket write; about half the CPU of a turn
went to moving the same bytes between four processes).

A service registers its servicer when it starts (`serve`) and withdraws it when it stops. Callers
use it only when their settings say so (`Settings.rpc_local`, set by the combined layout) and it is
registered; otherwise NATS, then gRPC, as before. The call keeps the semantics of the other
transports: the request and the response are copies (neither side can change the other's
objects), the deadline holds, and failures are the same domain errors, mapped by
`mnemo.common.status`. Spans: the servicer's span is a child of the caller's, as over NATS.

A servicer may declare methods for which a copy would only duplicate an object nobody else holds
(`LOCAL_FRESH_RESPONSES`: each response is made for the call and not kept; `LOCAL_READONLY_REQUESTS`:
the request is neither changed nor kept). Those objects are handed over as they are: a step's
state and its model request hold the agent's whole queue, and copying them grew with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry.trace import SpanKind, Status, StatusCode

from mnemo.common import status, telemetry
from mnemo.common.errors import DeadlineExceeded, Internal, MnemoError
from mnemo.common.grpcutil import SERVER_ERROR_CODES
from mnemo.common.natsrpc import NatsServicerContext, RpcAbort

log = logging.getLogger(__name__)

_servicers: dict[tuple[str, str], Any] = {}
_TRACERS = {"memory": "mnemo.memory", "llm": "mnemo.llm_proxy"}


def serve(group: str, service: str, servicer: Any) -> None:
    """Make `servicer` answer this process's local calls to `service` of `group`."""
    _servicers[(group, service)] = servicer


def withdraw(group: str, service: str, servicer: Any) -> None:
    if _servicers.get((group, service)) is servicer:
        del _servicers[(group, service)]


class NotServedHere(Exception):
    """No servicer of that service runs in this process: use another transport."""


class LocalContext(NatsServicerContext):
    """What servicers use of a gRPC servicer context, for an in-process call."""

    def __init__(self, timeout: float) -> None:
        super().__init__({"Mnemo-Timeout-Ms": str(int(timeout * 1000))})


class LocalRpcCaller:
    """Calls the unary methods of one service on its in-process servicer (`NotServedHere` if none)."""

    def __init__(self, group: str, service: str, full_name: str) -> None:
        self.key = (group, service)
        self.full_name = full_name
        self.tracer = _TRACERS.get(service, f"mnemo.{service}")

    def available(self) -> bool:
        return self.key in _servicers

    async def call(self, name: str, response_cls: type[Message], request: Message, timeout: float) -> Message:
        servicer = _servicers.get(self.key)
        if servicer is None:
            raise NotServedHere
        method: Callable[[Message, Any], Awaitable[Message]] = getattr(servicer, name)
        if name in getattr(servicer, "LOCAL_READONLY_REQUESTS", ()):
            copy = request
        else:
            copy = type(request)()
            copy.CopyFrom(request)
        rpc_name = f"{self.full_name}/{name}"
        with telemetry.span(rpc_name, tracer=self.tracer, kind=SpanKind.SERVER,
                            attributes={"rpc.system": "inprocess", "rpc.service": self.full_name,
                                        "rpc.method": name}) as s:
            code = grpc.StatusCode.OK
            try:
                # asyncio.timeout, not wait_for: the servicer runs in the caller's task (no task, future
                # and callback made per call), and a deadline still cancels it with TimeoutError.
                async with asyncio.timeout(timeout):
                    result = await method(copy, LocalContext(timeout))
            except TimeoutError:
                code = grpc.StatusCode.DEADLINE_EXCEEDED
                raise DeadlineExceeded(f"{rpc_name}: no reply in {timeout:.1f}s") from None
            except RpcAbort as exc:
                code = exc.code
                raise status.from_status(exc.code, exc.details, exc.trailing) from None
            except MnemoError as exc:
                code = status.grpc_code(exc)
                raise
            except Exception as exc:  # as over NATS: a servicer's bug is INTERNAL to its caller
                code = grpc.StatusCode.INTERNAL
                log.exception("%s failed", rpc_name)
                s.record_exception(exc)
                raise Internal(f"internal error ({type(exc).__name__})") from None
            finally:
                s.set_attribute("rpc.grpc.status_code", code.value[0])
                if code in SERVER_ERROR_CODES:
                    s.set_status(Status(StatusCode.ERROR, code.name))
            if name in getattr(servicer, "LOCAL_FRESH_RESPONSES", ()) and type(result) is response_cls:
                return result
            out = response_cls()
            out.CopyFrom(result)
            return out
