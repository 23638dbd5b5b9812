"""The gateway keeps an idle HTTP connection open longer than client pools keep theirs."""

from __future__ import annotations

import asyncio
from urllib.parse import urlparse

import pytest

from tests.fixtures_stack import Stack, stack  # noqa: F401


async def test_an_idle_connection_outlives_a_client_pool(stack: Stack) -> None:
    # Regression: uvicorn's default closed idle connections after 5 s while aiohttp's pool reuses them
    # for 15 s, so under load with pauses between turns some POSTs hit a connection being closed and
    # failed with "connection reset by peer" (bench/scale.py, 3 replicas: 92 of 5,000 turns).
    assert stack.gateway.options.keep_alive >= 60
    url = urlparse(stack.base_url)
    reader, writer = await asyncio.open_connection(url.hostname, url.port)
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 ")
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        await reader.readexactly(length)
        # Idle past uvicorn's 5 s default: the server must not have closed the connection.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), timeout=6.0)
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: {url.netloc}\r\n\r\n".encode())
        await writer.drain()
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 ")
    finally:
        writer.close()
