"""The bridge's own state message (``<base>/bridge/state``) and when to send it (pure).

Its figures are the status snapshot's (:mod:`bridge.core.status`: the same numbers as the status
page, its API and the metrics), summed per bus, plus what only the MQTT link counts. The message
is retained; Home Assistant shows it as the bridge device's diagnostics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

#: A serial line's use is reported once the bridge has run this long: before, the status board's
#: window is the start's burst of identity and set-up reads over a fraction of a second (it reads
#: 100 %), which says nothing about the line's use.
LINE_USE_AFTER_S = 10

#: Without a change of a bus's online count, the state goes out at most this often: the figures
#: move every poll, and a 63-meter bus must not add a message per poll.
STATE_INTERVAL_S = 30.0


@dataclass(frozen=True, slots=True)
class Sent:
    """What the last state message said about the meters online, and when it went out."""

    at: float
    online: tuple[tuple[str, int], ...]


def online_counts(state: Mapping[str, Any]) -> tuple[tuple[str, int], ...]:
    """(bus, meters online) of a bridge state, in bus order."""
    return tuple((name, bus["meters_online"]) for name, bus in state["buses"].items())


def due(last: Sent | None, online: tuple[tuple[str, int], ...], now: float,
        interval_s: float = STATE_INTERVAL_S) -> bool:
    """Whether to send the state now: the first time, when a bus's online count changed, and
    otherwise once ``interval_s`` has passed since the last one."""
    if last is None or online != last.online:
        return True
    return now - last.at >= interval_s


def line_use_pct(line_busy: float | None, uptime_s: float) -> float | None:
    """The snapshot's busy share of a serial line (0..1) in percent; None where it is not
    measured (Modbus TCP carries no serial line) or not yet (:data:`LINE_USE_AFTER_S`)."""
    if line_busy is None or uptime_s < LINE_USE_AFTER_S:
        return None
    return round(line_busy * 100.0, 1)


def bridge_state(snapshot: Mapping[str, Any], started: str | None, mqtt_published: int) -> JSON:
    """The state message from a status snapshot (:func:`bridge.core.status.snapshot`).

    Per bus: meters online of configured, completed requests, the read errors of its meters (as
    each meter's own ``read_errors``) and the line's use in percent (None on Modbus TCP, and in
    the first seconds).
    ``started`` is the bridge's start as UTC ISO 8601; ``mqtt_published`` the messages the
    MQTT link has sent to the broker.
    """
    bridge = snapshot["bridge"]
    buses: JSON = {}
    for bus in snapshot["buses"]:
        meters = [m for m in snapshot["meters"] if m["bus"] == bus["name"]]
        buses[bus["name"]] = {
            "meters_online": sum(1 for m in meters if m["online"]),
            "meters_configured": len(meters),
            "requests": bus["transactions"],
            "read_errors": sum(m["read_errors"] for m in meters),
            "line_use_pct": line_use_pct(bus["line_busy"], bridge["uptime_s"]),
        }
    return {"version": bridge["version"], "started": started, "uptime_s": bridge["uptime_s"],
            "mqtt": {"published": mqtt_published}, "buses": buses}
