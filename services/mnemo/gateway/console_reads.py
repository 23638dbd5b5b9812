"""Reads behind the console's routes (REST and gRPC alike): the agent's state, its recent events on
EVENTS and its usage records on USAGE, tenant-scoped; turned into read models by `console`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from mnemo.common import ids, subjects, usage_wire
from mnemo.common.natsutil import quietly
from mnemo.gateway import console
from mnemo.gateway.core import Core
from mnemo.gateway.deps import GatewayContext
from mnemo.gateway.errors import ApiError
from mnemo.gateway.events import replay
from mnemo.v1 import common_pb2, console_pb2

MAX_TURNS = 50
FIRST_SPAN = 512        # stream sequences looked back at first; grows ×8 until enough turns are seen
READ_TIMEOUT = 5.0


class ConsoleReads:
    """The console's views of one tenant's agents."""

    def __init__(self, js: JetStreamContext, core: Core, trace_url: str = "") -> None:
        self.js = js
        self.core = core
        self.trace_url = trace_url

    async def context_window(self, tenant_id: str, agent_id: str) -> console_pb2.ContextWindow:
        """The last step's context: from the state's last step, else the latest usage event kept."""
        state = await self.core.get_state(tenant_id, agent_id)
        found = console.context_window(agent_id, state.config, state.pending_events)
        if found.available:
            return found
        async with aclosing(self._looking_back(tenant_id, agent_id)) as stretches:
            async for events, complete in stretches:
                found = console.context_window(agent_id, state.config, events)
                if found.available or complete:
                    break
        return found

    async def turns(self, tenant_id: str, agent_id: str, limit: int = 10) -> console_pb2.ListTurnsResponse:
        """The agent's most recent turns, newest first."""
        limit = limit or 10
        if not 1 <= limit <= MAX_TURNS:
            raise ApiError(422, f"limit must be between 1 and {MAX_TURNS}")
        await self.core.owned(tenant_id, agent_id)
        found: list[console_pb2.TurnTimeline] = []
        async with aclosing(self._looking_back(tenant_id, agent_id)) as stretches:
            async for events, complete in stretches:
                lines = console.timelines(events, self.trace_url)
                found = lines if complete else lines[1:]  # the oldest may have begun before the stretch
                if len(found) >= limit or complete:
                    break
        return console_pb2.ListTurnsResponse(turns=list(reversed(found[-limit:])))

    async def turn(self, tenant_id: str, agent_id: str, turn_id: str) -> console_pb2.TurnTimeline:
        """One turn's timeline (404 when no event of it is kept)."""
        if not turn_id or len(turn_id) > 200:
            raise ApiError(404, f"turn {turn_id[:200]!r} not found")
        await self.core.owned(tenant_id, agent_id)
        async with aclosing(self._looking_back(tenant_id, agent_id)) as stretches:
            async for events, complete in stretches:
                for i, tl in enumerate(console.timelines(events, self.trace_url)):
                    if tl.turn_id == turn_id and (complete or i > 0):
                        return tl
        raise ApiError(404, f"turn {turn_id!r} not found (its events may have expired)")

    async def _looking_back(self, tenant_id: str, agent_id: str
                            ) -> AsyncGenerator[tuple[list[common_pb2.Event], bool], None]:
        """Ever longer stretches at the end of the agent's events, oldest first; True once the
        stretch reaches the first event kept."""
        try:
            last = await self.js.get_last_msg(subjects.EVENTS_STREAM, subjects.events_subject(tenant_id, agent_id))
        except NotFoundError:
            yield [], True
            return
        span = FIRST_SPAN
        while True:
            after = max(0, (last.seq or 0) - span)
            events = [e async for e in replay(self.js, tenant_id, agent_id, after=after, idle_timeout=READ_TIMEOUT)
                      if e is not None and e.seq <= (last.seq or 0)]
            yield events, after == 0
            if after == 0:
                return
            span *= 8

    async def usage(self, tenant_id: str, agent_id: str, since: str = "",
                    bucket_seconds: int = 0) -> console_pb2.AgentUsage:
        """The agent's token usage over time (the llm-proxy's records on USAGE)."""
        try:
            window = console.UsageWindow.parse(since, bucket_seconds)
        except ValueError as exc:
            raise ApiError(422, str(exc)) from exc
        await self.core.owned(tenant_id, agent_id)
        records = [r async for r in self._usage_records(tenant_id, agent_id, window)]
        return console.usage_series(agent_id, tenant_id, window, records)

    async def _usage_records(self, tenant_id: str, agent_id: str,
                             window: console.UsageWindow) -> AsyncIterator[dict[str, Any]]:
        subject = subjects.usage_subject(tenant_id, agent_id)
        try:
            last = await self.js.get_last_msg(subjects.USAGE_STREAM, subject)
        except NotFoundError:
            return
        if last.data:
            try:
                newest = usage_wire.decode(last.data)
                if newest and ids.parse_time(newest[-1].get("ts", "")) < window.since:
                    return  # nothing in the period: no consumer needed
            except (ValueError, TypeError, AttributeError):
                pass
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=window.since)
        sub = await self.js.subscribe(subject, stream=subjects.USAGE_STREAM, ordered_consumer=True, config=config,
                                      idle_heartbeat=2.0, inactive_threshold=30.0)
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=READ_TIMEOUT)
                except TimeoutError:
                    return
                try:
                    records = usage_wire.decode(msg.data)
                except ValueError:
                    records = []
                for record in records:
                    yield record
                if msg.metadata.sequence.stream >= (last.seq or 0) or msg.metadata.num_pending == 0:
                    return
        finally:
            await quietly(sub.unsubscribe())


def console_reads(ctx: GatewayContext) -> ConsoleReads:
    """The console's reads over a gateway's links (cheap: made per request)."""
    return ConsoleReads(ctx.js, ctx.core, ctx.settings.trace_url)
