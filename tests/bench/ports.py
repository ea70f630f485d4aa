"""Byte-stream plumbing of the bus emulator: master front ends and the meters' connection.

Kept apart from :mod:`tests.bench.emulator` so that the emulator reads as the line's timing rules
only. Everything here is callback-based (``add_reader``, asyncio protocols) so that a request is
handled when its bytes come out of the kernel, not when a task gets around to reading them.

When a request arrived is what the emulator's timing rests on. The RTU-over-TCP front end takes it
from the kernel: every read returns the receive timestamp the kernel put on the data
(``SO_TIMESTAMPNS``), so a request is on the line from the moment the master's write reached the
emulator's socket, however late this process gets to run. A pseudo-terminal has no receive
timestamp; its requests are stamped when the emulator reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import time
import tty
from collections.abc import Callable, Iterable
from typing import Protocol

from tests import rtu

#: A partial frame followed by this much quiet is a truncated frame (masters write whole frames).
PARTIAL_FRAME_TIMEOUT_S = 0.05

#: Linux's SO_TIMESTAMPNS socket option (include/uapi/asm-generic/socket.h): the kernel stamps
#: received data with the time it arrived, and ``recvmsg`` returns the stamp as ancillary data
#: of this type. Python's socket module has no constant for it.
SO_TIMESTAMPNS = 35

#: The stamp's layout: the kernel's old struct timespec (seconds, nanoseconds as C longs) on
#: CLOCK_REALTIME, which is what option 35 delivers on 64-bit and 32-bit systems alike (a 32-bit
#: Raspberry Pi OS gets two 4-byte fields).
TIMESPEC = struct.Struct("@ll")

#: Bytes a master's read takes at most (requests are 8 bytes; writes of registers up to 256).
READ_SIZE = 4096


class Line(Protocol):
    """What a master's port needs from the line it is attached to."""

    def now(self) -> float: ...

    def wire_s(self, nbytes: int) -> float: ...

    def submit(self, port: MasterPort, frame: bytes, start: float) -> None: ...

    def received(self, nbytes: int) -> None: ...

    def unstamped(self) -> None: ...


def kernel_arrival_s(ancdata: Iterable[tuple[int, int, bytes]], realtime_minus_monotonic_ns: int,
                     read_s: float) -> float | None:
    """When the kernel received the data of one ``recvmsg``, on the monotonic clock (the event
    loop's ``time()``), from the read's ancillary data; None if it carries no receive stamp.

    ``realtime_minus_monotonic_ns`` converts the stamp (CLOCK_REALTIME) and is sampled at the
    read, so only a step of the wall clock between arrival and read could make it wrong;
    the result is never later than ``read_s``, when the data had certainly arrived. When one read
    returns several of the master's writes, the stamp is the last one's: a request that waited
    in the socket behind another one starts no earlier than that.
    """
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= TIMESPEC.size:
            seconds: int
            nanoseconds: int
            seconds, nanoseconds = TIMESPEC.unpack_from(data)
            arrival_ns = seconds * 1_000_000_000 + nanoseconds - realtime_minus_monotonic_ns
            return min(arrival_ns / 1e9, read_s)
    return None


class MasterPort:
    """One master's side of the line: cuts its byte stream into request frames.

    A frame starts on the line when its first byte arrived, or when the master's own previous
    frame has finished if that is later (a UART sends one frame after the other).
    """

    def __init__(self, line: Line, send: Callable[[bytes], None]) -> None:
        self.line = line
        self.send = send
        self._buf = bytearray()
        self._start = 0.0
        self._tx_free_at = 0.0
        self._flush: asyncio.TimerHandle | None = None

    def feed(self, data: bytes, arrival: float) -> None:
        """Bytes from the master, which arrived at ``arrival`` (monotonic seconds): the kernel's
        receive stamp over TCP, the read time over a pty (see the front ends)."""
        if not self._buf:
            self._start = max(arrival, self._tx_free_at)
        self._buf += data
        self.line.received(len(data))
        if self._flush:
            self._flush.cancel()
            self._flush = None
        while self._buf:
            try:
                size = rtu.request_length(bytes(self._buf))
            except rtu.FrameError:
                size = len(self._buf)  # garbage: the whole burst is one unreadable frame
            if size is None or len(self._buf) < size:
                self._flush = asyncio.get_running_loop().call_later(
                    PARTIAL_FRAME_TIMEOUT_S, self._truncated)
                return
            frame = bytes(self._buf[:size])
            del self._buf[:size]
            self._submit(frame)

    def _submit(self, frame: bytes) -> None:
        start = self._start
        self._tx_free_at = self._start = start + self.line.wire_s(len(frame))
        self.line.submit(self, frame, start)

    def _truncated(self) -> None:
        self._flush = None
        if self._buf:
            frame = bytes(self._buf)
            self._buf.clear()
            self._submit(frame)


