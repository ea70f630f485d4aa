"""The line-rate bus emulator, driven by the bridge's own BusClient and by raw sockets.

Durations are only ever asserted as lower bounds that hold by construction (the emulator never
delivers before a frame's wire time) or as counts; the machine may be loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from bridge.errors import ModbusTimeout
from bridge.modbus.client import BusClient
from bridge.modbus.links import SerialLink, TcpLink
from tests import rtu
from tests.bench.emulator import (
    BusEmulator,
    LineFormat,
    Transaction,
    ideal_transaction_s,
    ideal_wire_time,
    read_sizes,
    utilisation,
)
from tests.bench.ports import SO_TIMESTAMPNS, TIMESPEC, kernel_arrival_s

# (unit, 0-based address, count): the float block, the first 124 registers, a small block.
READS = [(1, 256, 90), (2, 0, 124), (1, 128, 26), (2, 256, 4)]


def test_the_19200_figure() -> None:
    """124 registers at 19200 8N1: 4.2 ms + 131.8 ms + 2 x 1.8 ms = 139.6 ms."""
    line = LineFormat.parse("19200 8N1")
    req, resp = read_sizes(124)
    assert (req, resp) == (8, 253)
    assert line.bits_per_char == 10
    assert line.wire_s(req) == pytest.approx(0.0042, abs=5e-5)
    assert line.wire_s(resp) == pytest.approx(0.1318, abs=5e-5)
    assert line.t35_s == pytest.approx(0.0018, abs=5e-5)
    assert ideal_transaction_s(req, resp, line) == pytest.approx(0.1396, abs=5e-5)
    assert ideal_wire_time([(req, resp)] * 3, line) == pytest.approx(3 * 0.1396, abs=2e-4)


def test_line_formats_and_silences() -> None:
    assert LineFormat.parse("19200 8E1").bits_per_char == 11
    assert LineFormat.parse("9600 8N2").bits_per_char == 11
    assert LineFormat.parse("38400 8N1").t35_s == 0.00175
    assert LineFormat.parse("9600 8N1").t35_s == pytest.approx(3.5 * 10 / 9600)
    line = LineFormat(19200)
    # A turnaround longer than t3.5 replaces the first silence; a dead meter costs one frame.
    assert ideal_transaction_s(8, 253, line, 0.010) == pytest.approx(
        line.wire_s(8) + 0.010 + line.wire_s(253) + line.t35_s)
    assert ideal_transaction_s(8, 0, line, 0.010) == pytest.approx(line.wire_s(8) + line.t35_s)
    assert utilisation(0.5, 1.0) == 0.5
    with pytest.raises(ValueError):
        LineFormat.parse("19200")
    with pytest.raises(ValueError):
        read_sizes(126)


async def _reference(sim: Any) -> dict[tuple[int, int, int], list[int]]:
    """The registers straight from the simulator (values are frozen)."""
    host, port = await sim.serve_rtu_over_tcp()
    client = BusClient(TcpLink(host, port, rtu=True), timeout=1.0)
    try:
        return {r: await client.read_registers(*r) for r in READS}
    finally:
        client.close()


async def _poll(client: BusClient, bus: BusEmulator, rounds: int,
                truth: dict[tuple[int, int, int], list[int]]) -> list[float]:
    """Read every block ``rounds`` times; check the values; return each read's duration."""
    durations = []
    for _ in range(rounds):
        for unit, address, count in READS:
            started = time.monotonic()
            assert await client.read_registers(unit, address, count) == truth[
                (unit, address, count)]
            durations.append(time.monotonic() - started)
    return durations


