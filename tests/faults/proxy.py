"""A fault-injection proxy for RTU over TCP: damages frames on purpose, reproducibly.

Real buses and gateways lose, delay, cut, corrupt and repeat frames. The bridge's promise is that
a damaged exchange ends in a clear ``ModbusError`` or, after a retry, in the right registers, and
never in wrong ones. This proxy sits between a master and the simulator (or the bus emulator),
cuts both byte streams into RTU frames, and damages frames with configured probabilities drawn
from a seeded RNG, so a failing run can be replayed. Every injected fault is counted by kind and
logged with its time and unit. It can also play a gateway restart: drop every connection, refuse
new ones for a while, then accept again.

Frames go through in order, like a serial gateway's: a delayed frame holds back the ones behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from tests import rtu

#: An incomplete frame followed by this much quiet is passed on as it is.
PARTIAL_FRAME_TIMEOUT_S = 0.05


class Fault(StrEnum):
    """What can happen to one frame."""

    DROP = "drop"  # never delivered
    DELAY = "delay"  # delivered ``delay_s`` late (and everything behind it)
    TRUNCATE = "truncate"  # only its first 1..n-1 bytes
    BAD_CRC = "bad_crc"  # CRC bytes flipped
    WRONG_UNIT = "wrong_unit"  # another unit id, CRC made valid again
    BAD_COUNT = "bad_count"  # byte count 2 more or less, data and CRC to match (a valid frame)
    GARBAGE_BEFORE = "garbage_before"  # random bytes glued in front
    GARBAGE_AFTER = "garbage_after"  # random bytes glued behind
    DUPLICATE = "duplicate"  # delivered twice, the copy ``duplicate_gap_s`` later


@dataclass(frozen=True)
class FaultPlan:
    """Probability of each fault per frame, for responses and for requests.

    At most one fault hits a frame; the probabilities of one direction must add up to <= 1.
    With ``duplicate_gap_s`` 0 the copy goes out in the same write as the frame.
    """

    responses: Mapping[Fault, float] = field(default_factory=dict)
    requests: Mapping[Fault, float] = field(default_factory=dict)
    delay_s: float = 0.05
    duplicate_gap_s: float = 0.0
    garbage_max: int = 8

    def __post_init__(self) -> None:
        for table in (self.responses, self.requests):
            if sum(table.values()) > 1.0 + 1e-9 or any(p < 0 for p in table.values()):
                raise ValueError(f"fault probabilities must be >= 0 and add up to <= 1: {table}")

    @classmethod
    def uniform(cls, rate: float, kinds: tuple[Fault, ...] = tuple(Fault), *,
                requests: bool = False, delay_s: float = 0.05,
                duplicate_gap_s: float = 0.0) -> FaultPlan:
        """``rate`` of the frames damaged, spread evenly over ``kinds``."""
        table = {kind: rate / len(kinds) for kind in kinds}
        return cls(responses=table, requests=table if requests else {}, delay_s=delay_s,
                   duplicate_gap_s=duplicate_gap_s)


@dataclass(frozen=True, slots=True)
class FaultEvent:
    """One injected fault: when (monotonic seconds), on which direction, unit and kind."""

    time: float
    direction: str  # "request" or "response"
    unit: int
    kind: Fault


def _byte_count_pos(frame: bytes, request: bool) -> int | None:
    """Where the byte count of ``frame`` is, if it has one."""
    function = frame[1]
    if request:
        return 6 if function == rtu.WRITE_MULTIPLE and len(frame) > 9 else None
    if function in (rtu.READ_HOLDING, rtu.READ_INPUT, rtu.REPORT_SLAVE_ID) and len(frame) > 5:
        return 2
    return None


def damage(frame: bytes, kind: Fault, plan: FaultPlan, rng: random.Random,
           request: bool) -> list[tuple[float, bytes]] | None:
    """The writes (pause before, bytes) that replace ``frame``; None if ``kind`` cannot apply."""
    if kind is Fault.DROP:
        return []
    if kind is Fault.DELAY:
        return [(plan.delay_s, frame)]
    if kind is Fault.TRUNCATE:
        return [(0.0, frame[:rng.randrange(1, len(frame))])]
    if kind is Fault.BAD_CRC:
        return [(0.0, frame[:-2] + bytes(b ^ rng.randrange(1, 256) for b in frame[-2:]))]
    if kind is Fault.WRONG_UNIT:
        unit = rng.choice([u for u in range(1, 248) if u != frame[0]])
        return [(0.0, rtu.with_crc(bytes([unit]) + frame[1:-2]))]
    if kind is Fault.BAD_COUNT:
        pos = _byte_count_pos(frame, request)
        if pos is None:
            return None
        body = bytearray(frame[:-2])
        if rng.random() < 0.5 and body[pos] >= 2:
            del body[-2:]
            body[pos] -= 2
        else:
            body += rng.randbytes(2)
            body[pos] = (body[pos] + 2) & 0xFF
        return [(0.0, rtu.with_crc(bytes(body)))]
    garbage = rng.randbytes(rng.randint(1, plan.garbage_max))
    if kind is Fault.GARBAGE_BEFORE:
        return [(0.0, garbage + frame)]
    if kind is Fault.GARBAGE_AFTER:
        return [(0.0, frame + garbage)]
    return [(0.0, frame), (plan.duplicate_gap_s, frame)]  # DUPLICATE


class FaultProxy:
    """RTU over TCP in front, RTU over TCP to ``upstream`` behind; faults in between."""

    def __init__(self, upstream: tuple[str, int], plan: FaultPlan | None = None, *,
                 seed: int = 0, host: str = "127.0.0.1") -> None:
        self.upstream = upstream
        self.plan = plan or FaultPlan()
        self.host = host
        self.port = 0
        self.rng = random.Random(seed)
        self.counts: Counter[Fault] = Counter()
        self.log: list[FaultEvent] = []
        self.frames: Counter[str] = Counter()  # frames seen per direction, damaged or not
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reopen: asyncio.TimerHandle | None = None

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> tuple[str, int]:
        """Listen (again, on the same port after the first time); returns the address."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.host, self.port

    async def kill(self, refuse_s: float | None = None) -> None:
        """A gateway restart: drop every connection and stop listening.

        With ``refuse_s`` connections are refused for that long, then accepted again (in the
        background); without it the proxy stays down until :meth:`start`.
        """
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if refuse_s is not None:
            loop = asyncio.get_running_loop()
            self._reopen = loop.call_later(
                refuse_s, lambda: self._spawn(self._restart()))

    async def _restart(self) -> None:
        self._reopen = None
        await self.start()

    async def stop(self) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        await self.kill()

    @property
    def listening(self) -> bool:
        return self._server is not None

    # -- traffic ---------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers.add(up_writer)
        pumps = [self._spawn(self._pump(reader, up_writer, request=True)),
                 self._spawn(self._pump(up_reader, writer, request=False))]
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            for w in (writer, up_writer):
                self._writers.discard(w)
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bool) -> None:
        with contextlib.suppress(ConnectionError):
            await self._cut_frames(reader, writer, request)

    async def _cut_frames(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                          request: bool) -> None:
        buf = b""
        while True:
            try:
                chunk = await asyncio.wait_for(reader.read(4096), PARTIAL_FRAME_TIMEOUT_S
                                               if buf else None)
            except TimeoutError:
                writer.write(buf)  # an incomplete frame: pass it on as it is
                buf = b""
                continue
            if not chunk:
                return
            buf += chunk
            while buf:
                try:
                    size = rtu.frame_length(buf, request=request)
                except rtu.FrameError:  # not a frame this proxy knows: pass it on untouched
                    writer.write(buf)
                    buf = b""
                    break
                if size is None or len(buf) < size:
                    break
                frame, buf = buf[:size], buf[size:]
                await self._forward(frame, writer, request)

    async def _forward(self, frame: bytes, writer: asyncio.StreamWriter, request: bool) -> None:
        direction = "request" if request else "response"
        self.frames[direction] += 1
        writes: list[tuple[float, bytes]] | None = None
        kind = self._draw(self.plan.requests if request else self.plan.responses)
        if kind is not None:
            writes = damage(frame, kind, self.plan, self.rng, request)
        if writes is None:
            writer.write(frame)
            return
        assert kind is not None
        self.counts[kind] += 1
        self.log.append(FaultEvent(time.monotonic(), direction, frame[0], kind))
        for pause, data in writes:
            if pause > 0:
                await writer.drain()
                await asyncio.sleep(pause)
            writer.write(data)

    def _draw(self, table: Mapping[Fault, float]) -> Fault | None:
        if not table:
            return None
        r = self.rng.random()
        for kind in Fault:
            r -= table.get(kind, 0.0)
            if r < 0:
                return kind
        return None

    # -- reports ---------------------------------------------------------------------------

    def faults(self, direction: str | None = None) -> Counter[Fault]:
        """Injected faults by kind, for one direction or both."""
        if direction is None:
            return Counter(self.counts)
        return Counter(e.kind for e in self.log if e.direction == direction)


@contextlib.asynccontextmanager
async def fault_proxy(upstream: tuple[str, int], plan: FaultPlan | None = None,
                      seed: int = 0) -> AsyncIterator[FaultProxy]:
    """``async with fault_proxy(addr, plan) as proxy``: started, stopped on exit."""
    proxy = FaultProxy(upstream, plan, seed=seed)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
