"""The fast tier's read plan: the fewest bytes on the wire that give the fast keys (pure).

The fast keys come from the full plan's rows (floats on the Series 4000), unless a profile
offers a scaled integer row for a key (total power in one register instead of a float pair) and
that integer's resolution under the meter's scale registers is at least as fine as the published
resolution of the key (:func:`~bridge.model.quantities.published_resolution`): then the
published value is the same either way. Among the choices the plan with the least line time
wins, and rows share a request when the registers between them cost less than a second request.
The bridge (``core.runtime``) and the bus budget (``core.budget``) both plan with
:func:`fast_plan`, so the budget's figures are those of the reads the bridge makes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Mapping, Sequence

from bridge.model.quantities import published_resolution
from bridge.model.read_limits import ReadLimits, lacks, plan
from bridge.model.registers import MAX_READ_REGISTERS, ReadBlock, Register

#: Line seconds of one read of ``n`` registers (``budget.LineTiming.read_s``).
ReadCost = Callable[[int], float]


def integer_resolution(row: Register, scales: Mapping[int, int]) -> float | None:
    """The step of a scaled integer row in its key's unit (10 ** (factor + scale) ); None when
    the row has no scale register or the scale is unknown."""
    if row.scale_reg is None or row.scale_reg not in scales:
        return None
    return 10.0 ** (row.exponent + scales[row.scale_reg])


def integer_suffices(row: Register, scales: Mapping[int, int] | None) -> bool:
    """Whether ``row`` carries its key at least as finely as the key is published."""
    if row.key is None or scales is None:
        return False
    step = integer_resolution(row, scales)
    # The tolerance absorbs the binary representation of negative powers of ten.
    return step is not None and step <= published_resolution(row.key) * (1 + 1e-9)


def coarsest_scales(integer_rows: Sequence[Register]) -> dict[int, int]:
    """Per scale register, the coarsest content under which every integer row it scales is
    still fine enough (what a meter's set-up must give for the integer reads)."""
    out: dict[int, int] = {}
    for row in integer_rows:
        if row.key is None or row.scale_reg is None:
            continue
        finest = math.floor(math.log10(published_resolution(row.key)) + 1e-9) - row.exponent
        out[row.scale_reg] = min(out.get(row.scale_reg, finest), finest)
    return out


def worthwhile_gap(cost: ReadCost) -> int:
    """The most unused registers a request should span rather than split in two: a read's cost
    is a fixed part (frame, silences, reaction) plus a part per register."""
    per_register = cost(1) - cost(0)
    if per_register <= 0:
        return MAX_READ_REGISTERS
    return math.floor(cost(0) / per_register + 1e-9)


def fast_plan(full_blocks: Sequence[ReadBlock], fast_keys: Collection[str],
              integer_rows: Sequence[Register], scales: Mapping[int, int] | None,
              limits: ReadLimits, cost: ReadCost) -> tuple[ReadBlock, ...]:
    """The reads of the fast tier: every fast key of the full plan, each from its full-plan row
    or from an integer row that is fine enough under ``scales`` (None: the set-up is not known
    yet, so only the full plan's rows), whichever plan costs the least line time."""
    keys = set(fast_keys)
    base: dict[str, Register] = {r.key: r for b in full_blocks for r in b.registers
                                 if r.key is not None and r.key in keys}
    if not base:
        return ()
    options = [r for r in integer_rows
               if r.key in base and integer_suffices(r, scales) and not lacks(limits, r)]
    gap = worthwhile_gap(cost)
    best: tuple[ReadBlock, ...] = ()
    best_s = math.inf
    # Every subset of the integer options (a profile offers one or two): the float plan first,
    # so a tie keeps the float.
    for n in range(len(options) + 1):
        for chosen in itertools.combinations(options, n):
            rows = base | {r.key: r for r in chosen if r.key is not None}
            blocks = plan(rows.values(), limits, gap)
            seconds = sum(cost(b.count) for b in blocks)
            if seconds < best_s - 1e-12:
                best, best_s = blocks, seconds
    return best