async def test_busclient_over_rtu_over_tcp(sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1, 2], frozen=True)
    truth = await _reference(sim)
    bus = await emulator_factory(sim, "115200 8N1", turnaround_s=0.004, record=True)
    host, port = await bus.serve_tcp()
    client = BusClient(TcpLink(host, port, rtu=True, baudrate=115200), timeout=1.0)
    try:
        durations = await _poll(client, bus, 3, truth)
    finally:
        client.close()
    # Every request carried the kernel's receive stamp, and none is stamped before the answer
    # that the client waited for had ended on the line.
    assert bus.counters.unstamped == 0
    _assert_in_turn(bus.log)

    line = bus.line
    sizes = [read_sizes(count) for _, _, count in READS] * 3
    for (req, resp), took in zip(sizes, durations, strict=True):
        # Nothing reaches the master before request + turnaround + answer have crossed the line.
        assert took >= line.wire_s(req) + 0.004 + line.wire_s(resp)
    c = bus.counters
    assert (c.transactions, c.answered, c.unanswered) == (12, 12, 0)
    assert c.bytes_to_meters == sum(req for req, _ in sizes)
    assert c.bytes_to_master == sum(resp for _, resp in sizes)
    assert c.busy_s == pytest.approx(
        sum(line.wire_s(req) + 0.004 + line.wire_s(resp) for req, resp in sizes))
    # BusClient waits t3.5 after every answer and never talks over one.
    assert c.silence_violations == 0
    assert c.collisions == 0
    assert c.bad_frames == 0
    # Each read waited t3.5 before its request, so the reads together take at least the ideal
    # cycle (minus the first silence, which had passed before the first read).
    assert bus.timing().samples == 24
    assert sum(durations) >= bus.ideal_s(sizes) - line.t35_s


async def test_busclient_over_a_pty(sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1, 2], frozen=True)
    truth = await _reference(sim)
    # The emulated line carries 11-bit characters. The client opens the pty as 8N1 because a
    # Linux pty refuses parity settings (tcsetattr: EINVAL); a pty has no character format and
    # above 19200 baud the client's t3.5 is 1.75 ms whatever the parity.
    bus = await emulator_factory(sim, "38400 8E1")
    path = await bus.serve_pty()
    client = BusClient(SerialLink(path, 38400), timeout=1.0)
    try:
        durations = await _poll(client, bus, 1, truth)
    finally:
        client.close()
    line = bus.line
    assert line.bits_per_char == 11
    for (_, _, count), took in zip(READS, durations, strict=True):
        req, resp = read_sizes(count)
        assert took >= line.wire_s(req) + line.wire_s(resp)
    assert bus.counters.answered == len(READS)
    assert bus.counters.silence_violations == 0


def _assert_in_turn(log: list[Transaction] | None) -> None:
    assert log
    for before, after in itertools.pairwise(log):
        assert after.start >= before.end


async def _exchange(writer: asyncio.StreamWriter, reader: asyncio.StreamReader,
                    frame: bytes, answer_size: int) -> bytes:
    writer.write(frame)
    return await asyncio.wait_for(reader.readexactly(answer_size), 5)


async def test_a_request_inside_t35_is_counted(sim_factory: Any,
                                               emulator_factory: Any) -> None:
    # 1200 baud: t3.5 is 29 ms, far longer than a loopback round trip, so the early request
    # below is early however loaded the machine is.
    sim = sim_factory([1], frozen=True)
    bus = await emulator_factory(sim, "1200 8N1", turnaround_s=0.0, record=True)
    reader, writer = await asyncio.open_connection(*await bus.serve_tcp())
    request, size = rtu.read_request(1, 0, 2), read_sizes(2)[1]
    try:
        first = await _exchange(writer, reader, request, size)
        early = await _exchange(writer, reader, request, size)  # at once: no silence
        await asyncio.sleep(2 * bus.line.t35_s)
        late = await _exchange(writer, reader, request, size)
    finally:
        writer.close()
    assert first == early == late
    image = sim.meters[1].registers()
    assert rtu.registers_of(first) == [image[1], image[2]]
    c = bus.counters
    assert c.silence_violations == 1
    assert c.answered == 3
    assert c.collisions == 0
    assert c.unstamped == 0
    _assert_in_turn(bus.log)  # early, yet after the answer: the kernel stamped it in order


