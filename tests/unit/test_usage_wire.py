"""The USAGE stream's message format and how the proxy's records are grouped into messages."""

from __future__ import annotations

import pytest

from mnemo.common import subjects, usage_wire
from mnemo.llm_proxy.usage import UsageRecord, messages_of


def _rec(agent: str, i: int, tenant: str = "t1") -> UsageRecord:
    return UsageRecord(tenant=tenant, agent=agent, model="m", provider="p", purpose="agent",
                       prompt_tokens=i, completion_tokens=1, latency_ms=0.5, ts="2026-12-06T00:00:00Z")


def test_decode_reads_arrays_and_the_single_objects_written_before_batching() -> None:
    assert usage_wire.decode(usage_wire.encode([{"a": 1}, {"a": 2}])) == [{"a": 1}, {"a": 2}]
    assert usage_wire.decode(b'{"a": 1}') == [{"a": 1}]
    assert usage_wire.decode(b'[{"a": 1}, 3, "x", null]') == [{"a": 1}]
    assert usage_wire.decode(b"42") == []
    with pytest.raises(ValueError):
        usage_wire.decode(b"not json")


def test_records_are_grouped_by_agent_in_order_and_chunked() -> None:
    batch = [(_rec("a1" if i % 3 else "a2", i), {"traceparent": f"tp-{i}"}) for i in range(10)]
    out = messages_of(batch, max_records=4)
    by_subject: dict[str, list[list[int]]] = {}
    for subject, payload, _ in out:
        by_subject.setdefault(subject, []).append([r["prompt_tokens"] for r in usage_wire.decode(payload)])
    assert by_subject == {subjects.usage_subject("t1", "a2"): [[0, 3, 6, 9]],
                          subjects.usage_subject("t1", "a1"): [[1, 2, 4, 5], [7, 8]]}
    # Each message: its first record's trace headers and a message id of its own (dedupes its retry).
    assert [h["traceparent"] for _, _, h in out] == ["tp-0", "tp-1", "tp-7"]
    assert len({h["Nats-Msg-Id"] for _, _, h in out}) == 3


def test_a_record_without_tenant_goes_to_the_placeholder_subject() -> None:
    ((subject, payload, _),) = messages_of([(_rec("", 1, tenant=""), {})])
    assert subject == subjects.usage_subject("_", "")
    assert usage_wire.decode(payload)[0]["tenant"] == ""
