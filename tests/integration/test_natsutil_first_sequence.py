"""natsutil.first_sequence: the oldest message of a subject in a stream (the turn consumer's order
check), as js.get_msg(next=True) finds it, without decoding the message."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from nats.js.api import RetentionPolicy, StreamConfig
from nats.js.errors import NotFoundError

from mnemo.common.natsutil import first_sequence


async def test_the_oldest_message_of_a_subject_and_none_when_it_has_none(nc: Any) -> None:
    js = nc.jetstream()
    name = f"FIRST{uuid.uuid4().hex[:8]}"
    await js.add_stream(StreamConfig(name=name, subjects=[f"{name}.>"], retention=RetentionPolicy.WORK_QUEUE))
    seqs = [(await js.publish(f"{name}.{agent}", b"x", headers={"Nats-Msg-Id": f"m{i}"})).seq
            for i, agent in enumerate(["a", "b", "a", "b"])]
    assert await first_sequence(js, name, f"{name}.a") == seqs[0]
    assert await first_sequence(js, name, f"{name}.b") == seqs[1]
    assert await first_sequence(js, name, f"{name}.c") is None
    await js.delete_msg(name, seqs[0])   # the oldest turn acknowledged: the next one is first
    assert await first_sequence(js, name, f"{name}.a") == seqs[2]
    for subject in (f"{name}.a", f"{name}.b", f"{name}.c"):  # what nats-py's own call answers
        try:
            expected = (await js.get_msg(name, seq=1, subject=subject, next=True)).seq
        except NotFoundError:
            expected = None
        assert await first_sequence(js, name, subject) == expected


async def test_a_stream_that_is_not_there_reads_as_no_message_as_before(nc: Any) -> None:
    """nats-py answers NotFoundError for a missing stream as for a missing message; the order check
    read both as "nothing queued before this turn", and still does."""
    with pytest.raises(NotFoundError):
        await nc.jetstream().get_msg("NOSUCHSTREAM", seq=1, subject="x.y", next=True)
    assert await first_sequence(nc.jetstream(), "NOSUCHSTREAM", "x.y") is None
