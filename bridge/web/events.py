"""Server-sent events: what changed between two status snapshots, and the wire format."""

from __future__ import annotations

import json
from typing import Any

#: The lists of the status whose items are sent one by one, keyed by ``name``, and the event
#: each item is sent as.
_ITEM_EVENTS = (("buses", "bus"), ("meters", "meter"), ("inputs", "input"))


def changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[tuple[str, Any]]:
    """The events that bring a page holding ``old`` to ``new``: the whole ``status`` first
    (or when buses, meters or inputs came or went), then only the objects that changed."""
    if old is None:
        return [("status", new)]
    out: list[tuple[str, Any]] = []
    if old["bridge"] != new["bridge"]:
        out.append(("bridge", new["bridge"]))
    for key, event in _ITEM_EVENTS:
        before = {item["name"]: item for item in old[key]}
        if [item["name"] for item in new[key]] != list(before):
            return [("status", new)]
        out += [(event, item) for item in new[key] if before[item["name"]] != item]
    if old["commands"] != new["commands"]:
        out.append(("commands", new["commands"]))
    if old.get("modbus_server") != new.get("modbus_server"):
        out.append(("modbus_server", new.get("modbus_server")))
    return out


def frame(event: str, data: Any) -> bytes:
    """One server-sent event (JSON has no raw newlines, so one ``data:`` line is enough)."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


#: A comment line: keeps proxies from closing an idle stream.
KEEPALIVE = b": keep-alive\n\n"
