"""What a Modbus TCP client may read and write through the bridge (pure, driven by the meter
profile).

Register numbers here are the manual's 1-based numbers, like everywhere in the profile; the
server converts from the 0-based wire addresses at its edge.

- A read is in the meter's map when every register it covers belongs to a row of the profile.
- A read is answered from the words the bridge last read when one stored block covers it and is
  younger than ``max_age_s``; otherwise the block the poller reads it in (or, for registers the
  poller never reads, exactly the requested range) is read once on the bus.
- A write becomes the MQTT command that sets the same register: a setting's register value is
  turned into the payload text an MQTT client would send, a command value in register 129 into
  its button. Everything after that (``allow_writes``, validation, read-back, result message) is
  the command path's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from bridge.errors import ILLEGAL_ADDRESS, ILLEGAL_FUNCTION, ILLEGAL_VALUE, RequestRefused
from bridge.meters.profile import MeterProfile, Setting
from bridge.model.registers import Register

#: The words of the latest read of each block by its first register, and when it was read.
StoredWords = Mapping[int, tuple[tuple[int, ...], float]]


def map_registers(rows: Iterable[Register]) -> frozenset[int]:
    """Every register number a row of the map covers (both words of a 32-bit value)."""
    return frozenset(reg for row in rows for reg in range(row.reg, row.last_reg + 1))


def check_in_map(first_reg: int, count: int, known: frozenset[int]) -> None:
    """Refuse (exception 02) a read that covers a register outside the meter's map."""
    missing = [r for r in range(first_reg, first_reg + count) if r not in known]
    if missing:
        raise RequestRefused(ILLEGAL_ADDRESS, f"register {missing[0]} is not in the meter's "
                                              f"map (read of {count} from {first_reg})")


def fresh_words(stored: StoredWords, first_reg: int, count: int, now: float,
                max_age_s: float) -> tuple[int, ...] | None:
    """The requested words from the freshest stored block that covers them, if it is younger
    than ``max_age_s``; None when the bus must be asked."""
    best: tuple[tuple[int, ...], float] | None = None
    for start, (words, read_at) in stored.items():
        offset = first_reg - start
        if offset < 0 or offset + count > len(words) or now - read_at > max_age_s:
            continue
        if best is None or read_at > best[1]:
            best = (words[offset:offset + count], read_at)
    return None if best is None else best[0]


def block_to_read(first_reg: int, count: int,
                  planned: Iterable[tuple[int, int]]) -> tuple[int, int]:
    """(start, count) to read for a request the cache cannot answer: the smallest block the
    poller reads that covers it (so the answer refreshes what the bridge itself uses and is
    shared by everyone who needs that block), else exactly the requested range."""
    covering = [(start, n) for start, n in planned
                if start <= first_reg and first_reg + count <= start + n]
    return min(covering, key=lambda block: block[1]) if covering else (first_reg, count)


def _payload_for_setting(setting: Setting, raw: int) -> bytes:
    """The MQTT payload that asks for register value ``raw`` of ``setting``."""
    if setting.kind == "select":
        return str(raw).encode()  # a select takes its option's code as well as its label
    value = (Decimal(raw) * Decimal(str(setting.factor))).normalize()
    # As a person would type it: 200, 1.5 (never 2E+2 or 200.0).
    return format(value, "f").encode()


def command_for_write(profile: MeterProfile, reg: int, raw: int) -> tuple[str, bytes]:
    """(setting or button key, MQTT payload) for a write of ``raw`` to register ``reg``.

    Refuses a register outside the map (02), one the bridge does not write (01) and a value of
    the command register that is no command (03); whether the value is acceptable for a setting
    is the command path's decision, not this function's.
    """
    if reg == profile.command_register:
        for command in profile.commands:
            if command.value == raw:
                return command.key, b"PRESS"
        known = ", ".join(f"{c.value} ({c.key})" for c in profile.commands)
        raise RequestRefused(ILLEGAL_VALUE, f"{raw} is not a command for register "
                                            f"{reg}; known: {known}")
    for setting in profile.settings:
        if setting.reg == reg:
            return setting.key, _payload_for_setting(setting, raw)
    if reg in map_registers(profile.register_map):
        raise RequestRefused(ILLEGAL_FUNCTION, f"register {reg} is not writable")
    raise RequestRefused(ILLEGAL_ADDRESS, f"register {reg} is not in the meter's map")
