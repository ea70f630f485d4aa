"""Modbus RTU frames as bytes: CRC, build, parse, and frame length from the first bytes.

The bus emulator and the fault proxy sit on a byte stream with no framing of its own (RTU over
TCP, a pseudo-terminal). To hold a frame for its wire time, or to damage exactly one frame, they
must know where a frame ends from its first bytes alone; that depends on the function code and on
whether the frame is a request or a response. This module knows that for the function codes the
bridge uses and nothing else, so it can stay independent of pymodbus and check it.

Frame layout: ``unit | function | data | CRC`` with the CRC-16/MODBUS sent low byte first.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
WRITE_MULTIPLE = 0x10
REPORT_SLAVE_ID = 0x11
MEI = 0x2B
MEI_DEVICE_ID = 0x0E
EXCEPTION_FLAG = 0x80

#: Function codes whose request and response lengths this module knows.
KNOWN_FUNCTIONS = frozenset({READ_HOLDING, READ_INPUT, WRITE_SINGLE, WRITE_MULTIPLE,
                             REPORT_SLAVE_ID, MEI})

#: The longest RTU frame the standard allows (unit + 253-byte PDU + CRC).
MAX_FRAME = 256


class FrameError(ValueError):
    """Bytes that are not a valid RTU frame (short, bad CRC, unknown function)."""


def crc16(data: bytes) -> int:
    """CRC-16/MODBUS (reflected polynomial 0xA001, initial value 0xFFFF) of ``data``."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(body: bytes) -> bytes:
    """``body`` followed by its CRC, low byte first, as it goes on the wire."""
    return body + struct.pack("<H", crc16(body))


def crc_ok(frame: bytes) -> bool:
    """True if the last two bytes of ``frame`` are the CRC of the rest."""
    return len(frame) >= 4 and crc16(frame[:-2]) == struct.unpack("<H", frame[-2:])[0]


def build_frame(unit: int, function: int, data: bytes = b"") -> bytes:
    """A complete frame: unit, function code, data, CRC."""
    if not 0 <= unit <= 255 or not 0 <= function <= 255:
        raise ValueError(f"unit {unit} or function {function} out of range")
    return with_crc(bytes([unit, function]) + data)


@dataclass(frozen=True, slots=True)
class Frame:
    """A checked frame, CRC removed."""

    unit: int
    function: int
    data: bytes

    @property
    def is_exception(self) -> bool:
        return bool(self.function & EXCEPTION_FLAG)

    @property
    def exception_code(self) -> int | None:
        return self.data[0] if self.is_exception and self.data else None

    def to_bytes(self) -> bytes:
        return build_frame(self.unit, self.function, self.data)


def parse_frame(frame: bytes) -> Frame:
    """Check the CRC and split a frame; raise :class:`FrameError` if it is not one."""
    if len(frame) < 4:
        raise FrameError(f"{len(frame)} bytes is shorter than any frame")
    if not crc_ok(frame):
        raise FrameError(f"bad CRC in {frame.hex(' ')}")
    return Frame(frame[0], frame[1], bytes(frame[2:-2]))


# -- lengths from the first bytes ------------------------------------------------------------


def request_length(head: bytes) -> int | None:
    """Length of the request frame that starts with ``head``; None until enough bytes are in.

    Raises :class:`FrameError` for a function code this module does not know, so that a caller
    can tell garbage from a frame that is still arriving.
    """
    if len(head) < 2:
        return None
    function = head[1]
    if function in (READ_HOLDING, READ_INPUT, WRITE_SINGLE):
        return 8
    if function == REPORT_SLAVE_ID:
        return 4
    if function == MEI:
        return 7  # unit, 0x2B, 0x0E, read code, object id, CRC
    if function == WRITE_MULTIPLE:
        return None if len(head) < 7 else 9 + head[6]
    raise FrameError(f"unknown request function 0x{function:02x}")


def response_length(head: bytes) -> int | None:
    """Length of the response frame that starts with ``head``; None until enough bytes are in.

    Exception responses (function | 0x80) are 5 bytes whatever the function. A device
    identification response (0x2B/0x0E) carries a list of objects, so its length is known only
    once every object header has arrived.
    """
    if len(head) < 2:
        return None
    function = head[1]
    if function & EXCEPTION_FLAG:
        return 5
    if function in (READ_HOLDING, READ_INPUT, REPORT_SLAVE_ID):
        return None if len(head) < 3 else 5 + head[2]
    if function in (WRITE_SINGLE, WRITE_MULTIPLE):
        return 8
    if function == MEI:
        if len(head) < 8:
            return None
        size = 8
        for _ in range(head[7]):
            if len(head) < size + 2:
                return None
            size += 2 + head[size + 1]
        return size + 2
    raise FrameError(f"unknown response function 0x{function:02x}")


def frame_length(head: bytes, *, request: bool) -> int | None:
    """:func:`request_length` or :func:`response_length`."""
    return request_length(head) if request else response_length(head)


# -- the frames the bridge sends and expects -------------------------------------------------


def read_request(unit: int, address: int, count: int, function: int = READ_HOLDING) -> bytes:
    """Read ``count`` registers from 0-based ``address`` (0x03 or 0x04)."""
    return build_frame(unit, function, struct.pack(">HH", address, count))


def read_response(unit: int, registers: Sequence[int], function: int = READ_HOLDING) -> bytes:
    body = struct.pack(f">{len(registers)}H", *registers)
    return build_frame(unit, function, bytes([len(body)]) + body)


def write_single_request(unit: int, address: int, value: int) -> bytes:
    """0x06; the meter echoes the same frame as its response."""
    return build_frame(unit, WRITE_SINGLE, struct.pack(">HH", address, value))


def write_multiple_request(unit: int, address: int, values: Sequence[int]) -> bytes:
    body = struct.pack(f">{len(values)}H", *values)
    return build_frame(unit, WRITE_MULTIPLE,
                       struct.pack(">HHB", address, len(values), len(body)) + body)


def write_multiple_response(unit: int, address: int, count: int) -> bytes:
    return build_frame(unit, WRITE_MULTIPLE, struct.pack(">HH", address, count))


def report_slave_id_request(unit: int) -> bytes:
    return build_frame(unit, REPORT_SLAVE_ID)


def device_id_request(unit: int, read_code: int = 1, object_id: int = 0) -> bytes:
    return build_frame(unit, MEI, bytes([MEI_DEVICE_ID, read_code, object_id]))


def exception_response(unit: int, function: int, code: int) -> bytes:
    return build_frame(unit, function | EXCEPTION_FLAG, bytes([code]))


def registers_of(frame: bytes) -> list[int]:
    """The register values of a 0x03/0x04 response; :class:`FrameError` if it is not one."""
    parsed = parse_frame(frame)
    if parsed.function not in (READ_HOLDING, READ_INPUT):
        raise FrameError(f"function 0x{parsed.function:02x} is not a register read")
    count = parsed.data[0] if parsed.data else -1
    if count != len(parsed.data) - 1 or count % 2:
        raise FrameError(f"byte count {count} for {len(parsed.data) - 1} data bytes")
    return list(struct.unpack(f">{count // 2}H", parsed.data[1:]))
