"""The CPU case's references on the line emulator, with a real Mosquitto: the floor
(``tests/bench/floor.py``) does the work it stands for, and the bare loop does less."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiomqtt

from bridge.meters.series4000 import PROFILE
from tests.bench import bare, floor

SECONDS = 1.5


async def test_the_floor_keeps_t35_and_publishes_each_units_decoded_values(
        broker: Any, sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1, 2], 40)
    bus = await emulator_factory(sim, "115200 8N1")
    _, port = await bus.serve_tcp()
    states: dict[str, dict[str, Any]] = {}
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe(f"{floor.TOPIC}/+/state")

        async def receive() -> None:
            async for message in subscriber.messages:
                assert isinstance(message.payload, bytes)
                states[str(message.topic)] = json.loads(message.payload)

        receiver = asyncio.create_task(receive())
        reads = await floor.loop(port, broker.port, 2, SECONDS, 115200)
        await asyncio.sleep(0.5)  # the last states on their way through the broker
        receiver.cancel()
    # Every poll after the set-up reads is one read of the float block.
    assert reads == bus.counters.answered - 2 > 10
    assert bus.counters.silence_violations == 0
    assert sorted(states) == [f"{floor.TOPIC}/1/state", f"{floor.TOPIC}/2/state"]
    keys = {r.key for b in PROFILE.measurement_plan(40) for r in b.registers if r.key}
    for values in states.values():
        assert set(values) == keys
        # A four-wire meter reads every quantity: no value is missing.
        assert all(isinstance(v, (int, float)) for v in values.values())


async def test_without_a_broker_the_floor_decodes_and_publishes_nothing(
        broker: Any, sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1], 40)
    bus = await emulator_factory(sim, "115200 8N1")
    _, port = await bus.serve_tcp()
    async with aiomqtt.Client("127.0.0.1", broker.port) as subscriber:
        await subscriber.subscribe("#")
        reads = await floor.loop(port, None, 1, SECONDS, 115200)
        published = [str(m.topic) async for m in _within(subscriber, 0.5)]
    assert reads > 10
    assert bus.counters.silence_violations == 0
    assert published == []


async def test_the_bare_loop_sends_inside_t35(sim_factory: Any, emulator_factory: Any) -> None:
    """The reference the floor is measured against sends as soon as it has its answer."""
    sim = sim_factory([1, 2], 40)
    bus = await emulator_factory(sim, "115200 8N1")
    _, port = await bus.serve_tcp()
    reads = await bare.loop(port, 2, SECONDS)
    assert reads > 10
    assert bus.counters.silence_violations > 0


async def _within(client: aiomqtt.Client, seconds: float) -> Any:
    """The messages that arrive within ``seconds``."""
    with_deadline = client.messages.__aiter__()
    end = asyncio.get_running_loop().time() + seconds
    while (left := end - asyncio.get_running_loop().time()) > 0:
        try:
            yield await asyncio.wait_for(with_deadline.__anext__(), left)
        except TimeoutError:
            return
