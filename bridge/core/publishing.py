"""When to publish (pure): change detection with deadbands, heartbeats, availability gating."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.model.quantities import BY_KEY


def deadband_for(key: str, deadbands: Mapping[str, float]) -> float:
    """A key's deadband: its own entry, else its unit's (``W``, ``V``...), else 0."""
    if key in deadbands:
        return deadbands[key]
    q = BY_KEY.get(key)
    if q is not None and q.unit is not None and q.unit in deadbands:
        return deadbands[q.unit]
    return 0.0


def changed(old: Mapping[str, object], new: Mapping[str, object],
            deadbands: Mapping[str, float]) -> bool:
    """Whether ``new`` differs from ``old`` by more than the deadbands.

    Keys that appear or disappear always count; accumulators count on any change (their
    deadband still applies if one is configured for them explicitly).
    """
    if old.keys() != new.keys():
        return True
    for key, value in new.items():
        before = old[key]
        if isinstance(value, (int, float)) and isinstance(before, (int, float)) \
                and not isinstance(value, bool):
            if abs(value - before) > deadband_for(key, deadbands):
                return True
        elif value != before:
            return True
    return False


def should_publish(last: Mapping[str, object] | None, last_time: float,
                   new: Mapping[str, object], now: float, heartbeat_s: float,
                   deadbands: Mapping[str, float]) -> bool:
    if last is None or now - last_time >= heartbeat_s:
        return True
    return changed(last, new, deadbands)


@dataclass(frozen=True, slots=True)
class AvailabilityGate:
    """Rate-limits availability changes so a flapping meter cannot flood MQTT."""

    published: bool | None = None
    published_at: float = float("-inf")
    pending: bool | None = None

    def update(self, online: bool, now: float,
               min_interval: float) -> tuple[AvailabilityGate, bool | None]:
        """Returns the new gate and the value to publish now (None: nothing)."""
        if online == self.published:
            return AvailabilityGate(self.published, self.published_at, None), None
        if now - self.published_at >= min_interval:
            return AvailabilityGate(online, now, None), online
        return AvailabilityGate(self.published, self.published_at, online), None

    def flush(self, now: float, min_interval: float) -> tuple[AvailabilityGate, bool | None]:
        """Publish a held-back change once the interval has passed."""
        if self.pending is None or now - self.published_at < min_interval:
            return self, None
        return AvailabilityGate(self.pending, now, None), self.pending
