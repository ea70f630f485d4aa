"""Talking to the bridge's web server in tests: a real HTTP client (aiohttp) on loopback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from bridge.sim.broker import free_port


def web_settings(**extra: Any) -> dict[str, Any]:
    """The ``web`` section on a free loopback port."""
    return {"host": "127.0.0.1", "port": free_port(), **extra}


async def serving(service: Any) -> str:
    """Wait until the service's web server listens; its base URL."""
    await asyncio.wait_for(service.web.listening.wait(), 10)
    return str(service.web.url)


def base_url(config_web: Any) -> str:
    return f"http://{config_web.host}:{config_web.port}/"


async def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Status, body and content type of one GET."""
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers=headers or {}) as response:
        return response.status, await response.text(), response.headers.get("Content-Type", "")


async def get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    status, body, _ = await get(url, headers)
    assert status == 200, (status, body)
    return json.loads(body)


async def sse(url: str, headers: dict[str, str] | None = None
              ) -> AsyncIterator[tuple[str, Any]]:
    """The server-sent events of ``url`` as (event, data), until the caller stops."""
    async with aiohttp.ClientSession() as session, \
            session.get(url, headers=headers or {}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        event, data = "message", ""
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = line[6:]
            elif not line and data:
                yield event, json.loads(data)
                event, data = "message", ""
