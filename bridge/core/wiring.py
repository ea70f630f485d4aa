"""The commissioning check in the running bridge: the profile's wiring rules over the full reads,
at most one a second per meter (:func:`check_due`).

A finding is held for a few reads before it is reported and before it is cleared
(``meters.findings.hold_step``); the log says each new finding once, with its fix, and says
when it is gone.
"""

from __future__ import annotations

import logging

from bridge.core.runtime import MeterRuntime
from bridge.meters.findings import hold_step

log = logging.getLogger(__name__)

#: The least time between two checks of a meter. A wiring fault is a matter of minutes, not of
#: reads: under continuous polling (``poll_interval: 0``, several full reads a second) checking
#: every read would cost as much CPU as decoding it; at a poll interval of a second or more
#: every full read is still checked.
CHECK_INTERVAL_S = 1.0


def check_due(last_checked: float | None, now: float) -> bool:
    """Whether a full read at ``now`` gets the wiring check (None: never checked)."""
    return last_checked is None or now - last_checked >= CHECK_INTERVAL_S


def observe_wiring(rt: MeterRuntime) -> None:
    """Run the wiring rules over the meter's values after a full read."""
    if rt.setup is None:
        return
    rt.wiring, changes = hold_step(rt.wiring, rt.profile.check_wiring(rt.setup, rt.values))
    for f in changes.raised:
        where = f" ({f.phase})" if f.phase else ""
        log.warning("%s: wiring %s %s%s: %s Fix: %s", rt.name, f.severity.value, f.code, where,
                    f.message, f.fix)
    for f in changes.cleared:
        log.info("%s: wiring finding %s is gone", rt.name, f.label)
