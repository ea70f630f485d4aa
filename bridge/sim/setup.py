"""The simulated meter's set-up registers and the rules the meter applies to writes (pure).

Derived values follow the installation guide: the theoretical maximum power from the wiring, CT
size and system voltage (register 135), the slowest pulse closure time that keeps up with it
(register 145), and scale factors that fit each full scale (with 20 % over-range) into 16 bits
(registers 138-141; the meter's own choice is not documented, the simulator's is this).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000 import rules
from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE

#: What the simulated installation is really wired to (nominal L-N volts per system type).
SUPPLY_V_LN = {10: 230.0, 11: 120.0, 12: 120.0, 31: 277.0, 40: 230.0}


def nominal_system_voltage(system_type: int) -> int:
    """The system voltage (register 134) an installer would enter for the simulated supply."""
    v_ln = SUPPLY_V_LN[system_type]
    if system_type == 10:
        return round(v_ln)
    if system_type in (11, 12):
        return round(2 * v_ln)
    return round(math.sqrt(3) * v_ln)


def _scale_for(full_scale: float) -> int:
    """The smallest exponent in -4..4 that keeps ``full_scale`` within a 16-bit register."""
    for s in range(-4, 5):
        if full_scale / 10.0**s <= 32767:
            return s
    return 4


@dataclass
class Setup:
    """The writable set-up of the meter (factory defaults except the system type)."""

    system_type: int = 40
    ct_primary_a: int = 100
    ct_output: int = 1
    pt_ratio_x100: int = 100
    system_voltage_v: int = 600
    display_units: int = 1
    phase_loss_v_pct: int = 10
    phase_loss_imbalance_pct: int = 25
    pulse_wh: int = 1000
    demand_subintervals: int = 1
    demand_subinterval_s: int = 900

    def max_power_w(self) -> float:
        v, i = self.system_voltage_v, self.ct_primary_a
        factor = math.sqrt(3) if self.system_type in (31, 40) else 1.0
        return factor * v * i

    def closure_ms(self) -> int | None:
        """The slowest closure time that keeps up with the maximum power (register 145)."""
        for ms in s4k.PULSE_CLOSURE_MS:
            if s4k.pulse_max_power_w(self.pulse_wh, ms) >= self.max_power_w():
                return ms
        return None

    def scales(self) -> dict[int, int]:
        """Scale registers 138-141 chosen for the configured full scales (20 % over-range)."""
        w = _scale_for(self.max_power_w() / 1000.0 * 1.2)
        return {
            s4k.SCALE_I: _scale_for(self.ct_primary_a * 1.2),
            s4k.SCALE_V: _scale_for(self.system_voltage_v * 1.2),
            s4k.SCALE_W: w,
            s4k.SCALE_E: w,
        }


def apply_write(trial: Setup, reg: int, value: int) -> int | None:
    """Apply one register write to ``trial`` like the meter; a Modbus exception code if the
    meter refuses it (03 out of range, 02 not a set-up register)."""
    def in_range(lo: int, hi: int) -> bool:
        return lo <= value <= hi

    lo_v, hi_v = rules.SECONDARY_VOLTAGE_RANGE
    if reg == 130:
        if value not in s4k.SYSTEM_TYPES:
            return ILLEGAL_VALUE
        trial.system_type = value
    elif reg == 131:
        if not in_range(1, 32000):
            return ILLEGAL_VALUE
        trial.ct_primary_a = value
    elif reg == 132:
        if value not in (1, 3):
            return ILLEGAL_VALUE
        trial.ct_output = value
    elif reg == 133:
        # Taken in its own range whatever the voltage: the manual sets it before the voltage.
        if not in_range(1, 32000):
            return ILLEGAL_VALUE
        trial.pt_ratio_x100 = value
    elif reg == 134:
        secondary_v = rules.secondary_voltage_v(value, trial.pt_ratio_x100 / 100)
        if not in_range(82, 32000) or not lo_v <= secondary_v <= hi_v:
            return ILLEGAL_VALUE
        trial.system_voltage_v = value
    elif reg == 137:
        if value not in (0, 1):
            return ILLEGAL_VALUE
        trial.display_units = value
    elif reg in (142, 143):
        if not in_range(1, 99):
            return ILLEGAL_VALUE
        if reg == 142:
            trial.phase_loss_v_pct = value
        else:
            trial.phase_loss_imbalance_pct = value
    elif reg == 144:
        if value not in s4k.PULSE_WEIGHTS_WH:
            return ILLEGAL_VALUE
        trial.pulse_wh = value
    elif reg == 149:
        if not in_range(1, 6):
            return ILLEGAL_VALUE
        trial.demand_subintervals = value
    elif reg == 150:
        if not (value == 0 or in_range(10, 32767)):
            return ILLEGAL_VALUE
        trial.demand_subinterval_s = value
    else:
        return ILLEGAL_ADDRESS
    return None
