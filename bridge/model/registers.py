"""Register rows and read planning (pure).

Register numbers are the manuals' 1-based numbers (``reg``); the wire address is ``reg - 1``.
Keeping the manual's numbers in the profile lets anyone check a row against the point map by eye.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

#: The Modbus limit for one read of holding registers (function 0x03).
MAX_READ_REGISTERS = 125


class DataType(Enum):
    UINT16 = ("uint16", 1)
    INT16 = ("int16", 1)
    UINT32 = ("uint32", 2)
    FLOAT32 = ("float32", 2)

    def __init__(self, label: str, words: int) -> None:
        self.label = label
        self.words = words


class WordOrder(Enum):
    #: The lower-numbered register holds the most significant 16 bits (the Series 4000 order).
    HIGH_FIRST = "high_first"
    LOW_FIRST = "low_first"


class Access(Enum):
    R = "r"
    RW = "rw"
    #: Write-only: the command register 129 always reads 0.
    W = "w"


def power_of_ten(factor: float) -> int:
    """The exponent ``e`` with ``10**e == factor``; ValueError for any other factor."""
    exponent = round(math.log10(factor)) if factor > 0 else 0
    if factor <= 0 or not math.isclose(10.0**exponent, factor, rel_tol=1e-12):
        raise ValueError(f"factor {factor} is not a power of ten")
    return exponent


@dataclass(frozen=True, slots=True, eq=False)
class Register:
    """One point of a meter's map.

    Rows are unique objects of a profile: they compare and hash by identity, which keeps the
    per-poll dictionaries keyed by row cheap.
    """

    id: str
    reg: int
    dtype: DataType
    name: str
    #: Unit of the value as the meter reports it (after scaling), for documentation and tables.
    unit: str | None = None
    #: State key this register feeds (vocabulary in ``quantities``), if it is published.
    key: str | None = None
    access: Access = Access.R
    word_order: WordOrder = WordOrder.HIGH_FIRST
    #: Register number whose signed content ``s`` scales the raw value by ``10**s``.
    scale_reg: int | None = None
    #: Fixed factor from the meter's unit to the state key's unit (kW -> W is 1000).
    factor: float = 1.0
    phase: str | None = None
    #: System types (register 130) for which the point is documented as valid.
    valid_types: frozenset[int] = frozenset()
    #: System types for which the sources do not say; valid there only if the meter reports a
    #: number (the meter is the authority).
    uncertain_types: frozenset[int] = frozenset()
    #: ``factor`` as a power of ten, worked out and checked once when the row is made.
    exponent: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "exponent", power_of_ten(self.factor))

    @property
    def address(self) -> int:
        """The 0-based address that goes in the Modbus PDU."""
        return self.reg - 1

    @property
    def words(self) -> int:
        return self.dtype.words

    @property
    def last_reg(self) -> int:
        return self.reg + self.words - 1

    @property
    def writable(self) -> bool:
        return self.access is not Access.R


@dataclass(frozen=True)
class ReadBlock:
    """One read request: ``count`` registers from register number ``start``."""

    start: int
    count: int
    registers: tuple[Register, ...]

    @functools.cached_property
    def layout(self) -> tuple[tuple[Register, int, int, bool], ...]:
        """Per row, computed once per block: byte offset in the answer, the power of ten of
        its factor, and whether it is a plain float32 (high word first), the fast path."""
        out = []
        for row in self.registers:
            plain = row.dtype is DataType.FLOAT32 and row.word_order is WordOrder.HIGH_FIRST
            out.append((row, 2 * (row.reg - self.start), row.exponent, plain))
        return tuple(out)

    @property
    def address(self) -> int:
        return self.start - 1

    @property
    def end(self) -> int:
        """The last register number read."""
        return self.start + self.count - 1


def plan_reads(
    registers: Iterable[Register],
    max_gap: int = 10,
    max_count: int = MAX_READ_REGISTERS,
) -> tuple[ReadBlock, ...]:
    """Coalesce registers into as few read requests as the Modbus limit allows.

    Two registers share a request when the unused registers between them number at most
    ``max_gap``: on a serial line every request costs its own frame overhead and two inter-frame
    silences, about the wire time of ten registers at any baud rate, so reading a small gap is
    cheaper than a second request. No request exceeds ``max_count`` registers and no register is
    split across requests.
    """
    rows = sorted(set(registers), key=lambda r: r.reg)
    blocks: list[ReadBlock] = []
    current: list[Register] = []
    start = end = 0
    for row in rows:
        if row.words > max_count:
            raise ValueError(f"register {row.reg} is wider than a read request")
        if current and row.reg - end - 1 <= max_gap and row.last_reg - start + 1 <= max_count:
            current.append(row)
            end = max(end, row.last_reg)
            continue
        if current:
            blocks.append(ReadBlock(start, end - start + 1, tuple(current)))
        current = [row]
        start, end = row.reg, row.last_reg
    if current:
        blocks.append(ReadBlock(start, end - start + 1, tuple(current)))
    return tuple(blocks)


def overlapping(registers: Sequence[Register]) -> list[tuple[Register, Register]]:
    """Pairs of rows that claim the same register (a profile error)."""
    rows = sorted(registers, key=lambda r: r.reg)
    return [(a, b) for a, b in itertools.pairwise(rows) if b.reg <= a.last_reg]
