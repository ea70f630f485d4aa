"""The add-on's health: a heartbeat file the bridge writes and the image's HEALTHCHECK reads.

The Supervisor restarts an add-on whose container Docker reports ``unhealthy`` (when the user
turned the add-on's watchdog on); the add-on linter treats config.yaml's ``watchdog`` URL as
obsolete, and the bridge serves no port to probe anyway. So the running bridge writes the
time and whether its MQTT connection is up, every ``interval_s`` and whenever the connection
comes or goes, and ``python -m bridge.addon.health`` judges it:

* the file is older than ``max_age_s``: the event loop is stuck (or the bridge never started);
* MQTT has been down for more than ``max_disconnected_s``: a fresh start asks the Supervisor
  again for the broker and its account, which is what changes when the Mosquitto add-on was
  reinstalled or replaced. The bridge reconnects by itself for shorter outages.

The file lives in ``/tmp``, a RAM disk in the add-on (``tmpfs: true``), so the heartbeat
never wears the SD card.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bridge.files import write_atomic

#: In the add-on, /tmp is a RAM disk (``tmpfs: true`` in config.yaml).
DEFAULT_PATH = Path("/tmp/series4000-health.json")
INTERVAL_S = 15.0
MAX_AGE_S = 90.0
MAX_DISCONNECTED_S = 600.0


def write(path: Path, record: Mapping[str, Any]) -> None:
    """Replace the file atomically, so the checker never reads half a record."""
    write_atomic(path, json.dumps(record, sort_keys=True).encode("utf-8"), mode=0o644)


async def heartbeat(status: Callable[[], Mapping[str, Any]], path: Path, stop: asyncio.Event,
                    interval_s: float = INTERVAL_S, tick_s: float = 1.0,
                    clock: Callable[[], float] = time.time) -> None:
    """Look at ``status()`` every ``tick_s``; write a record at least every ``interval_s`` and
    at once when the MQTT connection comes or goes, until ``stop``."""
    down_since: float | None = None
    written_at: float | None = None
    written_connected: bool | None = None
    while not stop.is_set():
        now = clock()
        current = status()
        connected = bool(current.get("mqtt_connected"))
        if connected:
            down_since = None
        elif down_since is None:
            down_since = now
        if (written_at is None or connected != written_connected
                or now - written_at >= interval_s):
            write(path, {"time": now, "mqtt_connected": connected,
                         "mqtt_down_since": down_since, "meters": current.get("meters", {})})
            written_at, written_connected = now, connected
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(tick_s):
                await stop.wait()


def judge(record: Mapping[str, Any] | None, now: float, max_age_s: float = MAX_AGE_S,
          max_disconnected_s: float = MAX_DISCONNECTED_S) -> tuple[bool, str]:
    """(healthy, why) for a heartbeat record (``None``: no readable file)."""
    if record is None:
        return False, "no heartbeat: the bridge is not running"
    try:
        age = now - float(record["time"])
    except (KeyError, TypeError, ValueError):
        return False, "heartbeat unreadable"
    if age > max_age_s:
        return False, f"heartbeat is {age:.0f} s old: the bridge is stuck"
    down_since = record.get("mqtt_down_since")
    if not record.get("mqtt_connected") and isinstance(down_since, (int, float)):
        down = now - down_since
        if down > max_disconnected_s:
            return False, f"MQTT has been disconnected for {down:.0f} s"
        return True, f"MQTT disconnected for {down:.0f} s, reconnecting"
    meters: Mapping[str, Any] = record.get("meters") or {}
    online = sum(1 for up in meters.values() if up)
    return True, f"MQTT connected, {online}/{len(meters)} meter(s) online"


def read(path: Path) -> Mapping[str, Any] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m bridge.addon.health [FILE]``: exit 0 when healthy, 1 when not."""
    args = list(sys.argv[1:] if argv is None else argv)
    path = Path(args[0]) if args else DEFAULT_PATH
    healthy, why = judge(read(path), time.time())
    print(why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
