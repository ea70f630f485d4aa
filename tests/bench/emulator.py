"""A line-rate RS-485 bus in front of the simulator, for benchmarks and timing tests.

The simulator answers in microseconds, so a master talking to it directly looks infinitely fast
and a bus-utilisation figure measured that way means nothing. This emulator behaves like a
half-duplex line at a given baud rate and character format: a request reaches the meter only after
its wire time, the meter answers after its turnaround, the answer reaches the master only after its
own wire time, and the line carries one transaction at a time. It counts what a logic analyser on
the line would see: busy time, bytes each way, requests that start inside the t3.5 silence after
the previous frame, and requests that start while a transaction still holds the line.

Masters attach over RTU over TCP (``TcpLink(host, port, rtu=True)``) or a pseudo-terminal
(``SerialLink(path)``); the meters are a :class:`bridge.sim.server.Simulator` behind one
RTU-over-TCP connection. Timing uses the event loop's monotonic clock. Every delivery records how
late it was against its ideal instant (:meth:`BusEmulator.timing`), so a benchmark can state its
own error: plain ``asyncio.sleep`` overshoots by up to a millisecond (epoll's resolution), so the
emulator sleeps until ``spin_s`` before a deadline and then yields to the loop until the
deadline passes.

What is stamped where. A request starts on the line when it reached the emulator: over RTU over
TCP when the kernel received the master's write (its receive timestamp, see
:mod:`tests.bench.ports`), over a pty when the emulator read it (a pty has no receive
timestamp). The silence after an answer is counted from a stamp taken just before the answer is
written to the master, so a request the master sends in reply can never be stamped before it.
Every other instant is computed from these: the request's end after its wire time, the answer's
start after the meter's turnaround (or when the simulator answered, if later: ``late_meter``) and
its end after its wire time.

Measured on the 2-core development machine (``python -m tests.bench.accuracy``, 80 reads at each
of 9600-115200 baud, another process using about 3/4 of one core): lateness per delivery mean
0.06-0.3 ms, median <= 0.08 ms, p99 0.9-3.9 ms, max 4.1 ms, RTU over TCP and pty alike; with
plain sleeps (``spin_s=0``) the mean is 0.8-1.3 ms. With both cores oversubscribed the median
stays below 0.1 ms but p99 reaches 10-12 ms (scheduler time slices). The lateness of a request's
delivery is hidden in the meter's turnaround (unless it is longer: ``late_meter``); the answer
reaches the master late by its own, which counts as the master's idle time, so a measured
utilisation is low by about one mean lateness per transaction. Stamping a TCP request when the
emulator read it added the emulator's scheduling delay on top: Linux often runs the emulator on
the CPU of the master that woke it, only after the master's own work following its send, 0.4-0.7
ms per transaction (utilisation at 38400 baud with 63 meters 0.970 with the read time, 0.981-0.984
with the kernel's stamp, interleaved runs in ``bench-results/sweep-linestamp.json``). Over a pty
that delay is still counted against the master.
"""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter, deque
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests import rtu
from tests.bench.ports import MasterPort, Meters, open_pty_master, open_tcp_masters
from tests.bench.wire import (
    LineFormat,
    ideal_transaction_s,
    ideal_wire_time,
    read_sizes,
    utilisation,
)

__all__ = ["BusCounters", "BusEmulator", "LineFormat", "Timing", "Transaction",
           "ideal_transaction_s",
           "ideal_wire_time", "read_sizes", "utilisation"]


@dataclass
class BusCounters:
    """What happened on the line since the emulator started."""

    transactions: int = 0  # requests that had the line to themselves, answered or not
    answered: int = 0
    unanswered: int = 0  # dead or absent units: the master has to time out
    bytes_to_meters: int = 0  # every byte a master put on the line, good or not
    bytes_to_master: int = 0
    busy_s: float = 0.0  # wire time of every frame plus the turnaround before each answer
    silence_violations: int = 0  # requests starting < t3.5 after the previous frame ended
    collisions: int = 0  # requests starting while a transaction held the line (lost; not
    #                      also counted as silence violations)
    bad_frames: int = 0  # bad CRC, unknown function, truncated: no meter answers these
    late_meter: int = 0  # the simulator took longer than the turnaround; the answer started late
    unstamped: int = 0  # TCP reads without the kernel's receive stamp, stamped when read instead


