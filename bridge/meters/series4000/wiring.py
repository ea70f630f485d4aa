"""The commissioning check: wiring rules over one reading of a Series 4000-K (pure).

Each rule returns findings (code, severity, phase, message, fix) for one reading; ``check`` runs
them all. One cause gives one finding: a finding that another one explains (the phase-loss alarm
of a voltage that is missing, voltages "out of range" against a wrong system-voltage setting, no
current on a phase the suggested system type does not use) is left out. Thresholds and the
wiring's geometry are in ``wiring_basis``.
"""

from __future__ import annotations

from bridge.meters.findings import Finding
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.wiring_basis import (
    CODES,
    CT_GOOD_PF,
    CT_LOADED_FRACTION,
    CT_WRONG_PF,
    FREQUENCY_RANGE_HZ,
    LL_PAIRS,
    SPLIT_PHASE_RATIO_LIMIT,
    VOLTAGE_MISSING_FRACTION,
    VOLTAGE_TOLERANCE_FRACTION,
    WiringReading,
    alarm_active,
    alarm_voltage_phase,
    current,
    finding,
    measured_system_v,
    no_current,
    nominal_v,
    pct,
    voltage_phases,
)

#: The wiring diagram of each system type in the quick install guide.
DIAGRAMS = {10: "1", 11: "2", 12: "3", 31: "4", 40: "5 or 6"}

# ---------------------------------------------------------------------------------------------
# The rules


def rule_voltage_missing(reading: WiringReading) -> list[Finding]:
    st = reading.setup.system_type
    system_v = reading.setting("system_voltage_v") or 0.0
    missing = reading.missing
    lost = reading.lost
    out = []
    for phase in missing:
        if reading.system.neutral and set(LL_PAIRS.get(phase, ())) & lost:
            continue  # an L-L voltage without a conductor that has its L-N finding
        v = reading.value(f"voltage_{phase}_v") or 0.0
        nominal = nominal_v(st, system_v, phase)
        # The conductor to check: the L-N voltage's own, or the open one of an L-L pair.
        letter = next((x for x in LL_PAIRS.get(phase, ()) if x in lost), phase[0])
        if v < VOLTAGE_MISSING_FRACTION * nominal:
            why = f"below {pct(VOLTAGE_MISSING_FRACTION)} of the nominal {nominal:.0f} V"
        else:
            why = (f"{pct(v / nominal)} of the nominal {nominal:.0f} V, like the other voltage "
                   f"with phase {letter.upper()}")
        out.append(finding(
            "voltage_missing", phase,
            f"Voltage {phase.upper()} reads {v:.0f} V, {why}: the voltage tap of phase "
            f"{letter.upper()} is not connected.",
            f"Check the voltage lead of phase {letter.upper()} at the meter's voltage "
            "terminals and its fuse or breaker; a blown fuse is the usual cause."))
    return out


def suggested_system_type(reading: WiringReading) -> int | None:
    """Another system type the readings fit better, if there is one."""
    system = reading.system
    st = system.code
    lost = reading.lost
    if lost and st in (12, 31, 40):
        # Phases without voltage and without current are not wired at all.
        if all(no_current(reading, p) for p in lost if p in system.ct_phases):
            remaining = len(system.voltage_phases) - len(lost)
            if remaining == 2:
                return 12 if system.neutral else 11
            return 10 if remaining == 1 and system.neutral else None
        return None
    if st == 12 and not lost:
        an, bn, ab = (reading.value(f"voltage_{p}_v") for p in ("an", "bn", "ab"))
        if an and bn and ab is not None and ab / (an + bn) < SPLIT_PHASE_RATIO_LIMIT:
            return 40  # A and B are 120 degrees apart: two phases of a three-phase wye
    return None


def rule_system_type_mismatch(reading: WiringReading) -> list[Finding]:
    suggested = suggested_system_type(reading)
    if suggested is None:
        return []
    st = reading.setup.system_type
    label = s4k.SYSTEM_TYPES[suggested].label
    lost = sorted(reading.lost)
    if suggested == 40:
        message = (f"The meter is set to system type {st}, but A and B are 120 degrees apart "
                   "(AB is about sqrt(3) times the L-N voltage): the supply is three-phase.")
        fix = (f"Set the system type to {label} (front panel SETUP > S SYS, or register 130) "
               f"and connect phase C and its CT (quick install guide, diagram {DIAGRAMS[40]}).")
    else:
        phases = ("phases " if len(lost) > 1 else "phase ") + " and ".join(p.upper() for p in lost)
        has = "have" if len(lost) > 1 else "has"
        message = (f"The meter is set to system type {st}, but {phases} {has} neither voltage "
                   f"nor current: the readings fit {label}.")
        fix = (f"If the service really is {label}, set that system type (SETUP > S SYS, or "
               f"register 130; quick install guide diagram {DIAGRAMS[suggested]}); otherwise "
               f"connect the voltage tap and CT of {phases}.")
    return [finding("system_type_mismatch", None, message, fix,
                    (("suggested_system_type", suggested),))]