async def test_a_request_over_an_answer_is_a_collision(sim_factory: Any,
                                                       emulator_factory: Any) -> None:
    sim = sim_factory([1], frozen=True)
    bus = await emulator_factory(sim, "9600 8N1")
    reader, writer = await asyncio.open_connection(*await bus.serve_tcp())
    try:
        # Two requests in one burst: the second starts while the meter is about to answer.
        writer.write(rtu.read_request(1, 0, 2) + rtu.read_request(1, 2, 2))
        answer = await asyncio.wait_for(reader.readexactly(read_sizes(2)[1]), 5)
    finally:
        writer.close()
    assert not rtu.crc_ok(answer)  # both frames are lost on a real line
    assert bus.counters.collisions == 1  # counted once, not also as a silence violation
    assert bus.counters.answered == 1
    assert bus.counters.silence_violations == 0


async def test_a_dead_unit_times_out_and_frees_the_line(sim_factory: Any,
                                                        emulator_factory: Any) -> None:
    sim = sim_factory([1, 2], frozen=True)
    truth = await _reference(sim)
    bus = await emulator_factory(sim, "115200 8N1", dead={2})
    host, port = await bus.serve_tcp()
    client = BusClient(TcpLink(host, port, rtu=True, baudrate=115200), timeout=0.3, retries=0)
    try:
        with pytest.raises(ModbusTimeout):
            await client.read_registers(2, 0, 124)
        assert await client.read_registers(1, 256, 90) == truth[(1, 256, 90)]
        bus.dead.clear()  # the meter comes back
        assert await client.read_registers(2, 0, 124) == truth[(2, 0, 124)]
    finally:
        client.close()
    c = bus.counters
    assert (c.transactions, c.answered, c.unanswered) == (3, 2, 1)
    assert c.collisions == 0
    assert c.silence_violations == 0
    line = bus.line
    # The dead meter used the line only for its request.
    assert c.busy_s == pytest.approx(
        line.wire_s(8) + sum(line.wire_s(8) + 0.005 + line.wire_s(r)
                             for r in (5 + 180, 5 + 248)))


def _timespec_cmsg(seconds: int, nanoseconds: int) -> tuple[int, int, bytes]:
    return socket.SOL_SOCKET, SO_TIMESTAMPNS, TIMESPEC.pack(seconds, nanoseconds)


@pytest.mark.parametrize(("ancdata", "offset_ns", "read_s", "expected"), [
    # 1000.5 s real time, real time 900 s ahead of the monotonic clock: 100.5 s monotonic.
    ([_timespec_cmsg(1000, 500_000_000)], 900_000_000_000, 101.0, 100.5),
    # Other ancillary data is skipped.
    ([(socket.SOL_SOCKET, socket.SCM_RIGHTS, b"\0" * 4), _timespec_cmsg(1000, 0)],
     900_000_000_000, 101.0, 100.0),
    # A stamp after the read (the wall clock stepped back meanwhile) is the read time.
    ([_timespec_cmsg(1002, 0)], 900_000_000_000, 101.0, 101.0),
    # No stamp, or a truncated one: the caller falls back to the read time and counts it.
    ([], 900_000_000_000, 101.0, None),
    ([(socket.SOL_SOCKET, SO_TIMESTAMPNS, b"\0" * (TIMESPEC.size - 1))], 900_000_000_000, 101.0,
     None),
    ([(socket.IPPROTO_IP, SO_TIMESTAMPNS, TIMESPEC.pack(1000, 0))], 0, 101.0, None),
])
def test_the_kernel_stamp_on_the_loop_clock(ancdata: list[tuple[int, int, bytes]],
                                            offset_ns: int, read_s: float,
                                            expected: float | None) -> None:
    assert kernel_arrival_s(ancdata, offset_ns, read_s) == expected


#: How long the emulator's event loop is kept from running while a request arrives: far longer
#: than the scheduling noise of a loaded machine (a few milliseconds), so the two stamps cannot
#: be confused.
BLOCKED_S = 0.03


