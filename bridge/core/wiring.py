"""The commissioning check in the running bridge: the profile's wiring rules over every full
read.

A finding is held for a few reads before it is reported and before it is cleared
(``meters.findings.hold_step``); the log says each new finding once, with its fix, and says
when it is gone.
"""

from __future__ import annotations

import logging

from bridge.core.runtime import MeterRuntime
from bridge.meters.findings import hold_step

log = logging.getLogger(__name__)


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
