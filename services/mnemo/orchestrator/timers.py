"""Durable timers of pending calls: one TurnRequest per call on the agent's resume subject in TURNS,
resolving the call as timed out. The consumer hands it back until the call's deadline (a nak with
that delay), so the timer survives restarts of every process; once due, it applies only if the call
is still pending (mnemo.orchestrator.resolution)."""

from __future__ import annotations

from collections.abc import Mapping

from nats.js import JetStreamContext

from mnemo.common import subjects
from mnemo.orchestrator.pauses import timer_request
from mnemo.v1 import common_pb2


class JetStreamTimers:
    """The `CallTimers` of the turn runner."""

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js

    async def arm(self, tenant_id: str, agent_id: str, progress: common_pb2.TurnProgress,
                  trace: Mapping[str, str]) -> None:
        """Publish the timer of each pending call (deduplicated by call and deadline)."""
        for call in progress.pending_calls:
            request, msg_id = timer_request(progress, tenant_id, agent_id, call)
            await self.js.publish(subjects.resume_subject(tenant_id, agent_id), request.SerializeToString(),
                                  headers={**trace, "Nats-Msg-Id": msg_id}, stream=subjects.TURNS_STREAM,
                                  timeout=10.0)
