"""A recording MQTT subscriber for tests (aiomqtt, against the fixture's real broker)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt


@dataclass
class Message:
    topic: str
    payload: str
    retain: bool
    at: float

    def json(self) -> Any:
        return json.loads(self.payload)


@dataclass
class Recorder:
    messages: list[Message] = field(default_factory=list)
    client: aiomqtt.Client | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.messages if m.topic == topic]

    def last(self, topic: str) -> Message | None:
        found = self.on(topic)
        return found[-1] if found else None

    def last_json(self, topic: str) -> Any:
        msg = self.last(topic)
        return None if msg is None else msg.json()

    async def wait_for(self, predicate: Callable[[Recorder], Any], timeout: float = 10.0,
                       what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                topics = sorted({m.topic for m in self.messages})
                raise AssertionError(f"timed out waiting for {what}; topics seen: {topics}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))

    async def wait_message(self, topic: str, timeout: float = 10.0,
                           after: float = 0.0) -> Message:
        def found(r: Recorder) -> Message | None:
            for m in reversed(r.messages):
                if m.topic == topic and m.at >= after:
                    return m
            return None
        result: Message = await self.wait_for(found, timeout, f"a message on {topic}")
        return result

    async def publish(self, topic: str, payload: str | bytes, retain: bool = False) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, retain=retain)


@contextlib.asynccontextmanager
async def recorder(port: int, topics: tuple[str, ...] = ("#",),
                   host: str = "127.0.0.1") -> AsyncIterator[Recorder]:
    rec = Recorder()
    async with aiomqtt.Client(host, port, identifier=f"test-recorder-{id(rec)}") as client:
        rec.client = client
        for t in topics:
            await client.subscribe(t, qos=1)

        async def pump() -> None:
            async for message in client.messages:
                payload = message.payload
                text = payload.decode() if isinstance(payload, bytes) else str(payload)
                rec.messages.append(Message(str(message.topic), text, bool(message.retain),
                                            time.monotonic()))
                rec._changed.set()

        task = asyncio.create_task(pump())
        try:
            yield rec
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
