"""A meter set-up's read blocks compiled into decoders, once per set-up (pure).

Every poll decodes the same blocks under the same scale registers, so what does not change
between polls is worked out once, when the plan or the set-up changes (and once for all the
meters that read equal blocks under equal scale registers): one ``struct`` format per
block that unpacks every published row in one call (rows without a key, and later rows of a key
that an earlier row already gives, are skipped as padding), each row's power of ten with its
scale register applied, and the key's published form (a count as an integer, other numbers
rounded to the published resolution). The words -> value rules are :mod:`bridge.model.codec`'s
(QNAN, float32 digits, scaling), which decodes any row the compiled formats do not cover;
``tests/test_decode_plan.py`` checks that both give the same values for every row.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum

from bridge.errors import DecodeError
from bridge.model import codec
from bridge.model.codec import FLOAT_DIGITS
from bridge.model.quantities import BY_KEY, published_decimals
from bridge.model.registers import DataType, ReadBlock, Register, WordOrder
from bridge.model.values import Number


class _Kind(Enum):
    FLOAT = "f"
    UINT16 = "H"
    INT16 = "h"
    UINT32 = "I"
    #: Anything else (a low-word-first pair): two words, decoded by the codec.
    OTHER = "HH"


#: The raw value that means QNAN, per kind (floats: any NaN or infinity).
_QNAN = {_Kind.UINT16: codec.QNAN16, _Kind.INT16: codec.QNAN16 - 0x10000,
         _Kind.UINT32: codec.QNAN32}


@dataclass(frozen=True, slots=True)
class _Row:
    key: str
    kind: _Kind
    #: Position of the row's first unpacked value.
    index: int
    #: The power of ten from the raw value to the key's unit (scale register included).
    exponent: int
    #: Decimals published for the key (None: not in the vocabulary, published as decoded).
    decimals: int | None
    #: A count: a whole float is published as an integer.
    integer: bool
    row: Register
    #: Why the row cannot be scaled (its scale register is missing or out of range): raised
    #: when the row reads a number, as the codec does.
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BlockDecoder:
    block: ReadBlock
    unpack: struct.Struct
    #: The plain float rows, the hot path: (key, index, factor, decimals).
    floats: tuple[tuple[str, int, float, int], ...]
    #: The others: integers, counts, keys outside the vocabulary.
    others: tuple[_Row, ...]

    def decode(self, words: Sequence[int], out: dict[str, Number | None]) -> None:
        """Add the block's values to ``out`` (keys already there keep their value)."""
        block = self.block
        if len(words) != block.count:
            raise DecodeError(
                f"read of {block.count} registers from {block.start} returned {len(words)}")
        try:
            buf = struct.pack(f">{block.count}H", *words)
        except struct.error:
            bad = next((w for w in words if not (isinstance(w, int) and 0 <= w <= 0xFFFF)),
                       None)
            raise DecodeError(f"register value {bad!r} is not a 16-bit word") from None
        raw = self.unpack.unpack(buf)
        isfinite = math.isfinite
        for key, index, factor, decimals in self.floats:
            if key in out:
                continue
            x = raw[index]
            # The codec's float rule (float_value), then the published rounding.
            out[key] = round(float(f"{x * factor:.{FLOAT_DIGITS}g}"), decimals) \
                if isfinite(x) else None
        for r in self.others:
            if r.key not in out:
                out[r.key] = _value(r, raw, words, block.start)


def _value(r: _Row, raw: tuple[int | float, ...], words: Sequence[int],
           start: int) -> Number | None:
    x = raw[r.index]
    if r.kind is _Kind.FLOAT:
        if not math.isfinite(x):
            return None
        value: Number = codec.float_value(x, r.exponent)
    elif r.kind is _Kind.OTHER:
        offset = r.row.reg - start
        decoded = codec.decode_raw(r.row.dtype, words[offset:offset + r.row.words],
                                   r.row.word_order)
        if decoded is None:
            return None
        if r.row.dtype is DataType.FLOAT32:
            value = codec.float_value(float(decoded), r.exponent)
        else:
            value = codec.scale(int(decoded), r.exponent)
    else:
        if x == _QNAN[r.kind]:
            return None
        if r.error is not None:
            raise DecodeError(r.error)
        value = codec.scale(int(x), r.exponent)
    if isinstance(value, float):
        if r.integer and value.is_integer():
            return int(value)
        if r.decimals is not None:
            return round(value, r.decimals)
    return value


