"""The bridge's Modbus TCP server: other systems read the meters through the bridge.

pymodbus frames the requests; this module answers them from a :class:`ShareBackend` (the
running bridge implements it) and keeps clients from hurting the bus: at most
``max_connections`` connections, at most ``passthrough_reads_per_s`` reads per second and
connection that the cache cannot answer (exception 06 beyond that; cached answers are free),
idle connections closed, one request at a time per connection and a short bound on the ones
waiting. A refusal of the backend becomes the Modbus exception it names; nothing else in a
client's request can stop the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest, ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.simulator import DataType, SimData, SimDevice

from bridge.errors import (
    DEVICE_BUSY,
    DEVICE_FAILURE,
    ILLEGAL_ADDRESS,
    ILLEGAL_FUNCTION,
    ILLEGAL_VALUE,
    RequestRefused,
)

log = logging.getLogger(__name__)

#: Requests one connection may have waiting behind the one being answered.
MAX_PENDING_PER_CONNECTION = 8
#: The Modbus limits of one read (0x03/0x04) and one write (0x10).
MAX_READ_COUNT = 125
MAX_WRITE_COUNT = 123
#: Read device identification: basic (1), regular (2), extended (3), one object (4).
DEVICE_ID_SPECIFIC = 4


class ShareBackend(Protocol):
    """What the server needs from the bridge. Every method may raise
    :class:`~bridge.errors.RequestRefused`; addresses are the 0-based wire addresses."""

    def cached(self, unit: int, address: int, count: int) -> Sequence[int] | None: ...

    async def read_through(self, unit: int, address: int, count: int) -> Sequence[int]: ...

    async def write(self, unit: int, address: int, values: Sequence[int]) -> None: ...

    def identity(self, unit: int) -> Mapping[int, str]: ...


@dataclass(frozen=True, slots=True)
class ServerLimits:
    max_connections: int = 8
    passthrough_reads_per_s: float = 2.0
    idle_timeout_s: float = 60.0


@dataclass(slots=True)
class TokenBucket:
    """``rate_per_s`` tokens a second, at most ``burst`` saved up."""

    rate_per_s: float
    burst: float
    tokens: float
    updated_at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated_at) * self.rate_per_s)
        self.updated_at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(slots=True)
class ClientStats:
    """One connection, for the log and the status page."""

    peer: str
    connected_at: float
    requests: int = 0
    passthrough_reads: int = 0
    refused: dict[int, int] = field(default_factory=dict)


def _exception(request: ModbusPDU, code: int) -> ExceptionResponse:
    return ExceptionResponse(request.function_code, code, device_id=request.dev_id,
                             transaction=request.transaction_id)


class _Connection(ServerRequestHandler):
    """One client: answers its requests in order, within its limits."""

    server: ShareServer

    def __init__(self, owner: ShareServer) -> None:
        super().__init__(owner, owner.trace_packet, owner.trace_pdu,  # type: ignore[no-untyped-call]
                         owner.trace_connect)
        self.share = owner
        self.stats = ClientStats("?", owner.clock())
        limits = owner.limits
        self.bucket = TokenBucket(limits.passthrough_reads_per_s,
                                  max(1.0, limits.passthrough_reads_per_s),
                                  max(1.0, limits.passthrough_reads_per_s), owner.clock())
        self._turn = asyncio.Lock()
        self._pending = 0
        self._last_activity = owner.clock()
        self._idle: asyncio.TimerHandle | None = None

    # -- connection ---------------------------------------------------------------------------

    def callback_connected(self) -> None:
        super().callback_connected()
        peer = self.transport.get_extra_info("peername") if self.transport else None
        self.stats.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        if len(self.share.clients) >= self.share.limits.max_connections:
            log.warning("Modbus server: %s refused, already %d connections", self.stats.peer,
                        len(self.share.clients))
            self.close()
            return
        self.share.clients[id(self)] = self.stats
        log.info("Modbus server: %s connected", self.stats.peer)
        self._arm_idle(self.share.limits.idle_timeout_s)

    def callback_disconnected(self, exc: Exception | None) -> None:
        super().callback_disconnected(exc)
        self._forget("disconnected")

    def _forget(self, how: str) -> None:
        if self._idle is not None:
            self._idle.cancel()
        if self.share.clients.pop(id(self), None) is not None:
            log.info("Modbus server: %s %s after %d requests", self.stats.peer, how,
                     self.stats.requests)

    def _close(self, how: str) -> None:
        """Close from this side (pymodbus does not report its own close as a disconnect)."""
        self._forget(how)
        self.close()

    def _arm_idle(self, delay_s: float) -> None:
        self._idle = asyncio.get_running_loop().call_later(delay_s, self._check_idle)

    def _check_idle(self) -> None:
        idle_s = self.share.clock() - self._last_activity
        limit_s = self.share.limits.idle_timeout_s
        if idle_s < limit_s or self._pending:
            self._arm_idle(max(limit_s - idle_s, 0.1))
            return
        self._close(f"closed after {idle_s:.0f} s idle")

    # -- requests -----------------------------------------------------------------------------

    def callback_data(self, data: bytes, addr: tuple[Any, ...] | None = None) -> int:
        # pymodbus takes one frame per call; a client may send several in one segment.
        used = 0
        while used < len(data):
            step: int = super().callback_data(data[used:], addr)
            request, self.last_pdu = self.last_pdu, None  # answered here, not by pymodbus
            if request is not None:
                self._accept(request)
            if step <= 0:
                break  # the rest is an incomplete frame: wait for more
            used += step
        return used

    def _accept(self, request: ModbusPDU) -> None:
        self._last_activity = self.share.clock()
        self.stats.requests += 1
        if self._pending >= MAX_PENDING_PER_CONNECTION:
            self._send(request, _exception(request, DEVICE_BUSY))
            return
        self._pending += 1
        task = asyncio.get_running_loop().create_task(self._serve(request))
        self.share.tasks.add(task)
        task.add_done_callback(self.share.tasks.discard)

    async def _serve(self, request: ModbusPDU) -> None:
        try:
            async with self._turn:
                try:
                    response = await self._answer(request)
                except RequestRefused as exc:
                    self.stats.refused[exc.code] = self.stats.refused.get(exc.code, 0) + 1
                    log.debug("Modbus server: %s unit %d: %s", self.stats.peer,
                              request.dev_id, exc)
                    response = _exception(request, exc.code)
                except Exception:  # a bug must cost one answer, not the server
                    log.exception("Modbus server: %s: %s failed", self.stats.peer, request)
                    response = _exception(request, DEVICE_FAILURE)
                self._send(request, response)
        finally:
            self._pending -= 1
            self._last_activity = self.share.clock()

    def _send(self, request: ModbusPDU, response: ModbusPDU) -> None:
        if not self.transport:  # the client has gone (pymodbus sets it to None)
            return
        response.transaction_id = request.transaction_id
        response.dev_id = request.dev_id
        self.server_send(response, None)  # type: ignore[no-untyped-call]

    async def _answer(self, request: ModbusPDU) -> ModbusPDU:
        backend, unit = self.share.backend, request.dev_id
        if isinstance(request, ReadHoldingRegistersRequest):  # and its subclass, 0x04
            if not 1 <= request.count <= MAX_READ_COUNT:
                raise RequestRefused(ILLEGAL_VALUE, f"read of {request.count} registers")
            words = backend.cached(unit, request.address, request.count)
            if words is None:
                if not self.bucket.take(self.share.clock()):
                    raise RequestRefused(DEVICE_BUSY, "pass-through reads per second used up")
                self.stats.passthrough_reads += 1
                words = await backend.read_through(unit, request.address, request.count)
            kind = ReadHoldingRegistersResponse if request.function_code == 3 \
                else ReadInputRegistersResponse
            return kind(registers=list(words))
        if isinstance(request, WriteSingleRegisterRequest):
            await backend.write(unit, request.address, request.registers[:1])
            return WriteSingleRegisterResponse(address=request.address,
                                               registers=request.registers[:1])
        if isinstance(request, WriteMultipleRegistersRequest):
            if not 1 <= request.count <= MAX_WRITE_COUNT or \
                    len(request.registers) != request.count:
                raise RequestRefused(ILLEGAL_VALUE, f"write of {request.count} registers with "
                                                    f"{len(request.registers)} values")
            await backend.write(unit, request.address, request.registers)
            return WriteMultipleRegistersResponse(address=request.address, count=request.count)
        if isinstance(request, ReadDeviceInformationRequest):
            objects = dict(backend.identity(unit))
            if request.read_code == DEVICE_ID_SPECIFIC:
                if request.object_id not in objects:
                    raise RequestRefused(ILLEGAL_ADDRESS, f"no object {request.object_id}")
                objects = {request.object_id: objects[request.object_id]}
            return ReadDeviceInformationResponse(read_code=request.read_code,
                                                 information=objects)
        raise RequestRefused(ILLEGAL_FUNCTION, f"function {request.function_code} is not served")


class ShareServer(ModbusTcpServer):
    """Modbus TCP on ``host:port`` in front of a :class:`ShareBackend`."""

    def __init__(self, backend: ShareBackend, host: str, port: int,
                 limits: ServerLimits = ServerLimits(),
                 clock: Callable[[], float] = time.monotonic) -> None:
        # pymodbus wants a datastore; every request is answered by the connections instead.
        placeholder = SimDevice(0, simdata=[SimData(0, values=0, datatype=DataType.REGISTERS)])
        super().__init__([placeholder], address=(host, port))
        self.backend = backend
        self.limits = limits
        self.clock = clock
        #: Where it listens, as configured (for the status page).
        self.address = f"{host}:{port}"
        self.clients: dict[int, ClientStats] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    def callback_new_connection(self) -> _Connection:
        return _Connection(self)

    async def start(self) -> tuple[str, int]:
        """Listen; returns the bound address (port 0 picks a free port)."""
        await self.serve_forever(background=True)
        sock = getattr(self.transport, "sockets", [None])[0]
        host, port = self.comm_params.source_address or ("", 0)
        bound = sock.getsockname() if sock else (host, port)
        log.info("Modbus server listening on %s:%d", bound[0], bound[1])
        return str(bound[0]), int(bound[1])

    async def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        for task in list(self.tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.shutdown()  # type: ignore[no-untyped-call]
