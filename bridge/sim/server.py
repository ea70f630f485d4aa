"""Serve simulated Series 4000-K meters over Modbus TCP, RTU over TCP and a pseudo-terminal.

The meters' behaviour lives in :mod:`bridge.sim.model`; this module only puts their register
images on a pymodbus server. A unit id nobody answers for stays silent, like on a real bus, and
a meter switched off (``meter.alive = False``) stops answering everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tty
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.pdu import ModbusPDU
from pymodbus.pdu.device import ModbusDeviceIdentification
from pymodbus.pdu.exceptionresponse import ExceptionResponse
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest, ReadDeviceInformationResponse
from pymodbus.pdu.other_message import ReportDeviceIdRequest
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from bridge.meters.series4000 import points as s4k
from bridge.model.registers import Access
from bridge.sim.dumped import identification_of, refusal_of, slave_id_of
from bridge.sim.model import SimulatedMeter

log = logging.getLogger(__name__)


def _meter_of(context: Any, device_id: int) -> SimulatedMeter | None:
    runtime = getattr(context, "devices", {}).get(device_id)
    action = getattr(runtime, "action", None)
    meter = getattr(action, "args", (None,))[0]
    return meter if isinstance(meter, SimulatedMeter) else None


class _SlaveIdAnswer(ModbusPDU):
    """The meter's answer to Report Slave ID (0x11): byte count, slave id, run status, text."""

    function_code = 0x11
    rtu_byte_count_pos = 2

    def __init__(self, slave_id: int = 0, running: bool = True, text: bytes = b"",
                 dev_id: int = 1, transaction_id: int = 0) -> None:
        super().__init__(transaction_id=transaction_id, dev_id=dev_id)
        self.slave_id, self.running, self.text = slave_id, running, text

    def encode(self) -> bytes:
        # Run status 0xFF: the application runs; 0x00: the boot system.
        body = bytes([self.slave_id, 0xFF if self.running else 0x00]) + self.text
        return bytes([len(body)]) + body

    def decode(self, data: bytes) -> None:
        self.text = bytes(data[3:data[0] + 1])


class _SlaveIdRequest(ReportDeviceIdRequest):
    async def datastore_update(  # type: ignore[override]  # None = stay silent
            self, context: Any, device_id: int) -> ModbusPDU | None:
        meter = _meter_of(context, device_id)
        if meter is None or not meter.alive:
            return None
        answer = slave_id_of(meter)
        if isinstance(answer, int):
            return ExceptionResponse(self.function_code, answer, device_id=device_id,
                                     transaction=self.transaction_id)
        return _SlaveIdAnswer(answer.slave_id, answer.running, answer.text.encode(),
                              dev_id=device_id, transaction_id=self.transaction_id)


class _DeviceInfoRequest(ReadDeviceInformationRequest):
    async def datastore_update(  # type: ignore[override]  # None = stay silent
            self, context: Any, device_id: int) -> ModbusPDU | None:
        meter = _meter_of(context, device_id)
        if meter is None or not meter.alive:
            return None
        objects = identification_of(meter)
        if isinstance(objects, int):
            return ExceptionResponse(self.function_code, objects, device_id=device_id,
                                     transaction=self.transaction_id)
        # The meter's own objects (pymodbus keeps one identity per process, not per unit).
        return ReadDeviceInformationResponse(
            read_code=self.read_code, information={k: v.encode() for k, v in objects.items()},
            dev_id=device_id, transaction_id=self.transaction_id)


def _layout() -> list[SimData]:
    """Readable addresses of the meter; writable ones are the configuration set-up."""
    blocks = [SimData(0, count=128, values=0, datatype=DataType.REGISTERS, readonly=True)]
    for reg in range(129, 155):
        row = s4k.BY_REG[reg]
        blocks.append(SimData(reg - 1, values=0, datatype=DataType.REGISTERS,
                              readonly=row.access is Access.R))
    blocks.append(SimData(256, count=90, values=0, datatype=DataType.REGISTERS, readonly=True))
    blocks.append(SimData(s4k.REG_FIRMWARE - 1, values=0, datatype=DataType.REGISTERS,
                          readonly=True))
    return blocks


@dataclass
class WriteRecord:
    unit: int
    reg: int
    values: list[int]
    exception: int | None


