"""When to publish (pure): change detection with deadbands, heartbeats, availability gating.

A value that moves no more than its deadband is published at its last published value
(:func:`hold`), so Home Assistant's recorder stores a row only when a value really moved; the
heartbeat publishes the values as read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bridge.model.quantities import BY_KEY
from bridge.model.values import StateValue

#: Built-in deadbands by Home Assistant device class (or unit, for kvarh and kVAh, which have
#: none in 2025.4): about ten times the meter's resolution at a household load, so noise does not
#: reach the recorder while every change a person would notice does. ``publish.deadband``
#: overrides them (by key, unit or device class; 0 turns one off).
DEFAULT_DEADBANDS: dict[str, float] = {
    "power": 10.0, "reactive_power": 10.0, "apparent_power": 10.0,  # W, var, VA
    "current": 0.05, "voltage": 0.5, "power_factor": 0.01, "frequency": 0.05,
    "energy": 0.01, "kvarh": 0.01, "kVAh": 0.01,  # 10 Wh: finer than any hourly statistic
    "duration": 25.0,  # response time, ms
}


def deadband_for(key: str, deadbands: Mapping[str, float]) -> float:
    """A key's deadband: its own entry, else its unit's (``W``, ``V``...), else its device
    class's (``power``), else 0."""
    if key in deadbands:
        return deadbands[key]
    q = BY_KEY.get(key)
    if q is None:
        return 0.0
    for group in (q.unit, q.device_class):
        if group is not None and group in deadbands:
            return deadbands[group]
    return 0.0


def per_key(deadbands: Mapping[str, float]) -> dict[str, float]:
    """``deadbands`` with every known key's own entry resolved (:func:`deadband_for` then finds
    it at the first look: the publish path checks every key of every state)."""
    return {**deadbands, **{key: deadband_for(key, deadbands) for key in BY_KEY}}


def hold(last: Mapping[str, StateValue] | None, new: Mapping[str, StateValue],
         deadbands: Mapping[str, float]) -> dict[str, StateValue]:
    """``new`` with every number that moved no more than its deadband at its last published
    value."""
    if last is None:
        return dict(new)
    out: dict[str, StateValue] = {}
    for key, value in new.items():
        before = last.get(key)
        if isinstance(value, (int, float)) and isinstance(before, (int, float)) \
                and abs(value - before) <= deadband_for(key, deadbands):
            out[key] = before
        else:
            out[key] = value
    return out


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