@dataclass(frozen=True, slots=True)
class Transaction:
    """One request that had the line, on the emulator's clock: the line was the master's from
    ``start`` (the request's first bit) to ``end`` (the answer's last, or the request's when no
    answer came)."""

    unit: int
    function: int
    address: int  # the register number of the first register (1-based, as the register map)
    count: int
    start: float
    end: float
    answered: bool

    def covers(self, register: int) -> bool:
        return self.address <= register < self.address + self.count


@dataclass(frozen=True, slots=True)
class Timing:
    """Lateness of deliveries against their ideal instants, in milliseconds."""

    samples: int
    mean_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass(eq=False)
class BusEmulator:
    """A half-duplex RS-485 line with the simulator's meters on it.

    ``turnaround_s`` is the meter's time from the end of a request to the start of its answer;
    a meter cannot answer before it has seen t3.5 of silence, so a shorter value is raised to
    t3.5. ``dead`` units never answer (the set may be changed while running); if ``live`` is
    given, units outside it are silent too without asking the simulator. With ``drop_early`` a
    request that starts inside the t3.5 silence is not answered, as a meter that merges it with
    the previous frame would; otherwise it is only counted. ``kernel_stamps`` false stamps an
    RTU-over-TCP request when the emulator reads it instead of when the kernel received it (the
    old way, to compare).
    """

    upstream: tuple[str, int]
    line: LineFormat = field(default_factory=LineFormat)
    turnaround_s: float = 0.005
    dead: set[int] = field(default_factory=set)
    live: Collection[int] | None = None
    drop_early: bool = False
    upstream_timeout_s: float = 0.1
    spin_s: float = 0.001
    kernel_stamps: bool = True
    counters: BusCounters = field(default_factory=BusCounters)
    #: Requests that reached the meters, by their first six bytes (unit, function, address,
    #: count): which reads went over the line, not only how many.
    requests: Counter[bytes] = field(default_factory=Counter)
    #: Every transaction, when a list is given (``record=True`` in :meth:`for_simulator`).
    log: list[Transaction] | None = None
    _lateness: list[float] = field(default_factory=list)
    _pending: deque[tuple[MasterPort, bytes, float]] = field(default_factory=deque)
    _wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    _line_end: float = 0.0  # ideal end of the last frame on the line
    _quiet_from: float = 0.0  # when the master saw the last frame end
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _worker: asyncio.Task[None] | None = None
    _meters: Meters | None = None

    @classmethod
    async def for_simulator(cls, sim: Any, line: LineFormat | str = "19200 8N1",
                            **kwargs: Any) -> BusEmulator:
        """Serve ``sim`` (a :class:`bridge.sim.server.Simulator`) on an emulated line."""
        if isinstance(line, str):
            line = LineFormat.parse(line)
        upstream = await sim.serve_rtu_over_tcp()
        kwargs.setdefault("live", set(sim.meters))
        if kwargs.pop("record", False):
            kwargs["log"] = []
        bus = cls(upstream, line, **kwargs)
        await bus.start()
        return bus

    # -- life cycle ------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._meters = await loop.create_connection(Meters, *self.upstream)
        self._closers.append(self._meters.close)
        self._worker = loop.create_task(self._run())

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """RTU over TCP front end; returns the bound address."""
        bound, close = open_tcp_masters(self, host, port, self.kernel_stamps)
        self._closers.append(close)
        return bound

    async def serve_pty(self) -> str:
        """A pseudo-terminal front end; returns the path a serial client opens."""
        path, close = open_pty_master(self)
        self._closers.append(close)
        return path

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        for close in reversed(self._closers):
            close()
        self._closers.clear()

    # -- what the ports call ---------------------------------------------------------------

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def wire_s(self, nbytes: int) -> float:
        return self.line.wire_s(nbytes)

    def received(self, nbytes: int) -> None:
        self.counters.bytes_to_meters += nbytes

    def unstamped(self) -> None:
        self.counters.unstamped += 1

    def submit(self, port: MasterPort, frame: bytes, start: float) -> None:
        """A master started ``frame`` on the line at ``start`` (monotonic seconds)."""
        self._pending.append((port, frame, start))
        self._wakeup.set()

    # -- the line --------------------------------------------------------------------------

    async def _until(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = deadline - loop.time()
        if delay > self.spin_s:
            await asyncio.sleep(delay - self.spin_s)
        while loop.time() < deadline:
            await asyncio.sleep(0)
        self._lateness.append(loop.time() - deadline)

    async def _run(self) -> None:
        while True:
            while not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
            port, frame, start = self._pending.popleft()
            await self._transaction(port, frame, start)

    async def _transaction(self, port: MasterPort, frame: bytes, start: float) -> None:
        c = self.counters
        if start < self._line_end:
            c.collisions += 1
            return
        early = start < self._quiet_from + self.line.t35_s
        c.silence_violations += early
        request_end = start + self.line.wire_s(len(frame))
        c.busy_s += self.line.wire_s(len(frame))
        self._line_end = self._quiet_from = request_end
        if not rtu.crc_ok(frame):
            c.bad_frames += 1
            return
        c.transactions += 1
        self.requests[frame[:6]] += 1
        unit = frame[0]
        silent = (unit == 0 or unit in self.dead or (early and self.drop_early)
                  or (self.live is not None and unit not in self.live))
        await self._until(request_end)
        assert self._meters is not None
        response = None if silent else await self._meters.ask(frame, self.upstream_timeout_s)
        if response is None:
            c.unanswered += 1
            self._record(frame, start, request_end, answered=False)
            return
        gap = max(self.turnaround_s, self.line.t35_s)
        answer_start = request_end + gap
        if self.now() > answer_start:
            c.late_meter += 1
            answer_start = self.now()
        answer_end = answer_start + self.line.wire_s(len(response))
        c.busy_s += gap + self.line.wire_s(len(response))
        self._line_end = answer_end
        await self._until(answer_end)
        if any(s < answer_end for _, _, s in self._pending):
            # Someone talked over the answer: the master receives it garbled.
            response = response[:-1] + bytes([response[-1] ^ 0xFF])
        # The silence starts when the answer leaves, stamped before the write: the write wakes
        # the master's process, and on a busy machine the kernel may run it at once and this
        # one only a millisecond or more later. A stamp taken after the write would then
        # count requests as too early that were sent a full t3.5 after the answer arrived.
        self._quiet_from = self.now()
        port.send(response)
        self._record(frame, start, answer_end, answered=True)
        c.answered += 1
        c.bytes_to_master += len(response)

    def _record(self, frame: bytes, start: float, end: float, answered: bool) -> None:
        if self.log is None or frame[1] not in (3, 4):
            return  # only reads carry an address and a count worth keeping
        address = int.from_bytes(frame[2:4], "big") + 1
        count = int.from_bytes(frame[4:6], "big")
        self.log.append(Transaction(frame[0], frame[1], address, count, start, end, answered))

    # -- reports ---------------------------------------------------------------------------

    def timing(self) -> Timing:
        """How late deliveries were against their ideal instants."""
        ms = sorted(s * 1000.0 for s in self._lateness)
        if not ms:
            return Timing(0, 0.0, 0.0, 0.0, 0.0)
        return Timing(len(ms), statistics.fmean(ms), ms[len(ms) // 2],
                      ms[min(len(ms) - 1, int(len(ms) * 0.99))], ms[-1])

    def ideal_s(self, transactions: Iterable[tuple[int, int]]) -> float:
        """:func:`ideal_wire_time` on this line with this turnaround."""
        return ideal_wire_time(transactions, self.line, self.turnaround_s)
