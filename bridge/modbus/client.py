"""The Modbus edge: one client per bus, one transaction at a time, the wire's silence respected.

pymodbus sends a request as soon as it is asked to. On an RS-485 line the next request must wait
3.5 character times after the last byte of the previous response (t3.5; fixed at 1.75 ms above
19200 baud), or the meters see one long garbled frame. This module adds that silence, bounded
timeouts, its own retries (so that retries also respect the silence), answer validation, and
reconnection after a serial adapter is unplugged or a gateway restarts.

RTU frames carry no transaction id, so an answer that comes late or twice looks like the answer
to the next request. The client therefore measures the silence from the last byte of anything,
refuses an answer that came with or was followed within t3.5 by more data, checks unit and
function, and opens a new connection after a timeout on RTU over TCP (a gateway may still hold
the late answer). A late answer that arrives alone, in place of the next one, cannot be told
apart; the timeout must exceed the slowest answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerType
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.other_message import ReportDeviceIdRequest

from bridge.errors import (
    BusUnavailable,
    ModbusError,
    ModbusExceptionReply,
    ModbusFrameError,
    ModbusTimeout,
)
from bridge.modbus.line_watch import LineWatch
from bridge.modbus.links import (
    BusStats,
    Link,
    SerialLink,
    TcpLink,
    link_char_s,
    link_silence_s,
)

log = logging.getLogger(__name__)

# pymodbus logs every unanswered request at error level with a hex dump; on a bus with a dead
# meter that floods the log. This module reports failures itself, once, with context.
logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

#: How late the event loop's timers may wake: epoll_wait takes whole milliseconds, and asyncio
#: rounds a timeout up so as never to wake early.
TIMER_RESOLUTION_S = 0.001


def connect_failure(link: Link, resolve_error: OSError | None) -> str:
    """Why a connection did not open, when pymodbus says only that it did not."""
    if isinstance(link, SerialLink):
        return "device missing or not accessible"
    if resolve_error is not None:
        return f"host name {link.host!r} does not resolve: {resolve_error.strerror}"
    return "connection refused or host unreachable"


async def _resolve_error(link: Link) -> OSError | None:
    if isinstance(link, SerialLink):
        return None
    try:
        await asyncio.get_running_loop().getaddrinfo(link.host, link.port,
                                                     type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror
        return exc
    return None


# ---------------------------------------------------------------------------------------------
# Report Slave ID (0x11) in the form the Series 4000 sends: count, slave id, run status, text.


class SlaveIdResponse(ModbusPDU):
    function_code = 0x11
    rtu_byte_count_pos = 2

    def __init__(self, slave_id: int = 0, running: bool = True, text: bytes = b"",
                 dev_id: int = 1, transaction_id: int = 0) -> None:
        super().__init__(transaction_id=transaction_id, dev_id=dev_id)
        self.slave_id = slave_id
        self.running = running
        self.text = text

    def encode(self) -> bytes:
        body = bytes([self.slave_id, 0xFF if self.running else 0x00]) + self.text
        return bytes([len(body)]) + body

    def decode(self, data: bytes) -> None:
        count = data[0]
        if count < 2 or len(data) < count + 1:
            raise ValueError(f"report slave id: byte count {count} for {len(data) - 1} bytes")
        self.slave_id = data[1]
        self.running = data[2] == 0xFF
        self.text = bytes(data[3:count + 1])


@dataclass(frozen=True, slots=True)
class SlaveId:
    slave_id: int
    running: bool
    text: str


# ---------------------------------------------------------------------------------------------
# The client


class BusClient:
    """One Modbus master on one bus: serial port, Modbus TCP, or RTU over TCP."""

    def __init__(self, link: Link, *, timeout: float = 1.0, retries: int = 1,
                 name: str = "bus", clock: Callable[[], float] = time.monotonic) -> None:
        self.link = link
        self.name = name
        self.timeout = timeout
        self.retries = retries
        self.silence = link_silence_s(link)
        self.stats = BusStats()
        self._clock = clock
        self._lock = asyncio.Lock()
        self._quiet_until = 0.0
        self._client: AsyncModbusSerialClient | AsyncModbusTcpClient | None = None
        self._reconnect_delay = 0.0
        self._watch = LineWatch(clock, self.stats, link_char_s(link), self.silence)

    # -- connection ------------------------------------------------------------------------

    def _make_client(self) -> AsyncModbusSerialClient | AsyncModbusTcpClient:
        # pymodbus retries and reconnects are off: this class does both, so that a retry also
        # waits out the line's silence and a dead gateway does not loop inside pymodbus.
        common: dict[str, Any] = {"timeout": self.timeout, "retries": 0,
                                  "reconnect_delay": 0, "name": self.name,
                                  "trace_packet": self._watch.packet,
                                  "trace_pdu": self._watch.pdu}
        client: AsyncModbusSerialClient | AsyncModbusTcpClient
        if isinstance(self.link, SerialLink):
            client = AsyncModbusSerialClient(
                self.link.device, framer=FramerType.RTU, baudrate=self.link.baudrate,
                parity=self.link.parity, stopbits=self.link.stopbits,
                bytesize=self.link.bytesize, **common)
        else:
            framer = FramerType.RTU if self.link.rtu else FramerType.SOCKET
            client = AsyncModbusTcpClient(self.link.host, port=self.link.port, framer=framer,
                                          **common)
        client.register(SlaveIdResponse)
        # A silent meter must never make pymodbus drop the connection shared by the others.
        client.set_max_no_responses(1 << 30)
        return client

    @property
    def connected(self) -> bool:
        return self._client is not None and bool(self._client.connected)

    async def connect(self) -> None:
        """Open the port or connection; raise :class:`BusUnavailable` if that fails."""
        if self.connected:
            return
        if self._client is not None:
            self._client.close()
        self._client = self._make_client()
        try:
            ok = await self._client.connect()
        except (OSError, ModbusException) as exc:
            ok = False
            reason: str = str(exc)
        else:
            reason = "" if ok else connect_failure(self.link, await _resolve_error(self.link))
        if not ok:
            self._client.close()
            self._client = None
            raise BusUnavailable(f"{self.link.describe()}: cannot connect ({reason})")
        self.stats.reconnects += 1
        self._quiet_until = self._clock() + self.silence

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- transactions ----------------------------------------------------------------------

    async def _wait_silence(self) -> None:
        """Wait until the line has been quiet for t3.5 since the last byte of anything.

        The event loop's timers wake on epoll's whole milliseconds, so a timer alone ends the
        silence up to a millisecond late: 7 % of a power read's line time at 19200 baud, every
        read. The timer covers all but the last millisecond; the rest is slept in this thread,
        which costs no CPU and holds other tasks back by at most that millisecond."""
        while True:
            idle_at = self._quiet_until
            if self.silence:
                idle_at = max(idle_at, self._watch.last_rx + self.silence)
            delay = idle_at - self._clock()
            if delay <= 0:
                return
            if delay > TIMER_RESOLUTION_S:
                await asyncio.sleep(delay - TIMER_RESOLUTION_S)
                continue
            time.sleep(delay)  # noqa: ASYNC251 - at most TIMER_RESOLUTION_S, on purpose
            # Bytes that arrived meanwhile are read by a callback the loop queues behind this
            # task on its next turn: yield twice, so the line watch has seen them when the
            # silence is judged again.
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    async def _transact(self, unit: int, what: str, function: int,
                        send: Callable[[Any], Awaitable[Any]],
                        retries: int | None = None,
                        check: Callable[[Any], str | None] | None = None) -> Any:
        async with self._lock:
            last_error: ModbusError | None = None
            for attempt in range((self.retries if retries is None else retries) + 1):
                if attempt:
                    self.stats.retries += 1
                await self.connect()
                await self._wait_silence()
                self._watch.expect_answer()
                started = self._clock()
                try:
                    # pymodbus times the answer out itself; this only bounds a hung transport.
                    async with asyncio.timeout(self.timeout + 0.5):
                        response = await send(self._client)
                except (ModbusIOException, TimeoutError) as exc:
                    # pymodbus's own text ("... continue with next request") is about its
                    # internals, not the meter.
                    last_error = ModbusTimeout(f"unit {unit}: no answer to {what}")
                    log.debug("unit %s, %s: %s", unit, what, exc)
                    self.stats.timeouts += 1
                    if self._watch.garbled():
                        self.stats.crc_errors += 1
                    # A late answer may still be on its way: let the line settle and drop it.
                    self._quiet_until = self._clock() + max(self.silence, 0.02)
                    if self._client is not None:
                        self._client.ctx.recv_buffer = b""
                    if isinstance(self.link, TcpLink) and self.link.rtu:
                        # A gateway may hold the answer for longer than any settling time,
                        # and without a transaction id it would pass for the next answer.
                        # A new connection leaves it behind.
                        self.close()
                    continue
                except ConnectionException as exc:
                    self.close()
                    last_error = BusUnavailable(f"{self.link.describe()}: {exc}")
                    continue
                except (ModbusException, ValueError, struct.error, IndexError) as exc:
                    last_error = ModbusFrameError(f"unit {unit}: bad answer to {what}: {exc}")
                    continue
                finally:
                    self._quiet_until = max(self._quiet_until, self._clock() + self.silence)
                if getattr(response, "dev_id", unit) not in (unit, 0):
                    last_error = ModbusFrameError(
                        f"unit {unit}: answer came from unit {response.dev_id}")
                    continue
                if response.function_code & 0x7F != function:
                    last_error = ModbusFrameError(
                        f"unit {unit}: answer to {what} has function {response.function_code}")
                    continue
                problem = check(response) if check and not response.isError() else None
                if problem:
                    # A well-formed frame of the wrong shape (a damaged byte count that still
                    # passed the CRC, or an answer meant for another request): try again.
                    last_error = ModbusFrameError(f"unit {unit}: {what} {problem}")
                    continue
                if self.silence:
                    # Keep listening for t3.5 (the silence is due before the next request
                    # anyway): an answer with company may belong to an earlier request.
                    await self._wait_silence()
                    if self._watch.answer_had_company():
                        self.stats.stray_frames += 1
                        last_error = ModbusFrameError(
                            f"unit {unit}: more data came with the answer to {what}; "
                            "it may be a late or repeated answer")
                        continue
                if isinstance(response, ExceptionResponse) or response.isError():
                    self.stats.record_ok(self._clock() - started)
                    self.stats.exceptions += 1
                    reply = ModbusExceptionReply(response.exception_code, f"unit {unit}, {what}")
                    self.stats.last_error = str(reply)
                    raise reply
                self.stats.record_ok(self._clock() - started)
                return response
            self.stats.errors += 1
            self.stats.per_unit_errors[unit] = self.stats.per_unit_errors.get(unit, 0) + 1
            assert last_error is not None
            self.stats.last_error = str(last_error)
            raise last_error

    async def read_registers(self, unit: int, address: int, count: int,
                             function: int = 3, retries: int | None = None) -> list[int]:
        """Read ``count`` registers from 0-based ``address`` (function 0x03 or 0x04)."""
        what = f"read of {count} registers from register {address + 1}"

        async def send(client: Any) -> Any:
            if function == 4:
                return await client.read_input_registers(address, count=count, device_id=unit)
            return await client.read_holding_registers(address, count=count, device_id=unit)

        def check(response: Any) -> str | None:
            got = len(getattr(response, "registers", []))
            return None if got == count else f"returned {got} registers"

        response = await self._transact(unit, what, 4 if function == 4 else 3, send, retries,
                                        check)
        return list(response.registers)

    async def write_register(self, unit: int, address: int, value: int,
                             retries: int | None = None) -> None:
        what = f"write of {value} to register {address + 1}"

        async def send(client: Any) -> Any:
            return await client.write_register(address, value, device_id=unit)

        response = await self._transact(unit, what, 6, send, retries)
        echoed = getattr(response, "registers", [value])
        if getattr(response, "address", address) != address or list(echoed)[:1] != [value]:
            raise ModbusFrameError(f"unit {unit}: {what} was echoed wrongly")

    async def report_slave_id(self, unit: int) -> SlaveId:
        async def send(client: Any) -> Any:
            return await client.execute(False, ReportDeviceIdRequest(dev_id=unit))

        response = await self._transact(unit, "report slave id", 0x11, send)
        if not isinstance(response, SlaveIdResponse):
            raise ModbusFrameError(f"unit {unit}: unexpected answer to report slave id")
        text = response.text.decode("ascii", errors="replace").strip("\x00 ")
        return SlaveId(response.slave_id, response.running, text)

    async def read_device_identification(self, unit: int) -> dict[int, str]:
        async def send(client: Any) -> Any:
            return await client.read_device_information(read_code=1, object_id=0,
                                                        device_id=unit)

        response = await self._transact(unit, "read device identification", 0x2B, send)
        info = getattr(response, "information", {}) or {}
        out: dict[int, str] = {}
        for oid, raw in info.items():
            if isinstance(raw, bytes):
                out[int(oid)] = raw.decode("ascii", errors="replace")
            elif isinstance(raw, list):
                out[int(oid)] = b"".join(raw).decode("ascii", errors="replace")
            else:
                out[int(oid)] = str(raw)
        return out


@contextlib.asynccontextmanager
async def open_bus(link: Link, **kwargs: Any) -> Any:
    """``async with open_bus(link) as bus``: a connected client, closed on exit."""
    bus = BusClient(link, **kwargs)
    try:
        await bus.connect()
        yield bus
    finally:
        bus.close()