def rule_phase_loss(reading: WiringReading) -> list[Finding]:
    out = []
    for idx, letter in enumerate("abc"):
        if alarm_active(reading, 8 + idx):
            phase = alarm_voltage_phase(reading.system, letter)
            out.append(finding(
                "phase_loss", phase,
                f"The meter reports phase loss on {letter.upper()} (register 146, bit "
                f"{8 + idx}): a voltage is below the phase-loss threshold (register 142) or the "
                "voltages are further apart than the imbalance threshold (register 143).",
                f"Measure the voltage of phase {letter.upper()} at the meter; check its fuse "
                "and lead, and that the system voltage (register 134) matches the service."))
    return out


def rule_ct_over_range(reading: WiringReading) -> list[Finding]:
    ct = reading.setting("ct_primary_a")
    out = []
    for letter in reading.system.ct_phases:
        i = current(reading, letter)
        over = ct is not None and i is not None and i > ct
        if alarm_active(reading, 3 + "abc".index(letter)) or over:
            shown = f"{i:.1f} A" if i is not None else "its current"
            out.append(finding(
                "ct_over_range", letter,
                f"CT {letter.upper()} carries {shown}, above its rating"
                f"{f' of {ct:.0f} A' if ct else ''} (register 131): readings are clipped.",
                "Check that the CT primary setting (register 131) matches the CTs' rating, or "
                "fit CTs rated for the load."))
    return out


def rule_voltage_out_of_range(reading: WiringReading, by_setting: bool) -> list[Finding]:
    st = reading.setup.system_type
    system_v = reading.setting("system_voltage_v")
    lost = reading.lost
    # Missing voltages, and the L-L voltages of a phase without voltage, have their finding.
    skip = set(reading.missing) | {p for p, pair in LL_PAIRS.items() if set(pair) & lost}
    found: dict[str, Finding] = {}
    for idx, letter in enumerate("abc"):
        if alarm_active(reading, idx):
            phase = alarm_voltage_phase(reading.system, letter)
            found[phase] = finding(
                "voltage_out_of_range", phase,
                f"The meter reports voltage {letter.upper()} out of range (register 146, "
                f"bit {idx}).",
                "Measure the voltage at the meter's terminals and compare it with the service; "
                "check the PT ratio (register 133) if PTs are fitted.")
    if system_v is not None and not by_setting:
        for phase in voltage_phases(st):
            v = reading.value(f"voltage_{phase}_v")
            nominal = nominal_v(st, system_v, phase)
            if phase in skip or phase in found or v is None:
                continue
            if abs(v - nominal) > VOLTAGE_TOLERANCE_FRACTION * nominal:
                found[phase] = finding(
                    "voltage_out_of_range", phase,
                    f"Voltage {phase.upper()} reads {v:.0f} V, more than "
                    f"{pct(VOLTAGE_TOLERANCE_FRACTION)} from the nominal {nominal:.0f} V.",
                    "Measure the voltage at the meter's terminals; a loose lead or a wrong PT "
                    "ratio (register 133) are the usual causes.")
    return list(found.values())


def rule_voltage_imbalance(reading: WiringReading) -> list[Finding]:
    threshold = reading.setting("phase_loss_imbalance_pct")
    if threshold is None:
        return []
    skip = set(reading.missing)
    lost = reading.lost
    out = []
    for kind, group in (("L-N", ("an", "bn", "cn")), ("L-L", ("ab", "bc", "ca"))):
        used = [p for p in voltage_phases(reading.setup.system_type) if p in group
                and p not in skip and not set(LL_PAIRS.get(p, (p[0],))) & lost]
        volts = [v for v in (reading.value(f"voltage_{p}_v") for p in used) if v is not None]
        if len(volts) < 2:
            continue
        mean = sum(volts) / len(volts)
        spread = (max(volts) - min(volts)) / mean * 100.0 if mean else 0.0
        if spread > threshold:
            out.append(finding(
                "voltage_imbalance", None,
                f"The {kind} voltages are {spread:.0f} % apart "
                f"({', '.join(f'{v:.0f}' for v in volts)} V), more than the imbalance "
                f"threshold of {threshold:.0f} % (register 143).",
                "Measure the voltages at the meter: a loose or corroded lead, or a voltage tap "
                "on the wrong conductor, gives an imbalance the service does not have."))
    return out


def rule_system_voltage_setting(reading: WiringReading) -> list[Finding]:
    system_v = reading.setting("system_voltage_v")
    measured = measured_system_v(reading)
    if system_v is None or measured is None:
        return []
    if abs(measured - system_v) <= VOLTAGE_TOLERANCE_FRACTION * system_v:
        return []
    kind = "L-N" if reading.setup.system_type == 10 else "L-L"
    return [finding(
        "system_voltage_setting", None,
        f"The measured {kind} voltage is {measured:.0f} V but the system voltage is set to "
        f"{system_v:.0f} V (register 134): phase-loss detection works against the wrong "
        "nominal.",
        f"Set the system voltage to the service's nominal {kind} voltage (about "
        f"{measured:.0f} V; front panel SETUP > S SYS, or register 134).",
        (("measured_v", round(measured, 1)),))]