@dataclass
class Simulator:
    """A set of simulated meters and the servers that expose them."""

    meters: dict[int, SimulatedMeter]
    write_log: list[WriteRecord] = field(default_factory=list)
    requests: int = 0
    #: Reads answered with an exception (a meter's quirks or a dump's refused ranges).
    refused_reads: int = 0
    _echo: dict[tuple[int, int], int] = field(default_factory=dict)
    _servers: list[Any] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _ptys: list[_PtyBridge] = field(default_factory=list)

    @classmethod
    def build(cls, units: Iterable[int], system_type: int | Iterable[int] = 40,
              **kwargs: Any) -> Simulator:
        units = list(units)
        types = ([system_type] * len(units) if isinstance(system_type, int)
                 else list(system_type))
        return cls({u: SimulatedMeter(u, t, **kwargs) for u, t in zip(units, types, strict=True)})

    # -- the register action ----------------------------------------------------------------

    async def _action(self, meter: SimulatedMeter | None, function_code: int,
                      start_address: int, address: int, count: int, registers: list[int],
                      set_values: list[int] | list[bool] | None) -> ExcCodes | None:
        if meter is None or not meter.alive:
            # No answer at all, like an absent or unpowered meter on a serial line.
            raise NoSuchIdException("no such meter")
        self.requests += 1
        if set_values is None and function_code == 6:
            # pymodbus reads the register back to build the answer to a single write; a
            # Modbus device echoes the request instead (the command register reads 0).
            registers[address - start_address] = self._echo.get((meter.unit, address), 0)
            return None
        if set_values is not None and function_code in (5, 6, 15, 16):
            values = [int(v) for v in set_values]
            self._echo[(meter.unit, address)] = values[0]
            result = meter.write(address + 1, values)
            self.write_log.append(WriteRecord(meter.unit, address + 1, values, result))
            if result is not None:
                return ExcCodes(result)
            return None
        refusal = refusal_of(meter, address + 1, count)
        if refusal is not None:
            self.refused_reads += 1
            return ExcCodes(refusal)
        meter.tick()
        image = meter.registers()
        for i in range(count):
            registers[address - start_address + i] = image.get(address + 1 + i, 0)
        return None

    def _identity(self) -> ModbusDeviceIdentification:
        firmware = next(iter(self.meters.values())).firmware if self.meters else 0
        return ModbusDeviceIdentification(info_name={  # type: ignore[no-untyped-call]
            "VendorName": s4k.MANUFACTURER, "ProductCode": s4k.IDENTIFICATION_PRODUCT,
            "MajorMinorRevision": s4k.firmware_label(firmware)})

    def _devices(self) -> list[SimDevice]:
        devices = [SimDevice(unit, simdata=_layout(), action=partial(self._action, meter))
                   for unit, meter in self.meters.items()]
        # Unit 0 catches every id without a meter and stays silent.
        devices.append(SimDevice(0, simdata=_layout(), action=partial(self._action, None)))
        return devices

    # -- front ends ---------------------------------------------------------------------------

    async def _serve(self, host: str, port: int, framer: FramerType) -> tuple[str, int]:
        server = ModbusTcpServer(self._devices(), framer=framer, address=(host, port),
                                 identity=self._identity(), ignore_missing_devices=True,
                                 custom_pdu=[_SlaveIdRequest])
        sub = {k: dict(v) for k, v in server.decoder.pdu_sub_table.items()}
        sub.setdefault(0x2B, {})[0x0E] = (_DeviceInfoRequest, sub[0x2B][0x0E][1])
        server.decoder.pdu_sub_table = sub
        await server.serve_forever(background=True)
        self._servers.append(server)
        sock = getattr(server.transport, "sockets", [None])[0]
        bound = sock.getsockname() if sock else (host, port)
        return str(bound[0]), int(bound[1])

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Modbus TCP (MBAP framing); port 0 picks a free port. Returns the bound address."""
        return await self._serve(host, port, FramerType.SOCKET)

    async def serve_rtu_over_tcp(self, host: str = "127.0.0.1",
                                 port: int = 0) -> tuple[str, int]:
        """RTU frames over TCP, as a transparent serial gateway carries them."""
        return await self._serve(host, port, FramerType.RTU)

    async def serve_pty(self) -> str:
        """RTU on a pseudo-terminal: returns the device path a serial client opens."""
        host, port = await self.serve_rtu_over_tcp()
        bridge = _PtyBridge(host, port)
        await bridge.start()
        self._ptys.append(bridge)
        return bridge.path

    def start_clock(self, period_s: float = 0.1) -> None:
        """Advance the meters in the background, so pulses flow even when nobody reads."""
        async def run() -> None:
            while True:
                for meter in self.meters.values():
                    meter.tick()
                await asyncio.sleep(period_s)
        self._tasks.append(asyncio.get_running_loop().create_task(run()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for pty in self._ptys:
            await pty.stop()
        for server in self._servers:
            await server.shutdown()
        self._tasks.clear()
        self._ptys.clear()
        self._servers.clear()


class _PtyBridge:
    """A pseudo-terminal whose other side is a connection to an RTU-over-TCP server.

    The client opens ``path`` as a serial port (pyserial); bytes flow unchanged both ways. The
    simulator keeps its own handle on the terminal so that a client closing and reopening the
    port (an adapter unplugged and plugged back) does not end the bridge.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        loop = asyncio.get_running_loop()
        os.set_blocking(self.master, False)

        def from_pty() -> None:
            try:
                data = os.read(self.master, 4096)
            except (BlockingIOError, OSError):
                return
            if data:
                writer.write(data)

        loop.add_reader(self.master, from_pty)

        async def to_pty() -> None:
            while data := await reader.read(4096):
                os.write(self.master, data)

        self._writer = writer
        self._task = loop.create_task(to_pty())

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.master)
        if self._task:
            self._task.cancel()
        with contextlib.suppress(Exception):
            self._writer.close()
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)
