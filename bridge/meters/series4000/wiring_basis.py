"""The commissioning check's vocabulary: thresholds, one reading, the wiring's voltages (pure).

A reading is the measured values by state key, the set-up and the alarm bitmap of register 146.
Phases use the state keys' names: ``a b c`` for CT inputs, ``an bn cn ab bc ca`` for voltages.

Nominal voltages follow the quick install guide: the system voltage (register 134) is
line-to-line except for type 10, where it is line-to-neutral; L-N nominal is L-L / 2 for the
split phase (12) and L-L / sqrt(3) for the wye (40).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from bridge.meters.findings import Finding, Severity
from bridge.meters.profile import MeterSetup
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import valid_state_keys
from bridge.meters.series4000.validity import alarm_bits_for

Number = int | float

# ---------------------------------------------------------------------------------------------
# Thresholds, each with where it comes from.

#: Below this fraction of nominal a voltage is not low but missing (an open tap or a blown fuse):
#: a connected tap reads at least the 90 V L-N accuracy minimum of the quick install guide, 75 %
#: of the smallest (120 V) service, while an open lead only picks up a few induced volts.
VOLTAGE_MISSING_FRACTION = 0.20
#: In a delta (31) an open voltage tap floats between the other two conductors, so the two
#: voltages with it read 50-58 % of nominal instead of nothing: below this fraction, with the
#: third voltage above it, the tap is missing.
DELTA_OPEN_TAP_FRACTION = 0.75
#: Further than this from nominal a voltage is out of range, and the measured average says the
#: system-voltage setting is wrong: supplies are held within 10 % of nominal (EN 50160), and 5 %
#: more leaves room for PT error before a warning.
VOLTAGE_TOLERANCE_FRACTION = 0.15
#: The meter's frequency range (quick install guide, "Frequency Range 45 to 65 Hz").
FREQUENCY_RANGE_HZ = (45.0, 65.0)
#: A CT carrying at least this fraction of its rating (register 131) has a power factor worth
#: judging: below it the CT's own phase error and the load's standby draw dominate.
CT_LOADED_FRACTION = 0.05
#: Below this fraction of its rating a CT carries no current: an unplugged CT or an open CT
#: window reads noise only, far under the smallest load a phase carries.
CT_NO_CURRENT_FRACTION = 0.005
#: A loaded CT with |PF| below CT_WRONG_PF while another phase is at CT_GOOD_PF or more sits on
#: another phase's conductor: the 120 degree shift takes a typical 0.85-0.95 load power factor
#: to 0.0-0.3, while no real load on a shared service differs that much between phases.
CT_WRONG_PF = 0.5
CT_GOOD_PF = 0.8
#: In a split phase (12) AN and BN are 180 degrees apart, so AB = AN + BN; from a three-phase
#: wye (120 degrees) AB = sqrt(3)/2 (AN + BN). Halfway between the two ratios decides.
SPLIT_PHASE_RATIO_LIMIT = (1.0 + math.sqrt(3) / 2) / 2

_E, _W, _I = Severity.ERROR, Severity.WARNING, Severity.INFO
#: Every code with its severity, in the order findings are listed.
SEVERITIES: dict[str, Severity] = {
    "voltage_missing": _E, "system_type_mismatch": _E, "phase_loss": _E, "ct_over_range": _E,
    "voltage_out_of_range": _W, "voltage_imbalance": _W, "system_voltage_setting": _W,
    "ct_wrong_phase": _W, "frequency_out_of_range": _W, "pulse_weight_too_small": _W,
    "ct_no_current": _I,
}
CODES = tuple(SEVERITIES)
#: Codes that only inform: they do not make the meter's wiring a problem.
INFO_CODES = tuple(code for code, severity in SEVERITIES.items() if severity is _I)


@dataclass(frozen=True)
class WiringReading:
    """One reading of a meter: measured values (numbers only, by state key) and its set-up."""

    setup: MeterSetup
    values: Mapping[str, Number] = field(default_factory=dict)

    @property
    def system(self) -> s4k.SystemType:
        return s4k.SYSTEM_TYPES[self.setup.system_type]

    @cached_property
    def missing(self) -> tuple[str, ...]:
        """The voltages the wiring uses that are missing (:func:`missing_voltages`)."""
        return missing_voltages(self)

    @cached_property
    def lost(self) -> frozenset[str]:
        """The phases whose conductor reads no voltage (:func:`lost_letters`)."""
        return frozenset(lost_letters(self, self.missing))

    def setting(self, key: str) -> float | None:
        value = self.setup.settings.get(key)
        return float(value) if isinstance(value, (int, float)) else None

    def value(self, key: str) -> float | None:
        value = self.values.get(key)
        return float(value) if isinstance(value, (int, float)) else None


# ---------------------------------------------------------------------------------------------
# Wiring geometry


LL_PAIRS = {"ab": ("a", "b"), "bc": ("b", "c"), "ca": ("c", "a")}
LN_PHASES = ("an", "bn", "cn")


@functools.cache
def voltage_phases(system_type: int) -> tuple[str, ...]:
    """The voltages a system type measures (state-key phase names), as the point map's
    validity table says."""
    valid = valid_state_keys(system_type)
    return tuple(p for p in (*LN_PHASES, *LL_PAIRS) if f"voltage_{p}_v" in valid)


def nominal_v(system_type: int, system_voltage_v: float, phase: str) -> float:
    """The nominal value of a voltage from the system-voltage setting (register 134)."""
    if system_type == 10:
        return system_voltage_v
    if phase in LL_PAIRS:
        return system_voltage_v
    return system_voltage_v / (2.0 if system_type == 12 else math.sqrt(3))


def alarm_voltage_phase(system: s4k.SystemType, letter: str) -> str:
    """The voltage an alarm bit of phase ``letter`` is about (L-N with a neutral, else L-L)."""
    if system.neutral:
        return f"{letter}n"
    if system.code == 11:
        return "ab"
    return {"a": "ab", "b": "bc", "c": "ca"}[letter]


def alarm_active(reading: WiringReading, bit: int) -> bool:
    """Whether bit ``bit`` of register 146 is set and applies to the phases the wiring uses."""
    return bool(reading.setup.alarm_bitmap >> bit & 1) and any(
        b.bit == bit for b in alarm_bits_for(reading.setup.system_type))


def pct(x: float) -> str:
    return f"{x * 100:.0f} %"


def missing_voltages(reading: WiringReading) -> tuple[str, ...]:
    """Voltages the wiring uses that read below VOLTAGE_MISSING_FRACTION of nominal."""
    system_v = reading.setting("system_voltage_v")
    if system_v is None:
        return ()
    st = reading.setup.system_type
    fraction = {p: v / nominal_v(st, system_v, p) for p in voltage_phases(st)
                if (v := reading.value(f"voltage_{p}_v")) is not None}
    out = [p for p, f in fraction.items() if f < VOLTAGE_MISSING_FRACTION]
    if st == 31:
        # An open tap in a delta floats between the other two conductors: the two voltages
        # with it read about half of nominal while the third is normal.
        for pair in LL_PAIRS:
            others = [p for p in LL_PAIRS if p != pair]
            if (fraction.get(pair, 0.0) >= DELTA_OPEN_TAP_FRACTION
                    and all(fraction.get(p, 1.0) < DELTA_OPEN_TAP_FRACTION for p in others)):
                out += [p for p in others if p not in out]
    return tuple(p for p in voltage_phases(st) if p in out)


def lost_letters(reading: WiringReading, missing: Iterable[str]) -> set[str]:
    """Phases whose conductor reads no voltage (L-N missing, or both L-L with it missing)."""
    missing = set(missing)
    lost = {p[0] for p in missing if p.endswith("n")}
    if not reading.system.neutral:
        for letter in "abc":
            pairs = [p for p in LL_PAIRS if letter in LL_PAIRS[p] and p in missing]
            if len(pairs) >= 2:
                lost.add(letter)
    return lost


def current(reading: WiringReading, letter: str) -> float | None:
    return reading.value(f"current_{letter}_a")


def no_current(reading: WiringReading, letter: str) -> bool:
    ct = reading.setting("ct_primary_a")
    i = current(reading, letter)
    return ct is not None and i is not None and i < CT_NO_CURRENT_FRACTION * ct


def measured_system_v(reading: WiringReading) -> float | None:
    """The average of the voltages the system-voltage setting describes (L-L; L-N for type 10),
    leaving out missing voltages and the L-L voltages of a phase with no voltage."""
    st = reading.setup.system_type
    skip = set(reading.missing)
    lost = reading.lost
    kind = ("an",) if st == 10 else tuple(LL_PAIRS)
    volts = [reading.value(f"voltage_{p}_v") for p in voltage_phases(st)
             if p in kind and p not in skip and not set(LL_PAIRS.get(p, ())) & lost]
    numbers = [v for v in volts if v is not None]
    return sum(numbers) / len(numbers) if numbers else None


def finding(code: str, phase: str | None, message: str, fix: str,
            extra: tuple[tuple[str, int | float | str], ...] = ()) -> Finding:
    """A finding of ``code``, with the code's severity."""
    return Finding(code, SEVERITIES[code], phase, message, fix, extra)
