"""RTU frame helpers against frames worked out by hand and published examples.

The hex strings come from the Modbus specification and the usual worked examples (unit 17 =
0x11 reads 3 registers at 107, and so on); pymodbus' own framer is used only as a second,
independent opinion on lengths and CRCs.
"""

from __future__ import annotations

import pytest
from pymodbus.framer.rtu import FramerRTU
from pymodbus.pdu import DecodePDU

from tests import rtu

H = bytes.fromhex

#: (frame, unit, function, data) of complete, valid frames.
FRAMES = [
    # read 10 holding registers at 0 from unit 1: the most quoted Modbus frame there is
    ("01 03 00 00 00 0A C5 CD", 1, 0x03, "00 00 00 0A"),
    ("01 03 00 00 00 01 84 0A", 1, 0x03, "00 00 00 01"),
    # spec example: unit 17 reads 3 registers from 107 (40108..40110) and its answer
    ("11 03 00 6B 00 03 76 87", 17, 0x03, "00 6B 00 03"),
    ("11 03 06 AE 41 56 52 43 40 49 AD", 17, 0x03, "06 AE 41 56 52 43 40"),
    ("01 04 00 00 00 02 71 CB", 1, 0x04, "00 00 00 02"),
    # write 3 to register 1 of unit 17; the answer is the same frame
    ("11 06 00 01 00 03 9A 9B", 17, 0x06, "00 01 00 03"),
    # write 0x000A, 0x0102 to registers 1-2 of unit 17, and the answer
    ("11 10 00 01 00 02 04 00 0A 01 02 C6 F0", 17, 0x10, "00 01 00 02 04 00 0A 01 02"),
    ("11 10 00 01 00 02 12 98", 17, 0x10, "00 01 00 02"),
    # illegal data address on a read of unit 1
    ("01 83 02 C0 F1", 1, 0x83, "02"),
]


@pytest.mark.parametrize(("hexframe", "unit", "function", "data"), FRAMES)
def test_parse_and_build_known_frames(hexframe: str, unit: int, function: int,
                                      data: str) -> None:
    frame = H(hexframe)
    parsed = rtu.parse_frame(frame)
    assert (parsed.unit, parsed.function, parsed.data) == (unit, function, H(data))
    assert rtu.build_frame(unit, function, H(data)) == frame
    assert parsed.to_bytes() == frame
    assert rtu.crc_ok(frame)


def test_crc_check_value() -> None:
    # The catalogue check value of CRC-16/MODBUS over the ASCII digits 1..9.
    assert rtu.crc16(b"123456789") == 0x4B37
    assert rtu.crc16(b"") == 0xFFFF


def test_crc_goes_low_byte_first() -> None:
    assert rtu.crc16(H("01 03 00 00 00 0A")) == 0xCDC5
    assert rtu.with_crc(H("01 03 00 00 00 0A"))[-2:] == H("C5 CD")


@pytest.mark.parametrize("bad", ["01 03 00 00 00 0A CD C5", "01 03 00 00 00 0B C5 CD",
                                 "01 03 C5", ""])
def test_parse_rejects(bad: str) -> None:
    with pytest.raises(rtu.FrameError):
        rtu.parse_frame(H(bad))


def test_builders_match_hand_frames() -> None:
    assert rtu.read_request(17, 107, 3) == H("11 03 00 6B 00 03 76 87")
    assert rtu.read_request(1, 0, 2, function=4) == H("01 04 00 00 00 02 71 CB")
    assert rtu.read_response(17, [0xAE41, 0x5652, 0x4340]) == H("11 03 06 AE 41 56 52 43 40 49 AD")
    assert rtu.write_single_request(17, 1, 3) == H("11 06 00 01 00 03 9A 9B")
    assert rtu.write_multiple_request(17, 1, [10, 0x102]) == H(FRAMES[6][0])
    assert rtu.write_multiple_response(17, 1, 2) == H("11 10 00 01 00 02 12 98")
    assert rtu.exception_response(1, 3, 2) == H("01 83 02 C0 F1")
    assert rtu.registers_of(H("11 03 06 AE 41 56 52 43 40 49 AD")) == [0xAE41, 0x5652, 0x4340]