class _TcpConn:
    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5)

    def write(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            assert chunk, "the emulator closed the connection"
            data += chunk
        return data

    def close(self) -> None:
        self.sock.close()


class _PtyConn:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            assert select.select([self.fd], [], [], 5)[0], "no answer from the emulator"
            data += os.read(self.fd, size - len(data))
        return data

    def close(self) -> None:
        os.close(self.fd)


async def _request_while_blocked(bus: BusEmulator,
                                 connect: Callable[[], _TcpConn | _PtyConn]
                                 ) -> tuple[float, float, float]:
    """A master in another thread sends a read while the emulator's event loop is blocked for
    ``BLOCKED_S``; returns (just before the write, just after it, when the loop ran again) on
    the loop's clock. The loop stays blocked until the write has returned, so the request is in
    the kernel before the emulator can read it, however the threads are scheduled."""
    request, size = rtu.read_request(1, 0, 2), read_sizes(2)[1]
    ready, go, sent = threading.Event(), threading.Event(), threading.Event()

    def master() -> tuple[float, float]:
        with contextlib.closing(connect()) as conn:
            conn.write(request)  # the emulator has taken the connection and reads it
            assert rtu.crc_ok(conn.read(size))
            ready.set()
            assert go.wait(5)
            before = time.monotonic()
            conn.write(request)
            after = time.monotonic()
            sent.set()
            assert rtu.crc_ok(conn.read(size))
            return before, after

    released: list[float] = []

    def block() -> None:
        go.set()
        assert sent.wait(5)
        time.sleep(BLOCKED_S)
        released.append(time.monotonic())

    client = asyncio.ensure_future(asyncio.to_thread(master))
    assert await asyncio.to_thread(ready.wait, 5)
    asyncio.get_running_loop().call_soon(block)
    before, after = await client
    return before, after, released[0]


async def test_a_tcp_request_is_stamped_when_the_kernel_received_it(
        sim_factory: Any, emulator_factory: Any) -> None:
    sim = sim_factory([1], frozen=True)
    bus = await emulator_factory(sim, "115200 8N1", record=True)
    address = await bus.serve_tcp()
    before, after, released = await _request_while_blocked(bus, lambda: _TcpConn(address))
    assert bus.log is not None and len(bus.log) == 2
    start = bus.log[-1].start
    # Over loopback the kernel stamps the data inside the master's send call (a millisecond of
    # slack for the conversion between the wall clock and the monotonic one) ...
    assert before - 0.001 <= start <= after + 0.001
    # ... tens of milliseconds before the emulator could read it.
    assert released - start >= BLOCKED_S
    assert bus.counters.unstamped == 0
    assert bus.counters.answered == 2


@pytest.mark.parametrize("front_end", ["pty", "tcp read time"])
async def test_a_request_is_stamped_when_the_emulator_read_it(
        front_end: str, sim_factory: Any, emulator_factory: Any) -> None:
    """A pty has no receive stamp; ``kernel_stamps=False``, kept to compare the two, stamps a
    TCP request the same way: when the loop ran again and read it, the blocked time counted as
    idle line."""
    sim = sim_factory([1], frozen=True)
    bus = await emulator_factory(sim, "115200 8N1", record=True,
                                 kernel_stamps=front_end != "tcp read time")
    if front_end == "pty":
        path = await bus.serve_pty()
        _, after, released = await _request_while_blocked(bus, lambda: _PtyConn(path))
    else:
        address = await bus.serve_tcp()
        _, after, released = await _request_while_blocked(bus, lambda: _TcpConn(address))
    assert bus.log is not None and len(bus.log) == 2
    assert bus.log[-1].start >= released
    assert bus.log[-1].start - after >= BLOCKED_S
    assert bus.counters.answered == 2
    assert bus.counters.unstamped == 0  # no stamp asked for, so none counted as missing
