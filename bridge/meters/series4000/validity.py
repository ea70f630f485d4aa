"""Which quantities are valid for a meter's wiring, and what may be published (pure).

Two sources decide validity: the point map's table (by system type, register 130) and the meter
itself. A value the meter reports as QNAN is never a number, whatever the table says; a point the
sources leave uncertain for a system type (per-phase power without a neutral) is valid only when
the meter reports a number for it.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass

from bridge.meters.series4000.points import ALARM_BITS, SYSTEM_TYPES, AlarmBit
from bridge.model.quantities import BY_KEY
from bridge.model.registers import Register

Number = int | float


def valid_rows(rows: Iterable[Register], system_type: int,
               reported: Iterable[str] = ()) -> tuple[Register, ...]:
    """Rows valid for ``system_type``; uncertain ones only if their key is in ``reported``."""
    seen = set(reported)
    return tuple(
        r for r in rows
        if system_type in r.valid_types or (system_type in r.uncertain_types and r.key in seen)
    )


def valid_keys(rows: Iterable[Register], system_type: int,
               reported: Iterable[str] = ()) -> frozenset[str]:
    return frozenset(r.key for r in valid_rows(rows, system_type, reported) if r.key)


def uncertain_keys(rows: Iterable[Register], system_type: int) -> frozenset[str]:
    return frozenset(r.key for r in rows if r.key and system_type in r.uncertain_types)


def alarm_bits_for(system_type: int) -> tuple[AlarmBit, ...]:
    """The alarm bits of register 146 that apply to the phases a system type uses."""
    st = SYSTEM_TYPES.get(system_type)
    if st is None:
        return ()
    out = []
    for bit in ALARM_BITS:
        if bit.phase_set == "voltage" and bit.phase not in st.voltage_phases:
            continue
        if bit.phase_set == "ct" and bit.phase not in st.ct_phases:
            continue
        out.append(bit)
    return tuple(out)


def active_alarms(bitmap: int, system_type: int) -> list[str]:
    """Names of the active alarms of register 146, for the phases the system type uses."""
    return [b.key for b in alarm_bits_for(system_type) if bitmap >> b.bit & 1]


@dataclass(frozen=True, slots=True)
class Dropped:
    key: str
    value: Number
    floor: Number
    reason: str


def is_number(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


MONOTONIC = frozenset(q.key for q in BY_KEY.values() if q.monotonic)


def sanitize(
    values: Mapping[str, Number | None],
    valid: frozenset[str],
    floors: Mapping[str, Number],
    resets: Collection[str] = (),
) -> tuple[dict[str, Number], dict[str, Number], list[Dropped]]:
    """Turn decoded values into publishable ones.

    Keeps only valid keys with finite numbers; an accumulator lower than its last published
    value (``floors``) is dropped and reported, unless the key is in ``resets`` (the bridge
    knows the meter was reset). Returns the clean values, the new floors, and the drops.
    """
    clean: dict[str, Number] = {}
    new_floors = dict(floors)
    dropped: list[Dropped] = []
    for key, value in values.items():
        if key not in valid or value is None or not is_number(value):
            continue
        if key in MONOTONIC:
            floor = floors.get(key)
            if floor is not None and value < floor and key not in resets:
                dropped.append(Dropped(key, value, floor, "lower than the last published total"))
                continue
            new_floors[key] = value
        clean[key] = value
    return clean, new_floors, dropped