def rule_ct_wrong_phase(reading: WiringReading) -> list[Finding]:
    ct = reading.setting("ct_primary_a")
    if ct is None:
        return []
    pf = {p: reading.value(f"power_factor_{p}") for p in reading.system.ct_phases}
    out = []
    for letter in reading.system.ct_phases:
        i, own = current(reading, letter), pf[letter]
        if i is None or own is None or i < CT_LOADED_FRACTION * ct or abs(own) >= CT_WRONG_PF:
            continue
        good = [p for p, v in pf.items() if p != letter and v is not None and abs(v) >= CT_GOOD_PF]
        if good:
            out.append(finding(
                "ct_wrong_phase", letter,
                f"CT {letter.upper()} carries {i:.1f} A at power factor {own:.2f} while phase "
                f"{good[0].upper()} is at {pf[good[0]]:.2f}: the CT most likely sits on another "
                "phase's conductor.",
                f"Make sure CT {letter.upper()} is on the conductor whose voltage is wired to "
                f"the meter's {letter.upper()} terminal; swap CTs until every phase shows a "
                "similar power factor."))
    return out


def rule_ct_no_current(reading: WiringReading, suggested: int | None) -> list[Finding]:
    phases = reading.system.ct_phases
    if suggested is not None:  # phases that are not wired are the mismatch's finding
        lost = reading.lost
        phases = tuple(p for p in phases if p not in lost)
    ct = reading.setting("ct_primary_a")
    loaded = [p for p in reading.system.ct_phases if ct is not None
              and (i := current(reading, p)) is not None and i >= CT_LOADED_FRACTION * ct]
    if not loaded:
        return []
    return [finding(
        "ct_no_current", p,
        f"CT {p.upper()} reads no current while phase {loaded[0].upper()} carries load.",
        f"If phase {p.upper()} has load, check that CT {p.upper()} is plugged into the meter "
        "and closed around the conductor.")
        for p in phases if no_current(reading, p)]


def rule_frequency(reading: WiringReading) -> list[Finding]:
    hz = reading.value("frequency_hz")
    lo, hi = FREQUENCY_RANGE_HZ
    outside = hz is not None and not lo <= hz <= hi
    if not (alarm_active(reading, 6) or outside):
        return []
    shown = f"{hz:.2f} Hz" if hz is not None else "no frequency"
    return [finding(
        "frequency_out_of_range", None,
        f"The frequency reads {shown}, outside {lo:.0f}-{hi:.0f} Hz (it is measured on "
        "phase A).",
        "Check the voltage on phase A: without it the meter cannot measure the frequency.")]


def rule_pulse_weight(reading: WiringReading) -> list[Finding]:
    weight = reading.setting("pulse_wh")
    max_power = reading.setup.status.get("max_power_w")
    too_small = (weight is not None and max_power is not None
                 and not s4k.pulse_weight_can_keep_up(weight, max_power))
    if not (alarm_active(reading, 15) or too_small):
        return []
    if too_small:
        message = (f"The energy per pulse ({weight:.0f} Wh) cannot follow the theoretical "
                   f"maximum power ({(max_power or 0) / 1000:.0f} kW, register 135) at any "
                   "closure time: pulses will be lost at high load.")
    else:
        message = ("The meter reports the energy per pulse too small for its theoretical "
                   "maximum power (register 146, bit 15).")
    need = next((w for w in s4k.PULSE_WEIGHTS_WH if (weight is None or w > weight)
                 and (max_power is None or s4k.pulse_weight_can_keep_up(w, max_power))), None)
    size = f"to {need} Wh or more" if need else "to a larger value"
    return [finding("pulse_weight_too_small", None, message,
                    f"Set the energy per pulse (register 144) {size}, and clear the pulse "
                    "counters afterwards.")]


def check(reading: WiringReading) -> tuple[Finding, ...]:
    """Every finding of one reading, in the order of :data:`CODES`."""
    missing = reading.missing
    lost = reading.lost
    suggested = suggested_system_type(reading)
    setting = rule_system_voltage_setting(reading)
    # The phase-loss alarm of a phase without voltage, or under a wrong nominal, says nothing new.
    phase_loss = [f for f in rule_phase_loss(reading) if not setting
                  and f.phase not in missing and (f.phase or "?")[0] not in lost]
    findings = [
        *rule_voltage_missing(reading),
        *rule_system_type_mismatch(reading),
        *phase_loss,
        *rule_ct_over_range(reading),
        *rule_voltage_out_of_range(reading, by_setting=bool(setting)),
        *rule_voltage_imbalance(reading),
        *setting,
        *rule_ct_wrong_phase(reading),
        *rule_frequency(reading),
        *rule_pulse_weight(reading),
        *rule_ct_no_current(reading, suggested),
    ]
    return tuple(sorted(findings, key=lambda f: CODES.index(f.code)))
