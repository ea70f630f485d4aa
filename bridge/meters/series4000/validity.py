"""Which quantities and alarms are valid for a Series 4000's wiring (pure).

Two sources decide validity: the point map's table (by system type, register 130) and the meter
itself. A value the meter reports as QNAN is never a number, whatever the table says; a point the
sources leave uncertain for a system type (per-phase power without a neutral) is valid only when
the meter reports a number for it.
"""

from __future__ import annotations

from collections.abc import Iterable

from bridge.meters.profile import AlarmBit
from bridge.meters.series4000.points import ALARM_BITS, SYSTEM_TYPES
from bridge.model.quantities import QUANTITIES
from bridge.model.registers import Register

#: Phase-A keys that repeat their total when a single CT is in use.
_PHASE_A_KEYS = frozenset(q.key for q in QUANTITIES if q.phase == "a")


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


def active_alarms(bitmap: int, system_type: int) -> tuple[str, ...]:
    """Names of the active alarms of register 146, for the phases the system type uses."""
    return tuple(b.key for b in alarm_bits_for(system_type) if bitmap >> b.bit & 1)


def repeated_keys(system_type: int) -> frozenset[str]:
    """Valid keys that say the same as another under the wiring.

    With one CT the phase-A power, current, energy and power factor are the totals; an average
    over one voltage is that voltage (L-N on 1-phase L-N, L-L on 1-phase L-L and split phase),
    so the named voltage stays (``Voltage A-N``, ``Voltage A-B``) and the average goes.
    """
    st = SYSTEM_TYPES.get(system_type)
    if st is None:
        return frozenset()
    out: set[str] = set()
    if len(st.ct_phases) == 1:
        out |= _PHASE_A_KEYS
    if st.neutral and len(st.voltage_phases) == 1:
        out.add("voltage_ln_v")
    if len(st.voltage_phases) == 2:
        out.add("voltage_ll_v")
    return frozenset(out)
