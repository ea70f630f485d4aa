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
from bridge.modbus.client import BusClient
from bridge.modbus.links import TcpLink
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
    # Two reads, each tried twice (an answer of the wrong length is retried like the others).
    assert proxy.counts[kind] == 4


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


# -- stale answers: the cases RTU's missing transaction id makes dangerous --------------------


@pytest.mark.parametrize("retries", [0, 1])
async def test_an_answer_held_past_the_timeout_is_not_taken_for_the_next_read(
        sim_factory: Any, retries: int) -> None:
    # A gateway holds answers for 0.15 s, longer than the 0.06 s timeout: the answer to one
    # read turns up while the client waits for the next one.
    plan = FaultPlan(responses={Fault.DELAY: 0.5}, delay_s=0.15)
    async with rig(sim_factory, plan, retries=retries) as (client, proxy, truth):
        outcome = await hammer(client, truth, 12)
    assert proxy.counts[Fault.DELAY] > 0
    assert outcome["WRONG"] == 0, outcome


async def test_a_repeated_answer_is_not_taken_for_the_next_read(sim_factory: Any) -> None:
    # The copy arrives glued to the answer; pymodbus alone would take the first frame and
    # throw the rest away, whichever of them is the real answer.
    plan = FaultPlan(responses={Fault.DUPLICATE: 0.5})
    async with rig(sim_factory, plan) as (client, proxy, truth):
        outcome = await hammer(client, truth, 18)
    assert proxy.counts[Fault.DUPLICATE] > 0
    assert outcome["WRONG"] == 0, outcome
    assert client.stats.stray_frames > 0


class SlowMeterGateway:
    """A gateway in front of a meter that answers the first request too late.

    Its serial side outlives TCP connections, so the late answer comes out on whatever
    connection is open when it arrives: ahead of the answer to the next request, or (when the
    next request collided with it on the line and was lost) instead of it.
    """

    def __init__(self, image: dict[int, int], next_answered: bool, glued: bool = False) -> None:
        self.image = image
        self.next_answered = next_answered
        self.glued = glued
        self.requests = 0
        self.late: bytes | None = None

    def answer(self, request: bytes) -> bytes:
        frame = rtu.parse_frame(request)
        address, count = int.from_bytes(frame.data[:2]), int.from_bytes(frame.data[2:])
        return rtu.read_response(frame.unit,
                                 [self.image.get(address + 1 + i, 0) for i in range(count)])

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while request := await reader.read(256):
            self.requests += 1
            if self.requests == 1:
                self.late = self.answer(request)  # too late for the client's timeout
                continue
            late, self.late = self.late or b"", None
            if late and not self.next_answered:
                writer.write(late)
            elif self.glued:
                writer.write(late + self.answer(request))  # one read for the client
            else:
                writer.write(late)
                await asyncio.sleep(0)  # a separate write, just behind
                writer.write(self.answer(request))

    @contextlib.asynccontextmanager
    async def client(self) -> AsyncIterator[BusClient]:
        server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        bus = BusClient(TcpLink("127.0.0.1", port, rtu=True, baudrate=115200), timeout=0.1,
                        retries=1)
        try:
            yield bus
        finally:
            bus.close()
            server.close()


@pytest.mark.parametrize("glued", [True, False])
async def test_a_late_answer_just_ahead_of_the_real_one_is_refused(sim_factory: Any,
                                                                   glued: bool) -> None:
    # Glued: pymodbus alone takes the first frame of a read and drops the rest. Apart: the
    # real answer comes within the t3.5 the client listens on after taking one.
    image = sim_factory([1], frozen=True).meters[1].registers()
    gateway = SlowMeterGateway(image, next_answered=True, glued=glued)
    async with gateway.client() as client:
        client.retries = 0
        with pytest.raises(ModbusTimeout):
            await client.read_registers(1, 0, 10)  # A: answered too late
        client.retries = 1
        # B gets A's late answer and then its own: the client must not return A's registers.
        assert await client.read_registers(1, 256, 10) == [image[257 + i] for i in range(10)]
        assert client.stats.stray_frames == 1


async def test_limit_a_lone_late_answer_passes_for_the_next_one(sim_factory: Any) -> None:
    """What no RTU master can detect: a late answer that arrives alone, instead of the next.

    A meter slower than the client's timeout answers read A after the client gave up, while it
    waits for read B of the same shape, and B is lost (it collided with A's answer on the
    line). RTU frames carry no transaction id and one request got one well-formed answer, so
    the client returns A's registers as B's. The same holds for any extra answer (a request
    repeated by a gateway) that arrives alone more than t3.5 before the real one. The defence
    is configuration: a timeout longer than the slowest answer, and gateways that do not
    repeat requests. This test pins the boundary of what the other tests guarantee.
    """
    image = sim_factory([1], frozen=True).meters[1].registers()
    gateway = SlowMeterGateway(image, next_answered=False)
    async with gateway.client() as client:
        client.retries = 0
        with pytest.raises(ModbusTimeout):
            await client.read_registers(1, 0, 10)  # A
        registers = await client.read_registers(1, 256, 10)  # B, answered with A's registers
    assert registers == [image[1 + i] for i in range(10)]
    assert registers != [image[257 + i] for i in range(10)]


# -- many faults at once -------------------------------------------------------------------------


async def test_hundreds_of_reads_with_faults_both_ways(sim_factory: Any) -> None:
    # 8 % of the frames each way, every kind; frames held longer than the timeout.
    plan = FaultPlan.uniform(0.08, requests=True, delay_s=0.1)
    async with rig(sim_factory, plan, seed=2024) as (client, proxy, truth):
        outcome = await hammer(client, truth, 240)
    faulty = sum(proxy.counts.values())
    assert outcome["WRONG"] == 0, outcome
    assert outcome["ok"] >= 150, outcome
    assert faulty == len(proxy.log)
    frames = sum(proxy.frames.values())
    assert 0.04 * frames < faulty < 0.12 * frames
    assert len(proxy.counts) >= 6
    assert {e.unit for e in proxy.log} <= {1, 2}
    assert {e.direction for e in proxy.log} == {"request", "response"}
    assert all(a.time <= b.time for a, b in zip(proxy.log, proxy.log[1:], strict=False))


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
