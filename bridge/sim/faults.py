"""Wiring faults of a simulated meter, for the commissioning check's tests and the demo.

``simulate --fault voltage_missing:c`` (or :func:`apply_fault` on a :class:`SimulatedMeter`)
changes what the simulated installation is wired to, and the meter model then reports what a
real meter would: its voltages, currents, power factors and alarm bits follow. Each fault is
named after the finding it should produce.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from bridge.sim.model import SimulatedMeter
from bridge.sim.setup import apply_write

_PHASES = ("a", "b", "c")
#: The conductor a misplaced CT sits on: the phase 120 degrees ahead of its own.
_WRONG_CONDUCTOR = {"a": "c", "b": "a", "c": "b"}
#: A high voltage: 25 % above nominal.
HIGH_VOLTAGE_SCALE = 1.25
#: A sagging voltage, below the simulated meter's phase-loss threshold: 80 % of nominal.
LOW_VOLTAGE_SCALE = 0.8
#: An unbalanced supply: A 10 % high, B 8 % low, against an imbalance threshold of 10 %.
IMBALANCE_SCALES = {"a": 1.10, "b": 0.92}
IMBALANCE_THRESHOLD_PCT = 10
#: A current above the CT's rating: 130 % of register 131.
OVER_RANGE_FRACTION = 1.3
#: Large CTs with the smallest pulse weight: the pulse output cannot follow the maximum power.
PULSE_TEST_CT_A, PULSE_TEST_WEIGHT_WH = 5000, 10


class FaultError(ValueError):
    """A fault that does not exist or does not fit the meter."""


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    #: A phase (``a``..``c``), a number (volts, hertz), or empty.
    arg: str = ""

    def __str__(self) -> str:
        return f"{self.kind}:{self.arg}" if self.arg else self.kind


def _phase(fault: Fault, meter: SimulatedMeter) -> int:
    if fault.arg not in _PHASES:
        raise FaultError(f"{fault}: give a phase, e.g. {fault.kind}:c")
    if fault.arg not in meter.system.ct_phases + meter.system.voltage_phases:
        raise FaultError(f"{fault}: system type {meter.setup.system_type} has no phase "
                         f"{fault.arg.upper()}")
    return _PHASES.index(fault.arg)


def _number(fault: Fault) -> float:
    try:
        return float(fault.arg)
    except ValueError:
        raise FaultError(f"{fault}: give a number, e.g. {fault.kind}:480") from None


def _voltage_missing(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.voltage_scale[_PHASES[_phase(fault, meter)]] = 0.0


def _voltage_high(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.voltage_scale[_PHASES[_phase(fault, meter)]] = HIGH_VOLTAGE_SCALE


def _voltage_low(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.voltage_scale[_PHASES[_phase(fault, meter)]] = LOW_VOLTAGE_SCALE


def _imbalance(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.voltage_scale.update(IMBALANCE_SCALES)
    meter.setup.phase_loss_imbalance_pct = IMBALANCE_THRESHOLD_PCT


def _phase_lost(meter: SimulatedMeter, fault: Fault) -> None:
    meter.lose_phase(_PHASES[_phase(fault, meter)])


def _ct_wrong_phase(meter: SimulatedMeter, fault: Fault) -> None:
    idx = _phase(fault, meter)
    if len(meter.system.ct_phases) < 3:
        raise FaultError(f"{fault}: a three-phase fault (system type 31 or 40)")
    other = _PHASES.index(_WRONG_CONDUCTOR[_PHASES[idx]])
    # The CT measures the other conductor's current, 120 degrees away from its own voltage.
    angle = math.radians(120.0) - math.acos(meter.load.pf[other])
    meter.load.current_a[idx] = meter.load.current_a[other]
    meter.load.pf[idx] = abs(math.cos(angle))


def _ct_over_range(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.current_a[_phase(fault, meter)] = meter.setup.ct_primary_a * OVER_RANGE_FRACTION


def _ct_no_current(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.current_a[_phase(fault, meter)] = 0.0


def _system_voltage(meter: SimulatedMeter, fault: Fault) -> None:
    volts = _number(fault)
    if not volts.is_integer() or apply_write(meter.setup, 134, int(volts)) is not None:
        raise FaultError(f"{fault}: the meter refuses a system voltage of {fault.arg} V")


def _frequency(meter: SimulatedMeter, fault: Fault) -> None:
    meter.load.frequency_hz = _number(fault)


def _pulse_weight(meter: SimulatedMeter, fault: Fault) -> None:
    # Set on the meter in this order, the weight would be refused; a CT change after the weight
    # was set leaves it this way.
    meter.setup.ct_primary_a = PULSE_TEST_CT_A
    meter.setup.pulse_wh = PULSE_TEST_WEIGHT_WH


FAULTS: dict[str, tuple[Callable[[SimulatedMeter, Fault], None], str]] = {
    "voltage_missing": (_voltage_missing, "PHASE: no voltage on the tap, the load still runs"),
    "voltage_out_of_range": (_voltage_high, "PHASE: the voltage 25 % above nominal"),
    "phase_loss": (_voltage_low, "PHASE: the voltage 20 % below nominal (phase-loss alarm)"),
    "voltage_imbalance": (_imbalance, "A 10 % high, B 8 % low, imbalance threshold 10 %"),
    "phase_lost": (_phase_lost, "PHASE: neither voltage nor current (a phase not wired)"),
    "ct_wrong_phase": (_ct_wrong_phase, "PHASE: the CT sits on another phase's conductor"),
    "ct_over_range": (_ct_over_range, "PHASE: 130 % of the CT rating"),
    "ct_no_current": (_ct_no_current, "PHASE: the CT reads no current"),
    "system_voltage": (_system_voltage, "VOLTS: register 134 set to this"),
    "frequency": (_frequency, "HZ: the supply frequency"),
    "pulse_weight_too_small": (_pulse_weight, "5000 A CTs with 10 Wh per pulse"),
}


def parse_fault(text: str) -> Fault:
    kind, _, arg = text.strip().partition(":")
    if kind not in FAULTS:
        raise FaultError(f"--fault {text!r}: unknown fault; one of {', '.join(FAULTS)}")
    return Fault(kind, arg.strip().lower())


def apply_fault(meter: SimulatedMeter, fault: Fault) -> None:
    """Wire ``meter`` with ``fault`` (FaultError if it does not fit the meter)."""
    FAULTS[fault.kind][0](meter, fault)
    meter.rewired()

