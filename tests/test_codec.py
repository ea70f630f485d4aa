"""Decoding: golden register dumps with values worked out by hand, QNAN, and round trips."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import DecodeError
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import measurement_plan
from bridge.model import codec
from bridge.model.codec import values_by_key as state_values
from bridge.model.registers import DataType, ReadBlock, WordOrder, plan_reads

# IEEE-754 single precision words, worked out by hand:
#   1234.5 = 1.2056640625 * 2^10 -> 0x449A5000     9.5 = 1.1875 * 2^3 -> 0x41180000
#   230.0 = 1.796875 * 2^7 -> 0x43660000            400.0 = 1.5625 * 2^8 -> 0x43C80000
#   12.25 = 1.53125 * 2^3 -> 0x41440000             60.0 = 1.875 * 2^5 -> 0x42700000
#   0.5 -> 0x3F000000    2.0 -> 0x40000000    3.0 -> 0x40400000    1.5 -> 0x3FC00000
GOLDEN_FLOATS = {
    257: (0x449A, 0x5000),  # energy 1234.5 kWh
    261: (0x4118, 0x0000),  # total power 9.5 kW
    275: (0x4040, 0x0000),  # power A 3.0 kW
    277: (0x4000, 0x0000),  # power B 2.0 kW
    279: (0x3FC0, 0x0000),  # power C 1.5 kW
    287: (0x43C8, 0x0000),  # voltage AB 400 V
    293: (0x4366, 0x0000),  # voltage AN 230 V
    299: (0x4144, 0x0000),  # current A 12.25 A
    301: (0x4000, 0x0000),  # current B 2.0 A
    303: (0x3F00, 0x0000),  # current C 0.5 A
    307: (0x4270, 0x0000),  # frequency 60 Hz
}
GOLDEN_EXPECTED = {
    "energy_kwh": 1234.5, "power_w": 9500.0, "power_a_w": 3000.0, "power_b_w": 2000.0,
    "power_c_w": 1500.0, "voltage_ab_v": 400.0, "voltage_an_v": 230.0, "current_a_a": 12.25,
    "current_b_a": 2.0, "current_c_a": 0.5, "frequency_hz": 60.0,
}


def float_block_dump() -> list[int]:
    """Registers 257..346; every point not in GOLDEN_FLOATS reads QNAN."""
    words = []
    for reg in range(257, 347, 2):
        words.extend(GOLDEN_FLOATS.get(reg, codec.QNAN_FLOAT_WORDS))
    return words


def decode_float_block(words: list[int]) -> dict[str, float | int | None]:
    block = ReadBlock(257, 90, s4k.FLOAT_BLOCK)
    return state_values(codec.decode_block(block, words, {}))


def test_golden_float_block() -> None:
    values = decode_float_block(float_block_dump())
    for key, expected in GOLDEN_EXPECTED.items():
        assert values[key] == expected, key
    # Everything else is QNAN -> None, never a number.
    others = {k: v for k, v in values.items() if k not in GOLDEN_EXPECTED}
    assert others and all(v is None for v in others.values())


def test_golden_dump_catches_an_off_by_one_address() -> None:
    words = float_block_dump()
    shifted = [*words[1:], 0]
    values = decode_float_block(shifted)
    assert all(values[k] != v for k, v in GOLDEN_EXPECTED.items())


def test_golden_dump_catches_swapped_word_order() -> None:
    hi, lo = GOLDEN_FLOATS[257]
    assert codec.decode_raw(DataType.FLOAT32, [hi, lo]) == 1234.5
    assert codec.decode_raw(DataType.FLOAT32, [hi, lo], WordOrder.LOW_FIRST) != 1234.5
    assert all(r.word_order is WordOrder.HIGH_FIRST for r in s4k.ALL_REGISTERS)


# Integer block, scaled by 138-141. Worked out by hand from the point map's examples:
#   reg 141 = -1 and regs 1-2 = 0x0001 0x86A0 (100000) -> 10000.0 kWh
#   reg 140 = -2 and reg 3 = 1234 -> 12.34 kW -> 12340 W
GOLDEN_SCALES = {138: -2, 139: -1, 140: -2, 141: -1}
GOLDEN_INTEGERS = {
    1: [0x0001, 0x86A0],  # energy 100000 counts * 10^-1 = 10000.0 kWh
    3: [1234],  # power 12.34 kW
    4: [0xFF9C],  # reactive power -100 counts (int16) = -1.00 kvar
    19: [2301],  # voltage AN 230.1 V
    22: [2125],  # current A 21.25 A
    43: [0x0000, 0x0305],  # pulse counter 773, no scale
}
GOLDEN_INTEGER_EXPECTED = {
    "energy_kwh": 10000.0, "power_w": 12340, "reactive_power_var": -1000,
    "voltage_an_v": 230.1, "current_a_a": 21.25, "pulse_count": 773,
}


def test_golden_integer_block_with_scale_factors() -> None:
    image = dict.fromkeys(range(1, 53), codec.QNAN16)
    for reg, words in GOLDEN_INTEGERS.items():
        for i, w in enumerate(words):
            image[reg + i] = w
    block = plan_reads(s4k.INTEGER_BLOCK)[0]
    assert (block.start, block.count) == (1, 52)
    words = [image[r] for r in range(1, 53)]
    values = state_values(codec.decode_block(block, words, GOLDEN_SCALES))
    for key, expected in GOLDEN_INTEGER_EXPECTED.items():
        assert values[key] == pytest.approx(expected, abs=1e-9), key
    assert values["current_b_a"] is None  # 0x8000


def test_wrong_scale_exponent_changes_the_value_tenfold() -> None:
    row = s4k.BY_REG[3]
    assert codec.decode(row, [1234], {140: -2}) == 12340
    assert codec.decode(row, [1234], {140: -1}) == 123400


def test_missing_or_absurd_scale_is_an_error_not_a_value() -> None:
    with pytest.raises(DecodeError):
        codec.decode(s4k.BY_REG[3], [1234], {})
    with pytest.raises(DecodeError):
        codec.decode(s4k.BY_REG[3], [1234], {140: 7})


@pytest.mark.parametrize(("dtype", "words"), [
    (DataType.UINT16, [0x8000]),
    (DataType.INT16, [0x8000]),
    (DataType.FLOAT32, [0x7FC0, 0x0000]),  # the meter's QNAN
    (DataType.FLOAT32, [0xFFC0, 0x0000]),  # negative NaN
    (DataType.FLOAT32, [0x7F80, 0x0001]),  # signalling NaN
    (DataType.FLOAT32, [0x7F80, 0x0000]),  # +inf
    (DataType.FLOAT32, [0xFF80, 0x0000]),  # -inf
    (DataType.UINT32, [0x8000, 0x0000]),
])
def test_qnan_and_non_finite_are_not_numbers(dtype: DataType, words: list[int]) -> None:
    assert codec.decode_raw(dtype, words) is None


@pytest.mark.parametrize(("dtype", "words"), [
    (DataType.UINT16, []), (DataType.FLOAT32, [0x4118]), (DataType.UINT32, [1, 2, 3]),
    (DataType.UINT16, [0x10000]), (DataType.UINT16, [-1]),
])
def test_wrong_word_count_or_width_is_an_error(dtype: DataType, words: list[int]) -> None:
    with pytest.raises(DecodeError):
        codec.decode_raw(dtype, words)


def test_block_length_mismatch_is_an_error() -> None:
    block = measurement_plan(40)[0]
    with pytest.raises(DecodeError, match="returned 89"):
        codec.decode_block(block, [0] * (block.count - 1), {})


def test_floats_are_published_without_binary_noise() -> None:
    assert codec.float_value(struct.unpack(">f", struct.pack(">f", 0.1))[0]) == 0.1
    assert codec.decode(s4k.BY_REG[261], list(codec.words_from_float32(1.2345678)), {}) == \
        pytest.approx(1234.5678, rel=1e-7)
    # Eight digits stay within half a float32 step of a large energy total (0.0078 kWh here).
    total = struct.unpack(">f", struct.pack(">f", 123456.78))[0]
    assert abs(codec.float_value(total) - total) < 0.0078 / 2


@given(st.lists(st.integers(0, 0xFFFF), min_size=90, max_size=90))
def test_fast_block_path_matches_row_by_row_decoding(words: list[int]) -> None:
    block = ReadBlock(257, 90, s4k.FLOAT_BLOCK)
    fast = codec.decode_block(block, words, {})
    for row in s4k.FLOAT_BLOCK:
        offset = row.reg - 257
        assert fast[row] == codec.decode(row, words[offset:offset + 2], {})


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float32_round_trip(value: float) -> None:
    words = codec.encode_raw(DataType.FLOAT32, value)
    assert codec.decode_raw(DataType.FLOAT32, words) == value


@given(st.integers(0, 0xFFFFFFFF).filter(lambda v: v != codec.QNAN32))
def test_uint32_round_trip(value: int) -> None:
    words = codec.encode_raw(DataType.UINT32, value)
    assert words == [value >> 16, value & 0xFFFF]
    assert codec.decode_raw(DataType.UINT32, words) == value


@given(st.integers(-0x7FFF, 0x7FFF))
def test_int16_round_trip(value: int) -> None:
    assert codec.decode_raw(DataType.INT16, codec.encode_raw(DataType.INT16, value)) == value


@given(st.integers(0, 32767), st.integers(-4, 4))
def test_scaled_integer_round_trip(raw: int, exponent: int) -> None:
    row = s4k.BY_REG[3]  # power, kW -> W, scaled by 140
    value = codec.decode(row, [raw], {140: exponent})
    assert value is not None and math.isfinite(value)
    assert codec.encode(row, value, {140: exponent}) == [raw]


@given(st.lists(st.integers(0, 0xFFFF), min_size=90, max_size=90))
def test_any_float_block_decodes_to_numbers_or_none(words: list[int]) -> None:
    for value in decode_float_block(words).values():
        assert value is None or math.isfinite(value)