class TcpMaster:
    """One RTU-over-TCP master's connection, read with ``add_reader`` and ``recvmsg`` so that
    each read carries the kernel's receive stamp (an asyncio protocol never sees it).

    With ``kernel_stamps`` false a request is stamped when it is read, as a pty's is: the time
    this process got to run, which on a busy machine is later than the master's write (kept to
    compare the two).
    """

    def __init__(self, line: Line, sock: socket.socket, kernel_stamps: bool,
                 on_close: Callable[[TcpMaster], None]) -> None:
        self.line = line
        self.sock = sock
        self.kernel_stamps = kernel_stamps
        self.on_close = on_close
        self.port = MasterPort(line, self._send)
        self._out = bytearray()
        self._closed = False
        self._loop = asyncio.get_running_loop()
        sock.setblocking(False)
        # As asyncio's own transports do: an answer leaves in one segment, at once.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            data, ancdata, _, _ = self.sock.recvmsg(READ_SIZE, socket.CMSG_SPACE(TIMESPEC.size))
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        read_s = self.line.now()
        if not data:
            self.close()
            return
        arrival = read_s
        if self.kernel_stamps:
            stamp = kernel_arrival_s(ancdata, time.time_ns() - time.monotonic_ns(), read_s)
            if stamp is None:
                self.line.unstamped()
            else:
                arrival = stamp
        self.port.feed(data, arrival)

    def _send(self, data: bytes) -> None:
        if self._closed:
            return
        if not self._out:
            try:
                data = data[self.sock.send(data):]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close()
                return
            if not data:
                return
            self._loop.add_writer(self.sock.fileno(), self._writable)
        self._out += data

    def _writable(self) -> None:
        try:
            del self._out[:self.sock.send(self._out)]
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close()
            return
        if not self._out:
            self._loop.remove_writer(self.sock.fileno())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self.sock.fileno())
        self._loop.remove_writer(self.sock.fileno())
        self.sock.close()
        self.on_close(self)


def open_tcp_masters(line: Line, host: str, port: int,
                     kernel_stamps: bool) -> tuple[tuple[str, int], Callable[[], None]]:
    """Listen for RTU-over-TCP masters; returns (bound address, close)."""
    loop = asyncio.get_running_loop()
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    listener = socket.create_server((host, port), family=family)
    listener.setblocking(False)
    if kernel_stamps:
        # Set on the listener, the option holds for every connection from its first byte (an
        # accepted socket inherits it): a master writes its first request as soon as it has
        # connected, before the accept below, and that request is stamped too.
        listener.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    masters: set[TcpMaster] = set()

    def accept() -> None:
        try:
            sock, _ = listener.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return
        masters.add(TcpMaster(line, sock, kernel_stamps, masters.discard))

    loop.add_reader(listener.fileno(), accept)

    def close() -> None:
        loop.remove_reader(listener.fileno())
        listener.close()
        for master in list(masters):
            master.close()

    bound = listener.getsockname()
    return (str(bound[0]), int(bound[1])), close


def open_pty_master(line: Line) -> tuple[str, Callable[[], None]]:
    """A pseudo-terminal whose slave a serial client opens; returns (path, close).

    A request is stamped when the emulator reads it: a pty has no receive timestamp, so the time
    between the master's write and this process running (the scheduler's delay, on a busy
    machine up to a millisecond or more) counts as idle line time, as if the master were slow.

    The emulator keeps the slave open itself, so a client closing and reopening the port does
    not end the terminal. The terminal's own settings do not matter (the emulator applies its
    line format), and Linux refuses parity settings on a pty: open it as 8N1.
    """
    loop = asyncio.get_running_loop()
    master, slave = os.openpty()
    tty.setraw(slave)
    os.set_blocking(master, False)

    def send(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(master, view):]

    port = MasterPort(line, send)

    def readable() -> None:
        try:
            data = os.read(master, 4096)
        except (BlockingIOError, OSError):
            return
        if data:
            port.feed(data, line.now())

    loop.add_reader(master, readable)

    def close() -> None:
        loop.remove_reader(master)
        for fd in (master, slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    return os.ttyname(slave), close


class Meters(asyncio.Protocol):
    """The connection to the simulated meters (RTU over TCP): one request, one answer."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.arrived = asyncio.Event()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self.arrived.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.arrived.set()

    async def ask(self, frame: bytes, timeout: float) -> bytes | None:
        """Send a request, return the one response frame, or None after ``timeout``."""
        if self.transport is None:
            return None
        self.buf.clear()  # a late answer to an earlier request is not this one's
        self.transport.write(frame)
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        size = rtu.response_length(bytes(self.buf))
                    except rtu.FrameError:
                        return bytes(self.buf)
                    if size is not None and len(self.buf) >= size:
                        return bytes(self.buf[:size])
                    if self.transport is None:
                        return None
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            return None

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
