"""BusClient through the fault proxy: every damaged exchange ends in a ModbusError or the truth.

The simulator runs frozen, so the registers of each block never change and one clean read is the
truth for the whole test. The blocks include reads of the same unit with the same length at
different addresses: those are the answers a stale frame could be mistaken for.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.errors import BusUnavailable, ModbusError, ModbusFrameError, ModbusTimeout
from bridge.modbus_io import BusClient, TcpLink
from tests import rtu
from tests.faults.proxy import Fault, FaultPlan, FaultProxy, damage, fault_proxy

READS = [(1, 0, 10), (1, 256, 10), (1, 266, 10), (2, 256, 10), (2, 0, 124), (1, 256, 90)]
Truth = dict[tuple[int, int, int], list[int]]


async def _truth(upstream: tuple[str, int]) -> Truth:
    client = BusClient(TcpLink(*upstream, rtu=True, baudrate=115200), timeout=1.0)
    try:
        return {r: await client.read_registers(*r) for r in READS}
    finally:
        client.close()


@contextlib.asynccontextmanager
async def rig(sim_factory: Any, plan: FaultPlan, *, seed: int = 7, timeout: float = 0.06,
              retries: int = 1) -> AsyncIterator[tuple[BusClient, FaultProxy, Truth]]:
    """Frozen meters 1 and 2, the truth read cleanly, a client behind a fault proxy."""
    sim = sim_factory([1, 2], frozen=True)
    upstream = await sim.serve_rtu_over_tcp()
    truth = await _truth(upstream)
    proxy = FaultProxy(upstream, plan, seed=seed)
    host, port = await proxy.start()
    client = BusClient(TcpLink(host, port, rtu=True, baudrate=115200), timeout=timeout,
                       retries=retries)
    try:
        yield client, proxy, truth
    finally:
        client.close()
        await proxy.stop()


async def hammer(client: BusClient, truth: Truth, n: int) -> Counter[str]:
    """``n`` reads over READS: how many were right, wrong, or which error they raised."""
    outcome: Counter[str] = Counter()
    for i in range(n):
        block = READS[i % len(READS)]
        try:
            registers = await client.read_registers(*block)
        except ModbusError as exc:  # anything else escapes and fails the test
            outcome[type(exc).__name__] += 1
            continue
        outcome["ok" if registers == truth[block] else "WRONG"] += 1
    return outcome


# -- what each fault does to a frame (pure) ---------------------------------------------------

FRAME = rtu.read_response(1, [0x1111, 0x2222, 0x3333])


@pytest.mark.parametrize("kind", list(Fault))
def test_damage_of_each_kind(kind: Fault) -> None:
    plan = FaultPlan(delay_s=0.2, duplicate_gap_s=0.01, garbage_max=5)
    writes = damage(FRAME, kind, plan, random.Random(1), request=False)
    assert writes is not None
    data = b"".join(w for _, w in writes)
    if kind is Fault.DROP:
        assert writes == []
    elif kind is Fault.DELAY:
        assert writes == [(0.2, FRAME)]
    elif kind is Fault.TRUNCATE:
        assert FRAME.startswith(data) and 0 < len(data) < len(FRAME)
    elif kind is Fault.BAD_CRC:
        assert data[:-2] == FRAME[:-2] and not rtu.crc_ok(data)
    elif kind is Fault.WRONG_UNIT:
        assert rtu.crc_ok(data) and data[0] != 1 and data[1:-2] == FRAME[1:-2]
    elif kind is Fault.BAD_COUNT:
        parsed = rtu.parse_frame(data)  # a valid frame that disagrees with the request
        assert parsed.data[0] in (4, 8) and len(parsed.data) == parsed.data[0] + 1
    elif kind is Fault.GARBAGE_BEFORE:
        assert data.endswith(FRAME) and 1 <= len(data) - len(FRAME) <= 5
    elif kind is Fault.GARBAGE_AFTER:
        assert data.startswith(FRAME) and 1 <= len(data) - len(FRAME) <= 5
    else:
        assert writes == [(0.0, FRAME), (0.01, FRAME)]


def test_bad_count_needs_a_byte_count() -> None:
    rng = random.Random(1)
    assert damage(rtu.write_single_request(1, 2, 3), Fault.BAD_COUNT, FaultPlan(), rng,
                  request=True) is None
    assert damage(rtu.exception_response(1, 3, 2), Fault.BAD_COUNT, FaultPlan(), rng,
                  request=False) is None


def test_plans_are_checked_and_damage_is_reproducible() -> None:
    with pytest.raises(ValueError):
        FaultPlan(responses={Fault.DROP: 0.7, Fault.DELAY: 0.4})
    plan = FaultPlan.uniform(0.2, requests=True)
    assert sum(plan.requests.values()) == pytest.approx(0.2)
    runs = [[damage(FRAME, k, plan, rng, request=False) for k in Fault]
            for rng in (random.Random(5), random.Random(5))]
    assert runs[0] == runs[1]


# -- each fault kind against BusClient ----------------------------------------------------------

#: At a rate of 1 every attempt is damaged: what BusClient must raise.
ALWAYS = {
    Fault.DROP: ModbusTimeout, Fault.TRUNCATE: ModbusTimeout, Fault.BAD_CRC: ModbusTimeout,
    Fault.WRONG_UNIT: ModbusTimeout, Fault.BAD_COUNT: ModbusFrameError,
}


@pytest.mark.parametrize("kind", list(ALWAYS))
async def test_every_answer_damaged_raises_a_clear_error(sim_factory: Any, kind: Fault) -> None:
    async with rig(sim_factory, FaultPlan(responses={kind: 1.0})) as (client, proxy, _):
        for block in READS[:2]:
            with pytest.raises(ALWAYS[kind]):
                await client.read_registers(*block)
    # Two reads, each tried twice; an answer of the wrong length is refused without a retry.
    assert proxy.counts[kind] == (2 if kind is Fault.BAD_COUNT else 4)


@pytest.mark.parametrize("kind", list(Fault))
async def test_damaged_answers_never_give_wrong_registers(sim_factory: Any,
                                                         kind: Fault) -> None:
    async with rig(sim_factory, FaultPlan(responses={kind: 0.35}, delay_s=0.02)) as (
            client, proxy, truth):
        outcome = await hammer(client, truth, 18)
    assert proxy.counts[kind] > 0
    assert outcome["WRONG"] == 0, outcome
    assert outcome["ok"] > 0


@pytest.mark.parametrize("kind", [k for k in Fault if k is not Fault.BAD_COUNT])
async def test_damaged_requests_never_give_wrong_registers(sim_factory: Any,
                                                          kind: Fault) -> None:
    # BAD_COUNT is left out: the bridge's requests (0x03, 0x04, 0x06) carry no byte count.
    async with rig(sim_factory, FaultPlan(requests={kind: 0.35}, delay_s=0.02)) as (
            client, proxy, truth):
        outcome = await hammer(client, truth, 18)
    assert proxy.faults("request")[kind] > 0
    assert outcome["WRONG"] == 0, outcome


# -- gateway restart --------------------------------------------------------------------------


async def test_a_gateway_restart_is_an_error_then_reads_resume(sim_factory: Any) -> None:
    async with rig(sim_factory, FaultPlan()) as (client, proxy, truth):
        assert await client.read_registers(1, 0, 10) == truth[(1, 0, 10)]
        await proxy.kill(refuse_s=0.4)
        assert not proxy.listening
        with pytest.raises(ModbusError):  # the connection is gone
            await client.read_registers(1, 0, 10)
        with pytest.raises(BusUnavailable):  # and new ones are refused
            await client.read_registers(1, 0, 10)
        for _ in range(50):
            if proxy.listening:
                break
            await asyncio.sleep(0.05)
        assert proxy.listening
        assert await client.read_registers(2, 256, 10) == truth[(2, 256, 10)]
    assert proxy.connections == 2


async def test_in_front_of_the_bus_emulator(sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1, 2], frozen=True)
    truth = await _truth(await sim.serve_rtu_over_tcp())
    bus = await emulator_factory(sim, "115200 8N1")
    plan = FaultPlan(requests={Fault.BAD_CRC: 0.3})
    async with fault_proxy(await bus.serve_tcp(), plan, seed=3) as proxy:
        client = BusClient(TcpLink(proxy.host, proxy.port, rtu=True, baudrate=115200),
                           timeout=0.2)
        try:
            outcome = await hammer(client, truth, 12)
        finally:
            client.close()
    assert outcome["WRONG"] == 0, outcome
    # The emulated meters saw exactly the requests the proxy broke, and answered the others.
    assert proxy.counts[Fault.BAD_CRC] > 0
    assert bus.counters.bad_frames == proxy.counts[Fault.BAD_CRC]
    assert bus.counters.answered >= outcome["ok"]
    assert bus.counters.silence_violations == bus.counters.collisions == 0