def _kind(row: Register) -> _Kind:
    if row.dtype is DataType.FLOAT32:
        return _Kind.FLOAT if row.word_order is WordOrder.HIGH_FIRST else _Kind.OTHER
    if row.dtype is DataType.UINT32:
        return _Kind.UINT32 if row.word_order is WordOrder.HIGH_FIRST else _Kind.OTHER
    return _Kind.UINT16 if row.dtype is DataType.UINT16 else _Kind.INT16


def _scaled(row: Register, scales: Mapping[int, int]) -> tuple[int, str | None]:
    """The row's power of ten under ``scales``, or why it has none (the codec's checks)."""
    if row.dtype is DataType.FLOAT32 or row.scale_reg is None:
        return row.exponent, None
    if row.scale_reg not in scales:
        return row.exponent, f"register {row.reg} needs scale register {row.scale_reg}"
    s = scales[row.scale_reg]
    if not -4 <= s <= 4:
        return row.exponent, f"scale register {row.scale_reg} holds {s}, outside -4..4"
    return row.exponent + s, None


def compile_block(block: ReadBlock, scales: Mapping[int, int]) -> BlockDecoder:
    fmt = [">"]
    rows: list[_Row] = []
    seen: set[str] = set()
    at = block.start  # the next register the format has not covered
    index = 0
    for row in sorted(block.registers, key=lambda r: r.reg):
        if not row.key or row.key in seen or row.reg < at:
            continue
        seen.add(row.key)
        kind = _kind(row)
        fmt.append(f"{2 * (row.reg - at)}x" if row.reg > at else "")
        fmt.append(kind.value)
        exponent, error = _scaled(row, scales)
        q = BY_KEY.get(row.key)
        rows.append(_Row(row.key, kind, index, exponent,
                         None if q is None else published_decimals(q),
                         q is not None and q.integer, row, error))
        index += len(kind.value)
        at = row.last_reg + 1
    fmt.append(f"{2 * (block.end + 1 - at)}x" if block.end + 1 > at else "")
    floats = tuple((r.key, r.index, 10.0**r.exponent, r.decimals) for r in rows
                   if r.kind is _Kind.FLOAT and not r.integer and r.decimals is not None)
    others = tuple(r for r in rows if not (r.kind is _Kind.FLOAT and not r.integer
                                           and r.decimals is not None))
    return BlockDecoder(block, struct.Struct("".join(fmt)), floats, others)


#: Distinct (block, scale registers) pairs kept compiled: a few per meter model and wiring.
SHARED_DECODERS = 256


@functools.lru_cache(maxsize=SHARED_DECODERS)
def _shared(block: ReadBlock, scales: tuple[tuple[int, int], ...]) -> BlockDecoder:
    return compile_block(block, dict(scales))


def shared_decoder(block: ReadBlock, scales: Mapping[int, int]) -> BlockDecoder:
    """The block's decoder under ``scales``, compiled once for every meter that reads an equal
    block under equal scale registers (meters wired alike on one panel share it)."""
    return _shared(block, tuple(sorted(scales.items())))


@dataclass(frozen=True, slots=True)
class DecodePlan:
    """The decoders of a meter's read blocks under one set of scale registers."""

    scales: Mapping[int, int]
    #: (the block, its decoder) by the identity of the plan's blocks: the reader answers with
    #: the very blocks it was given, and hashing a block would hash all its rows on every
    #: poll. Holding the block keeps its id from passing to another object while the plan
    #: lives (the decoder's own block may be another meter's).
    blocks: Mapping[int, tuple[ReadBlock, BlockDecoder]]

    def decode(self, answers: Sequence[tuple[ReadBlock, Sequence[int]]]
               ) -> dict[str, Number | None]:
        """Values by key in their published form (None: QNAN); the first block that gives a
        key wins. A block outside the plan (a read split after a refusal) is looked up by its
        rows."""
        out: dict[str, Number | None] = {}
        for block, words in answers:
            planned = self.blocks.get(id(block))
            if planned is not None and planned[0] is block:
                decoder = planned[1]
            else:
                decoder = shared_decoder(block, self.scales)
            decoder.decode(words, out)
        return out


def compile_plan(blocks: Sequence[ReadBlock], scales: Mapping[int, int]) -> DecodePlan:
    return DecodePlan(dict(scales), {id(b): (b, shared_decoder(b, scales)) for b in blocks})


EMPTY = DecodePlan({}, {})
