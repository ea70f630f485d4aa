"""The bus task's decisions, step by step, on a clock the test moves.

The meters are the simulator's meter model (its real register image and write rules); only the
transport is left out: :class:`ImageClient` answers with the client's interface straight from
the model, so every step is deterministic and no second passes in real time.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.core.budget import LineTiming
from bridge.core.poller import BusPoller, CommandRequest
from bridge.core.publishing import DEFAULT_DEADBANDS
from bridge.errors import ModbusExceptionReply, ModbusTimeout
from bridge.meters.series4000 import PROFILE
from bridge.model.naming import Naming
from bridge.model.topics import Topics
from bridge.mqtt.hub import Hub
from bridge.sim.model import SimulatedMeter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ImageClient:
    """The BusClient interface over simulated meters' register images (no transport).

    With ``line`` set, every read moves the clock on by the line time it would take (answered
    or timed out: ``timeout_s``), and ``at`` holds when each logged request ended.
    """

    def __init__(self, meters: dict[int, SimulatedMeter], clock: Clock) -> None:
        self.meters = meters
        self.clock = clock
        self.dead: set[int] = set()
        self.log: list[tuple[str, int, int, int]] = []
        self.at: list[float] = []
        self.line: LineTiming | None = None
        self.timeout_s = 0.1

    def _meter(self, unit: int, what: str) -> SimulatedMeter:
        if unit in self.dead or unit not in self.meters:
            raise ModbusTimeout(f"unit {unit}: no answer to {what}")
        return self.meters[unit]

    async def read_registers(self, unit: int, address: int, count: int, function: int = 3,
                             retries: int | None = None) -> list[int]:
        self.log.append(("read", unit, address + 1, count))
        if self.line is not None:
            dead = unit in self.dead or unit not in self.meters
            self.clock.now += self.timeout_s if dead else self.line.read_s(count)
        self.at.append(self.clock.now)
        sim = self._meter(unit, "read")
        sim.tick()  # time moves for the meter as it does in the simulator's server
        image = sim.registers()
        return [image.get(address + 1 + i, 0) for i in range(count)]

    async def write_register(self, unit: int, address: int, value: int,
                             retries: int | None = None) -> None:
        self.log.append(("write", unit, address + 1, value))
        code = self._meter(unit, "write").write(address + 1, [value])
        if code is not None:
            raise ModbusExceptionReply(code, f"unit {unit}")

    async def read_device_identification(self, unit: int) -> dict[int, str]:
        self._meter(unit, "identification")
        return {0: "Leviton", 1: "Series 4000", 2: "V1.051"}

    def close(self) -> None:
        pass


#: Every built-in deadband off: these tests follow each value as read.
NO_DEADBANDS = {group: 0.0 for group in DEFAULT_DEADBANDS}


def make_poller(meters: list[dict[str, Any]], *, clock: Clock, frozen: bool = True,
                deadband: dict[str, float] | None = None,
                **bus: Any) -> tuple[BusPoller, ImageClient, Hub, list[tuple[str, str]]]:
    config = parse_config({"buses": [{"name": "b", "transport": "tcp", "host": "127.0.0.1",
                                      "meters": meters, **bus}],
                           "publish": {"min_interval_s": 0.5, "heartbeat_s": 60,
                                       "deadband": NO_DEADBANDS if deadband is None
                                       else deadband}}, env={})
    sims = {m["unit"]: SimulatedMeter(m["unit"], m.get("system_type", 40), frozen=frozen,
                                      clock=clock) for m in meters}
    for m in config.buses[0].meters:
        assert m.unit in sims
    client = ImageClient(sims, clock)
    hub = Hub()
    sent: list[tuple[str, str]] = []
    hub.observers.append(lambda topic, payload, retain: sent.append((topic, payload)))
    poller = BusPoller(config.buses[0], client, hub, Topics(), config.publish,  # type: ignore[arg-type]
                       profile=PROFILE, naming=Naming(), clock=clock)
    return poller, client, hub, sent


async def run_until(poller: BusPoller, clock: Clock, until: float) -> None:
    """Step the bus task, moving the clock to each next due time, up to ``until``."""
    while True:
        wait = await poller.step()
        await asyncio.sleep(0)  # decoding and publishing run right after each read
        if wait == 0.0:
            if clock.now > until:
                return  # reads that take line time moved the clock past it
            continue
        if wait is None or clock.now + wait > until:
            clock.now = until
            return
        clock.now += wait


def meter(name: str, unit: int, **extra: Any) -> dict[str, Any]:
    # system_type is the simulator's; the bridge reads it from the meter.
    return {"name": name, "unit": unit, **extra}


def availability(sent: list[tuple[str, str]], name: str) -> list[str]:
    return [p for t, p in sent if t == f"series4000/{name}/availability"]


async def test_backoff_doubles_while_dead_and_resets_when_back() -> None:
    clock = Clock()
    poller, client, _, sent = make_poller([meter("m", 1)], clock=clock, offline_after=2,
                                          backoff_s=2.0, backoff_max_s=10.0)
    client.dead.add(1)
    rt = poller.meters["m"]
    probes: list[float] = []
    for _ in range(6):  # each init probe fails; note when the next one is due
        await run_until(poller, clock, rt.due["init"])
        probes.append(rt.due["init"] - clock.now)
    assert probes == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert availability(sent, "m") == ["offline"]
    client.dead.clear()
    await run_until(poller, clock, rt.due["init"])
    assert rt.online and rt.backoff == 2.0
    assert availability(sent, "m")[-1] == "online"


async def test_a_meter_goes_offline_only_after_offline_after_failed_cycles() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller([meter("m", 1, poll_interval=1)], clock=clock,
                                       offline_after=3)
    rt = poller.meters["m"]
    await run_until(poller, clock, clock.now + 0.1)
    assert rt.online
    client.dead.add(1)
    seen = []
    for _ in range(3):
        await run_until(poller, clock, clock.now + 1.0)  # the meter's next slot
        seen.append((rt.failures, rt.online))
    assert seen == [(1, True), (2, True), (3, False)]
    assert "full" not in rt.due and "init" in rt.due  # probed with back-off from now on


async def test_fast_and_full_tiers_keep_their_periods() -> None:
    clock = Clock()
    poller, client, _, _ = make_poller(
        [meter("m", 1, poll_interval=5, fast_interval=1, fast_keys=["power_w"])], clock=clock)
    start = clock.now
    await run_until(poller, clock, start + 20.05)
    full = [entry for entry in client.log if entry[0] == "read" and entry[3] > 50]
    fast = [entry for entry in client.log if entry[0] == "read" and entry[3] == 2]
    assert len(full) == 1 + 4  # the first read, then every 5 s
    # In every 1 s slot from the start (the first right after the first reads), except the
    # four that read everything.
    assert len(fast) == 21 - 4
    assert all(entry[2] == 261 for entry in fast)  # the float of total power only


async def test_states_within_min_interval_fold_into_one_message() -> None:
    clock = Clock()
    poller, _, hub, sent = make_poller([meter("m", 1, poll_interval=0.1)], clock=clock,
                                       frozen=False)
    start = clock.now
    await run_until(poller, clock, start + 2.0)
    states = [json.loads(p) for t, p in sent if t == "series4000/m/state"]
    # 20 reads in 2 s, at most one state per 0.5 s: the first, then one per hold.
    assert 4 <= len(states) <= 5
    assert states[-1]["energy_kwh"] > states[0]["energy_kwh"]
    # Readings inside a hold are folded into the message at its end, not dropped: either that
    # message is pending, or the last one carries the last reading.
    rt = poller.meters["m"]
    assert "publish" in rt.due or states[-1]["energy_kwh"] == rt.values["energy_kwh"]
    assert hub.get("state", "series4000/m/state") == json.dumps(states[-1])


async def test_commands_go_ahead_of_due_reads() -> None:
    clock = Clock()
    poller, client, _, sent = make_poller(
        [meter("m", 1, poll_interval=0.1, allow_writes=True), meter("n", 2, poll_interval=0.1)],
        clock=clock)
    await run_until(poller, clock, clock.now + 0.05)
    clock.now += 5  # every read is overdue now
    client.log.clear()
    assert poller.submit(CommandRequest("m", "ct_primary_a", b"200"))
    assert await poller.step() == 0.0
    assert client.log[0] == ("write", 1, 131, 200)
    result = json.loads(next(p for t, p in sent if t == "series4000/m/result"))
    assert result == {"setting": "ct_primary_a", "requested": "200", "ok": True, "value": 200,
                      "error": None}


async def test_a_front_panel_energy_reset_is_published() -> None:
    """Register 147 counting a reset the bridge did not send lets the lower total through."""
    clock = Clock()
    poller, client, _, sent = make_poller(
        [meter("m", 1, poll_interval=1, config_interval=5)], clock=clock, frozen=False)
    sim = client.meters[1]
    await run_until(poller, clock, clock.now + 3)
    before = poller.meters["m"].values["energy_kwh"]
    sim.write(129, [30078])  # the front panel's reset: the same command on the meter
    await run_until(poller, clock, clock.now + 1.5)
    assert poller.meters["m"].values["energy_kwh"] == before  # not yet known as a reset
    await run_until(poller, clock, clock.now + 6)  # a configuration read sees 147 move
    energy = poller.meters["m"].values["energy_kwh"]
    assert energy < before
    last = json.loads([p for t, p in sent if t == "series4000/m/state"][-1])
    assert last["energy_kwh"] == energy and last["energy_reset_count"] == 1


@pytest.mark.parametrize("payload", [b"", b"fast", b"\xff" * 80])
async def test_a_refused_command_writes_nothing(payload: bytes) -> None:
    clock = Clock()
    poller, client, _, sent = make_poller([meter("m", 1, allow_writes=True)], clock=clock)
    await run_until(poller, clock, clock.now + 0.05)
    client.log.clear()
    poller.submit(CommandRequest("m", "ct_primary_a", payload))
    await poller.step()
    assert not [entry for entry in client.log if entry[0] == "write"]
    result = json.loads([p for t, p in sent if t == "series4000/m/result"][-1])
    assert result["ok"] is False and result["error"]
