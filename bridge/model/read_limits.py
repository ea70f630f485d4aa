"""Read plans that adapt to what a meter refuses (pure).

The manuals say neither how many registers one read may ask for nor whether every register of
the float block exists (343-346 are inferred). A meter answers a read it cannot serve with an
exception: 03 (illegal data value) for a request longer than it takes, 02 (illegal data
address) for a span that holds a register it does not have. From those answers this module
learns, per meter:

- the longest read the meter answers and the shortest it refuses as too long; new plans use the
  midpoint, so the limit is found by bisection within a few reads;
- unused registers between two rows that must not be read across (they may be the ones the
  meter lacks);
- registers the meter does not have: a row refused when read alone. Its key is absent, like a
  quantity that is not valid for the wiring.

A request is only ever split between rows, never inside a 32-bit value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE
from bridge.model.registers import MAX_READ_REGISTERS, ReadBlock, Register, plan_reads

#: The refusals a plan adapts to; any other exception is an error of the moment.
ADAPTS_TO = frozenset({ILLEGAL_ADDRESS, ILLEGAL_VALUE})


@dataclass(frozen=True, slots=True)
class ReadLimits:
    """What one meter has shown about the reads it answers (all register numbers 1-based)."""

    #: The longest read it answered.
    accepted: int = 0
    #: The shortest read it refused as too long (exception 03), if any.
    refused: int | None = None
    #: Unused registers inside a refused request: plans do not read across them.
    unbridged: frozenset[int] = frozenset()
    #: Registers of rows the meter refused when read alone: it does not have them.
    missing: frozenset[int] = frozenset()

    @property
    def max_count(self) -> int:
        """The longest request to plan: the midpoint between accepted and refused lengths."""
        if self.refused is None:
            return MAX_READ_REGISTERS
        midpoint = max(self.accepted, (self.accepted + self.refused) // 2)
        return max(1, min(self.refused - 1, midpoint))

    @property
    def settled(self) -> bool:
        """Whether the longest acceptable request is known exactly (or never needed)."""
        return self.refused is None or self.accepted >= self.refused - 1


#: A meter that has refused nothing yet.
NOTHING_REFUSED = ReadLimits()


def lacks(limits: ReadLimits, row: Register) -> bool:
    return any(reg in limits.missing for reg in range(row.reg, row.last_reg + 1))


def plan(rows: Iterable[Register], limits: ReadLimits, max_gap: int = 10) -> tuple[ReadBlock, ...]:
    """Requests for ``rows`` that the meter should answer: rows it lacks are left out, no
    request reads across a gap it refused, none is longer than :attr:`ReadLimits.max_count`."""
    kept = sorted((r for r in set(rows) if not lacks(limits, r)), key=lambda r: r.reg)
    avoid = limits.unbridged | limits.missing
    # Never below the widest row: a value is read whole or not at all.
    max_count = max(limits.max_count, max((r.words for r in kept), default=1))
    blocks: list[ReadBlock] = []
    segment: list[Register] = []
    for row in kept:
        if segment and any(segment[-1].last_reg < reg < row.reg for reg in avoid):
            blocks.extend(plan_reads(segment, max_gap, max_count))
            segment = []
        segment.append(row)
    if segment:
        blocks.extend(plan_reads(segment, max_gap, max_count))
    return tuple(blocks)


def after_answer(limits: ReadLimits, block: ReadBlock) -> ReadLimits:
    if block.count <= limits.accepted:
        return limits
    return dataclasses.replace(limits, accepted=block.count)


def after_refusal(limits: ReadLimits, block: ReadBlock,
                  code: int) -> tuple[ReadLimits, tuple[ReadBlock, ...]]:
    """What a refusal of ``block`` (exception ``code``, one of :data:`ADAPTS_TO`) teaches, and
    the requests that replace it."""
    rows = block.registers
    if len(rows) == 1:
        row = rows[0]
        trailing = frozenset(range(row.last_reg + 1, block.end + 1))
        if trailing:
            # The unused registers after the row may be the ones it lacks: the row alone next.
            return dataclasses.replace(limits, unbridged=limits.unbridged | trailing), (
                _block(rows),)
        # A row refused alone: the meter does not have it (whatever the length rule says).
        missing = limits.missing | frozenset(range(row.reg, row.last_reg + 1))
        return dataclasses.replace(limits, missing=missing), ()
    if code == ILLEGAL_VALUE:
        # Too long: plan shorter requests (max_count is now below this request's length).
        refused = block.count if limits.refused is None else min(limits.refused, block.count)
        limits = dataclasses.replace(limits, refused=refused)
        return limits, plan(rows, limits)
    # 02, a register of the span is missing: halve between rows until what it lacks stands
    # alone. The unused registers at the cut go with the first half, so that a gap the meter
    # lacks ends up after a single row (above) instead of being skipped unnoticed.
    middle = _split_index(rows)
    first = ReadBlock(block.start, rows[middle].reg - block.start, tuple(rows[:middle]))
    second = ReadBlock(rows[middle].reg, block.end - rows[middle].reg + 1, tuple(rows[middle:]))
    return limits, (first, second)


def absent_keys(limits: ReadLimits, rows: Iterable[Register]) -> frozenset[str]:
    """State keys whose every row the meter lacks."""
    by_key: dict[str, list[Register]] = {}
    for row in rows:
        if row.key:
            by_key.setdefault(row.key, []).append(row)
    return frozenset(k for k, rs in by_key.items() if all(lacks(limits, r) for r in rs))


def describe(limits: ReadLimits) -> str | None:
    """What the meter refused, for a person (a log line, a note under ``read``); None if
    nothing."""
    parts = []
    if limits.missing:
        parts.append(f"does not have registers {describe_registers(limits.missing)}")
    if limits.refused is not None:
        parts.append(f"refuses reads of {limits.refused} registers or more (answered "
                     f"{limits.accepted})")
    return "; ".join(parts) or None


def describe_registers(regs: Iterable[int]) -> str:
    """{343, 344, 345, 346, 7001} -> '343-346, 7001'."""
    ordered = sorted(set(regs))
    runs: list[list[int]] = []
    for reg in ordered:
        if runs and reg == runs[-1][-1] + 1:
            runs[-1].append(reg)
        else:
            runs.append([reg])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)


def _split_index(rows: Sequence[Register]) -> int:
    """The row boundary nearest the middle of the registers ``rows`` span."""
    middle = (rows[0].reg + rows[-1].last_reg + 1) / 2
    return min(range(1, len(rows)), key=lambda i: abs(rows[i].reg - middle))


def _block(rows: Sequence[Register]) -> ReadBlock:
    return ReadBlock(rows[0].reg, rows[-1].last_reg - rows[0].reg + 1, tuple(rows))
