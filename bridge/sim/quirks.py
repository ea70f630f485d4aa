"""How a simulated meter answers requests where real meters differ (pure).

The manuals leave open how many registers one read may ask for, whether the inferred float
registers 343-346 exist, and how the 0x2B identification objects are numbered. A real meter may
answer any of these differently from the simulator's defaults; these options let the simulator
behave like such a meter, so the bridge's handling of it can be tested and measured.
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.meters.series4000 import points as s4k
from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE

#: The Modbus limit for one read of holding registers (function 0x03).
MODBUS_MAX_READ = 125


@dataclass(frozen=True, slots=True)
class Quirks:
    #: Longer reads are refused with exception 03 (illegal data value).
    max_read_registers: int = MODBUS_MAX_READ
    #: Registers (1-based) the meter does not have: a read touching one gets exception 02.
    missing: frozenset[int] = frozenset()
    #: The number of the first 0x2B object (0 as the standard, 1 as some manuals list them);
    #: None: the meter does not implement 0x2B (exception 01).
    identification_first: int | None = 0
    #: Seconds until a reset (30078) takes effect; the meters act on commands at the end of
    #: their one-second calculation cycle, so register 147 may count it up to a second late.
    reset_delay_s: float = 0.0
    #: Whether 30078 also clears the pulse counters (undocumented; 16498 clears them).
    reset_clears_pulses: bool = False


def read_refusal(quirks: Quirks, first_reg: int, count: int) -> int | None:
    """The exception a read of ``count`` registers from ``first_reg`` (1-based) gets, or None."""
    if count > quirks.max_read_registers:
        return ILLEGAL_VALUE
    if any(first_reg <= reg < first_reg + count for reg in quirks.missing):
        return ILLEGAL_ADDRESS
    return None


def identification_objects(quirks: Quirks, firmware: int) -> dict[int, str] | None:
    """The basic 0x2B objects (vendor, product, revision) as this meter numbers them."""
    if quirks.identification_first is None:
        return None
    texts = (s4k.MANUFACTURER, s4k.IDENTIFICATION_PRODUCT, s4k.firmware_label(firmware))
    return {quirks.identification_first + i: text for i, text in enumerate(texts)}


def parse_registers(text: str) -> frozenset[int]:
    """``343-346,7001`` -> the registers; ValueError naming the bad part."""
    regs: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo_text, _, hi_text = part.partition("-")
        try:
            lo, hi = int(lo_text), int(hi_text or lo_text)
        except ValueError:
            raise ValueError(f"{part!r} is not a register or a range like 343-346") from None
        if not 1 <= lo <= hi <= 65536:
            raise ValueError(f"{part!r}: registers are 1..65536, low to high")
        regs.update(range(lo, hi + 1))
    return frozenset(regs)
