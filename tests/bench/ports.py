"""Byte-stream plumbing of the bus emulator: master front ends and the meters' connection.

Kept apart from :mod:`tests.bench.emulator` so that the emulator reads as the line's timing rules
only. Everything here is callback-based (asyncio protocols, ``add_reader``) so that the arrival
time of a request is taken when its bytes come out of the kernel, not when a task gets around to
reading them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from collections.abc import Callable
from typing import Protocol

from tests import rtu

#: A partial frame followed by this much quiet is a truncated frame (masters write whole frames).
PARTIAL_FRAME_TIMEOUT_S = 0.05


class Line(Protocol):
    """What a master's port needs from the line it is attached to."""

    def now(self) -> float: ...

    def wire_s(self, nbytes: int) -> float: ...

    def submit(self, port: MasterPort, frame: bytes, start: float) -> None: ...

    def received(self, nbytes: int) -> None: ...


class MasterPort:
    """One master's side of the line: cuts its byte stream into request frames.

    A frame starts on the line when its first byte arrives, or when the master's own previous
    frame has finished if that is later (a UART sends one frame after the other).
    """

    def __init__(self, line: Line, send: Callable[[bytes], None]) -> None:
        self.line = line
        self.send = send
        self._buf = bytearray()
        self._start = 0.0
        self._tx_free_at = 0.0
        self._flush: asyncio.TimerHandle | None = None

    def feed(self, data: bytes) -> None:
        if not self._buf:
            self._start = max(self.line.now(), self._tx_free_at)
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


class TcpMaster(asyncio.Protocol):
    """An RTU-over-TCP master connection."""

    def __init__(self, line: Line, on_open: Callable[[asyncio.Transport], None]) -> None:
        self.line = line
        self.on_open = on_open
        self.port: MasterPort | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.port = MasterPort(self.line, self._send)
        self.on_open(transport)

    def _send(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        assert self.port is not None
        self.port.feed(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


def open_pty_master(line: Line) -> tuple[str, Callable[[], None]]:
    """A pseudo-terminal whose slave a serial client opens; returns (path, close).

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
            port.feed(data)

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