def test_registers_of_refuses_other_frames() -> None:
    with pytest.raises(rtu.FrameError):
        rtu.registers_of(H("01 83 02 C0 F1"))
    with pytest.raises(rtu.FrameError):  # byte count 4 but 6 data bytes
        rtu.registers_of(rtu.build_frame(1, 3, H("04 00 01 00 02 00 03")))


# A device identification answer: 3 objects "Leviton", "Series 4000", "1.05".
DEVICE_ID_RESPONSE = rtu.build_frame(
    1, 0x2B, H("0E 01 01 00 00 03") + b"\x00\x07Leviton" + b"\x01\x0bSeries 4000" + b"\x02\x041.05")
SLAVE_ID_RESPONSE = rtu.build_frame(1, 0x11, H("05 4B FF") + b"K40")

#: (head, is it a request, length or None while more bytes are needed)
LENGTHS = [
    ("01", True, None),
    ("01 03", True, 8),
    ("01 04 00", True, 8),
    ("01 06", True, 8),
    ("11 10 00 01 00 02", True, None),
    ("11 10 00 01 00 02 04", True, 13),
    ("11 11", True, 4),
    ("01 2B 0E 01 00", True, 7),
    ("01 03", False, None),
    ("01 03 F8", False, 253),  # 124 registers: 5 + 248
    ("11 03 06 AE", False, 11),
    ("01 04 04", False, 9),
    ("11 06", False, 8),
    ("11 10", False, 8),
    ("01 11 05", False, 10),
    ("01 83", False, 5),
    ("01 90", False, 5),
    ("01 AB", False, 5),
    ("01 2B 0E 01 01 00 00", False, None),
    ("01 2B 0E 01 01 00 00 03 00 07", False, None),
    (DEVICE_ID_RESPONSE.hex(" "), False, 38),  # 8 + (2+7) + (2+11) + (2+4) + 2
]


@pytest.mark.parametrize(("head", "is_request", "length"), LENGTHS)
def test_frame_length_from_first_bytes(head: str, is_request: bool,
                                      length: int | None) -> None:
    assert rtu.frame_length(H(head), request=is_request) == length


@pytest.mark.parametrize("is_request", [True, False])
def test_unknown_function_is_an_error_not_a_wait(is_request: bool) -> None:
    with pytest.raises(rtu.FrameError):
        rtu.frame_length(H("01 07 00"), request=is_request)


def test_request_builders_have_the_lengths_they_announce() -> None:
    for frame in (rtu.read_request(1, 0, 125), rtu.write_single_request(1, 129, 5),
                  rtu.write_multiple_request(3, 0, [1, 2, 3]), rtu.report_slave_id_request(9),
                  rtu.device_id_request(2)):
        assert rtu.request_length(frame[:7]) == len(frame)
        assert rtu.parse_frame(frame).to_bytes() == frame


@pytest.mark.parametrize("frame", [
    H("11 03 06 AE 41 56 52 43 40 49 AD"), H("11 06 00 01 00 03 9A 9B"),
    H("11 10 00 01 00 02 12 98"), H("01 83 02 C0 F1"), DEVICE_ID_RESPONSE, SLAVE_ID_RESPONSE])
def test_response_lengths_agree_with_pymodbus(frame: bytes) -> None:
    cls = DecodePDU(False).lookupPduClass(frame)
    assert cls is not None
    assert cls.calculateRtuFrameSize(frame) == rtu.response_length(frame) == len(frame)
    assert FramerRTU.compute_CRC(frame[:-2]) == int.from_bytes(frame[-2:], "big")


@pytest.mark.parametrize("frame", [
    rtu.read_request(1, 0, 10), rtu.write_single_request(1, 1, 3),
    rtu.write_multiple_request(17, 1, [10, 258]), rtu.report_slave_id_request(1),
    rtu.device_id_request(1)])
def test_request_lengths_agree_with_pymodbus(frame: bytes) -> None:
    cls = DecodePDU(True).lookupPduClass(frame)
    assert cls is not None
    assert cls.calculateRtuFrameSize(frame) == rtu.request_length(frame) == len(frame)
