"""Words <-> values (pure).

The Series 4000 sends 32-bit values high word first and big-endian within each register. A
quantity that has no meaning in the configured system type reads QNAN: 0x8000 in a 16-bit
register, a NaN (0x7FC00000) in a float pair. Every decoder here returns ``None`` for "not
available" so that no caller can mistake QNAN for a number.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from typing import cast

from bridge.errors import DecodeError
from bridge.model.quantities import BY_KEY
from bridge.model.registers import DataType, ReadBlock, Register, WordOrder

QNAN16 = 0x8000
QNAN_FLOAT_WORDS = (0x7FC0, 0x0000)
#: How a 32-bit integer accumulator signals QNAN is undocumented; the bridge treats the 16-bit
#: QNAN in the high word with a zero low word as QNAN (the simulator does the same). The bridge
#: publishes accumulators from the float block, so this only matters to the simulator's image.
QNAN32 = 0x80000000

Value = int | float
Number = Value


def _pair(words: Sequence[int], order: WordOrder) -> tuple[int, int]:
    hi, lo = words[0], words[1]
    if order is WordOrder.LOW_FIRST:
        hi, lo = lo, hi
    return hi, lo


def _check_words(words: Sequence[int], n: int) -> None:
    if len(words) != n:
        raise DecodeError(f"expected {n} register(s), got {len(words)}")
    for w in words:
        if not 0 <= w <= 0xFFFF:
            raise DecodeError(f"register value {w!r} is not a 16-bit word")


def float32_from_words(hi: int, lo: int) -> float:
    (value,) = struct.unpack(">f", struct.pack(">HH", hi, lo))
    return float(value)


def words_from_float32(value: float) -> tuple[int, int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return int(hi), int(lo)


#: Significant digits published for a float register: a float32 holds 7.2 of them, so 8 keep
#: its resolution (energy totals included) while dropping the binary noise of the widening
#: (float32 0.1 is 0.100000001490116 as a double; published as 0.1).
FLOAT_DIGITS = 8
_F32 = struct.Struct(">f")


def float_value(raw: float, exponent: int = 0) -> float:
    """A float register's value in the state key's unit, rounded to :data:`FLOAT_DIGITS`."""
    value = raw * 10.0**exponent if exponent else raw
    return float(f"{value:.{FLOAT_DIGITS}g}")


def decode_raw(dtype: DataType, words: Sequence[int],
               order: WordOrder = WordOrder.HIGH_FIRST) -> Value | None:
    """Decode the register words of one point; ``None`` for QNAN, NaN or infinity."""
    _check_words(words, dtype.words)
    if dtype is DataType.UINT16:
        return None if words[0] == QNAN16 else words[0]
    if dtype is DataType.INT16:
        if words[0] == QNAN16:
            return None
        return words[0] - 0x10000 if words[0] & 0x8000 else words[0]
    hi, lo = _pair(words, order)
    if dtype is DataType.UINT32:
        value = (hi << 16) | lo
        return None if value == QNAN32 else value
    f = float32_from_words(hi, lo)
    return f if math.isfinite(f) else None


def scale(raw: int, exponent: int) -> Value:
    """``raw * 10**exponent``, correctly rounded (1234, -2 -> 12.34, not 12.340000000000002)."""
    if exponent >= 0:
        return raw * cast(int, 10**exponent)
    return raw / cast(int, 10 ** (-exponent))


def decode(row: Register, words: Sequence[int], scales: Mapping[int, int]) -> Value | None:
    """Decode ``row`` into the unit of its state key.

    ``scales`` maps a scale register number (138-141) to its signed content; an integer point
    whose scale register is missing is a caller error, not a value.
    """
    raw = decode_raw(row.dtype, words, row.word_order)
    if raw is None:
        return None
    exponent = row.exponent
    if row.dtype is DataType.FLOAT32:
        return float_value(float(raw), exponent)
    assert isinstance(raw, int)
    if row.scale_reg is not None:
        if row.scale_reg not in scales:
            raise DecodeError(f"register {row.reg} needs scale register {row.scale_reg}")
        s = scales[row.scale_reg]
        if not -4 <= s <= 4:
            raise DecodeError(f"scale register {row.scale_reg} holds {s}, outside -4..4")
        exponent += s
    return scale(raw, exponent)




def decode_block(block: ReadBlock, words: Sequence[int],
                 scales: Mapping[int, int]) -> dict[Register, Value | None]:
    """Decode every row of a read block from the words the meter returned for it.

    The float block is the hot path of every poll: the words are packed once and each float
    is unpacked in place.
    """
    if len(words) != block.count:
        raise DecodeError(
            f"read of {block.count} registers from {block.start} returned {len(words)}"
        )
    try:
        buf = struct.pack(f">{block.count}H", *words)
    except struct.error:
        bad = next((w for w in words if not (isinstance(w, int) and 0 <= w <= 0xFFFF)), None)
        raise DecodeError(f"register value {bad!r} is not a 16-bit word") from None
    out: dict[Register, Value | None] = {}
    unpack, isfinite = _F32.unpack_from, math.isfinite
    for row, offset, exponent, plain in block.layout:
        if not plain:
            index = offset // 2
            out[row] = decode(row, words[index:index + row.words], scales)
            continue
        (raw,) = unpack(buf, offset)
        if not isfinite(raw):
            out[row] = None
        else:
            out[row] = float(f"{raw * 10.0**exponent if exponent else raw:.{FLOAT_DIGITS}g}")
    return out


def encode_raw(dtype: DataType, value: Value | None,
               order: WordOrder = WordOrder.HIGH_FIRST) -> list[int]:
    """The register words for ``value``; ``None`` encodes QNAN."""
    if dtype is DataType.FLOAT32:
        if value is None:
            hi, lo = QNAN_FLOAT_WORDS
        else:
            hi, lo = words_from_float32(float(value))
    elif dtype is DataType.UINT32:
        v = QNAN32 if value is None else int(value)
        if not 0 <= v <= 0xFFFFFFFF:
            raise ValueError(f"{value} does not fit an unsigned 32-bit register pair")
        hi, lo = v >> 16, v & 0xFFFF
    elif dtype is DataType.UINT16:
        v = QNAN16 if value is None else int(value)
        if not 0 <= v <= 0xFFFF:
            raise ValueError(f"{value} does not fit an unsigned 16-bit register")
        return [v]
    else:
        if value is None:
            return [QNAN16]
        v = int(value)
        if not -0x8000 <= v <= 0x7FFF:
            raise ValueError(f"{value} does not fit a signed 16-bit register")
        return [v & 0xFFFF]
    if order is WordOrder.LOW_FIRST:
        hi, lo = lo, hi
    return [hi, lo]


def encode(row: Register, value: Value | None, scales: Mapping[int, int]) -> list[int]:
    """Inverse of :func:`decode`: the words a meter holds for ``value`` in the state key's unit.

    Integer points are rounded to the nearest count of their scale.
    """
    if value is None:
        return encode_raw(row.dtype, None, row.word_order)
    exponent = row.exponent
    if row.dtype is DataType.FLOAT32:
        return encode_raw(row.dtype, value / 10.0**exponent, row.word_order)
    if row.scale_reg is not None:
        exponent += scales[row.scale_reg]
    raw = round(value * 10 ** (-exponent)) if exponent <= 0 else round(value / 10**exponent)
    return encode_raw(row.dtype, raw, row.word_order)


def values_by_key(decoded: Mapping[Register, Number | None]) -> dict[str, Number | None]:
    """Decoded rows -> values by state key (the first row wins if two feed one key)."""
    out: dict[str, Number | None] = {}
    for row, value in decoded.items():
        if row.key and row.key not in out:
            q = BY_KEY.get(row.key)
            if q is not None and q.integer and isinstance(value, float) and value.is_integer():
                value = int(value)
            out[row.key] = value
    return out
