"""A meter's availability: published at most every ``min_interval_s``, logged once per change,
and a flapping meter reported once rather than at every change.

The decisions are :class:`bridge.core.publishing.AvailabilityGate`'s (pure); this module applies
them to a meter and says them on MQTT and in the log.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bridge.core.runtime import MeterRuntime

log = logging.getLogger(__name__)

#: Availability changes of one meter are published at most this often.
AVAILABILITY_MIN_INTERVAL_S = 10.0
#: A flapping meter is reported in the log at most this often.
FLAP_WARNING_EVERY_S = 600.0


class Availability:
    """Applies availability changes of the meters of one bus."""

    def __init__(self, publish: Callable[[MeterRuntime, bool], None]) -> None:
        self._publish = publish

    @staticmethod
    def flush_due(rt: MeterRuntime) -> float | None:
        """When a change held back by the gate may be published, if one is held back."""
        if rt.gate.pending is None:
            return None
        return rt.gate.published_at + AVAILABILITY_MIN_INTERVAL_S

    def flush(self, rt: MeterRuntime, now: float) -> None:
        rt.gate, value = rt.gate.flush(now, AVAILABILITY_MIN_INTERVAL_S)
        if value is not None:
            self._say(rt, value, now)

    def set(self, rt: MeterRuntime, online: bool, now: float) -> None:
        if online != rt.online or rt.online_changed_at is None:
            rt.online_changed_at = now
        rt.online = online
        rt.gate, value = rt.gate.update(online, now, AVAILABILITY_MIN_INTERVAL_S)
        if value is not None:
            self._say(rt, value, now)
        elif rt.gate.pending is not None and now - rt.flap_warned_at >= FLAP_WARNING_EVERY_S:
            # A change held back by the gate: the meter flaps. Say so once, not per change.
            rt.flap_warned_at = now
            log.warning("%s (unit %d) keeps going online and offline (last error: %s); its "
                        "availability is published at most every %.0f s", rt.name,
                        rt.cfg.unit, rt.last_error, AVAILABILITY_MIN_INTERVAL_S)

    def _say(self, rt: MeterRuntime, online: bool, now: float) -> None:
        if now - rt.flap_warned_at < FLAP_WARNING_EVERY_S:
            level = logging.DEBUG  # already reported as flapping
        else:
            level = logging.INFO if online else logging.WARNING
        if online:
            log.log(level, "%s (unit %d) is online", rt.name, rt.cfg.unit)
        elif rt.polls == 0:
            log.log(level, "%s (unit %d) does not answer: %s; retrying every %.0f s or so",
                    rt.name, rt.cfg.unit, rt.last_error, rt.backoff)
        else:
            log.log(level, "%s (unit %d) is offline: %s; retrying every %.0f s or so",
                    rt.name, rt.cfg.unit, rt.last_error, rt.backoff)
        self._publish(rt, online)
