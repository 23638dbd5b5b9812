"""Agent events as server-sent events (REST): one frame per event, a comment as keep-alive."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable

from fastapi.responses import StreamingResponse

from mnemo.gateway.events import sse_frame
from mnemo.v1 import common_pb2

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
KEEPALIVE = ": keepalive\n\n"


async def sse_frames(events: AsyncGenerator[common_pb2.Event | None, None],
                     on_close: Callable[[], None] | None = None) -> AsyncIterator[str]:
    """A frame per event, a keep-alive per None; `events` is closed (then `on_close` called) however
    the stream ends, client disconnects included."""
    try:
        async for event in events:
            yield KEEPALIVE if event is None else sse_frame(event)
    finally:
        try:
            await events.aclose()
        finally:
            if on_close is not None:
                on_close()


def sse_response(events: AsyncGenerator[common_pb2.Event | None, None], headers: dict[str, str] | None = None,
                 on_close: Callable[[], None] | None = None) -> StreamingResponse:
    """`events` as a text/event-stream response (see `sse_frames`)."""
    return StreamingResponse(sse_frames(events, on_close), media_type="text/event-stream",
                             headers={**SSE_HEADERS, **(headers or {})})
