"""Rules from the meter's manual that the bridge and the simulator both follow (pure)."""

from __future__ import annotations

import math

from bridge.meters.series4000.points import COMMANDS_BY_KEY, SETTINGS_BY_KEY

#: System voltage divided by the PT ratio must stay in this range. The meter refuses a system
#: voltage outside it; the PT ratio is taken in its own range whatever the voltage, since the
#: manual's order for a PT install is "PT ratio first, then the system voltage".
SECONDARY_VOLTAGE_RANGE = (82.0, 660.0)


def secondary_voltage_v(system_voltage_v: float, pt_ratio: float) -> float:
    """The voltage the meter's inputs see: system voltage / PT ratio."""
    return system_voltage_v / pt_ratio


def system_voltage_range_v(pt_ratio: float) -> tuple[int, int]:
    """The system voltages (whole volts, within the setting's own range) the meter accepts
    with ``pt_ratio``; empty (lo > hi) when none fits."""
    lo_v, hi_v = SECONDARY_VOLTAGE_RANGE
    setting = SETTINGS_BY_KEY["system_voltage_v"]
    lo = max(math.ceil(round(lo_v * pt_ratio, 6)), int(setting.minimum))
    hi = min(math.floor(round(hi_v * pt_ratio, 6)), int(setting.maximum))
    return lo, hi


#: Accumulators a reset counted by register 147 (ours or the front panel's) may have cleared:
#: 30078 clears "all energy accumulators", and whether it clears the pulse counters as well is
#: not documented, so a counted reset lets all of them drop once.
CLEARED_BY_COUNTED_RESET = frozenset((*COMMANDS_BY_KEY["reset_energy"].resets, "pulse_count"))
#: The meters act on a command at the end of their one-second calculation cycle: after 30078
#: the bridge waits this long for register 147 to count it before saying it was not counted.
RESET_COUNT_WAIT_S = 3.0
