"""The CPU case's references on the line emulator, with a real Mosquitto: the floor
(``tests/bench/floor.py``) does the work it stands for, and the bare loop does less."""

from __future__ import annotations

import asyncio
from typing import Any

from bridge.meters.series4000 import PROFILE
from tests.bench import bare, floor
from tests.mqtt_helpers import recorder

SECONDS = 1.5


async def test_the_floor_keeps_t35_and_publishes_each_units_decoded_values(
        broker: Any, sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1, 2], 40)
    bus = await emulator_factory(sim, "115200 8N1")
    _, port = await bus.serve_tcp()
    topics = [f"{floor.TOPIC}/1/state", f"{floor.TOPIC}/2/state"]
    async with recorder(broker.port, (f"{floor.TOPIC}/+/state",)) as rec:
        reads = await floor.loop(port, broker.port, 2, SECONDS, 115200)
        # The last states on their way through the broker.
        await rec.wait_for(lambda r: all(r.on(t) for t in topics), what="both units' states")
        states = {m.topic: m.json() for m in rec.messages}
    # Every poll after the set-up reads is one read of the float block.
    assert reads == bus.counters.answered - 2 > 10
    assert bus.counters.silence_violations == 0
    assert sorted(states) == topics
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
    async with recorder(broker.port) as rec:
        reads = await floor.loop(port, None, 1, SECONDS, 115200)
        await asyncio.sleep(0.5)  # what a publication would take through the broker
        published = [m.topic for m in rec.messages]
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
