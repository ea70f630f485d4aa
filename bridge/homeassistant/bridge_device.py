"""The bridge as a Home Assistant device (pure): the device the meters hang from
(``via_device``), with its own figures as diagnostics.

Its entities read the bridge's state message (:attr:`Topics.bridge_state`, shaped by
:mod:`bridge.core.bridge_state`): when it started, the messages sent to the broker, and per
configured bus the meters online (with the number configured as an attribute), the requests, the
read errors and, on a serial line, its use in percent. Only the connection sensor reads the
bridge's availability itself; the others are unavailable while the bridge is offline.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bridge import __version__
from bridge.config import BusConfig, WebConfig
from bridge.homeassistant.discovery import DeviceInfo
from bridge.homeassistant.entities import Component
from bridge.model.naming import display_name
from bridge.model.topics import OFFLINE, ONLINE, Topics

BRIDGE_NAME = "Series 4000 bridge"
BRIDGE_MODEL = "series4000-bridge"


@dataclass(frozen=True, slots=True)
class Figure:
    """One sensor over the state message: ``path`` leads to its value."""

    key: str
    name: str
    path: tuple[str, ...]
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None
    icon: str | None = None
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()


def _get(path: tuple[str, ...]) -> str:
    """A Jinja expression for a value deep in the state JSON (missing = unknown)."""
    expr = "value_json"
    for step in path[:-1]:
        expr += f".get('{step}', {{}})"
    return expr + f".get('{path[-1]}')"


def figures(buses: Sequence[BusConfig]) -> tuple[Figure, ...]:
    """The bridge's sensors for the configured buses (line use only where the bus has a serial
    line: RTU on a port or through a gateway)."""
    out = [Figure("started", "Started", ("started",), device_class="timestamp"),
           Figure("mqtt_published", "MQTT messages", ("mqtt", "published"),
                  state_class="total_increasing", icon="mdi:email-fast-outline")]
    for bus in buses:
        at = ("buses", bus.name)
        shown = display_name(bus.name)
        out += [
            Figure(f"bus_{bus.name}_meters_online", f"{shown} meters online",
                   (*at, "meters_online"), state_class="measurement", icon="mdi:counter",
                   attributes=(("configured", (*at, "meters_configured")),)),
            Figure(f"bus_{bus.name}_requests", f"{shown} requests", (*at, "requests"),
                   state_class="total_increasing", icon="mdi:swap-horizontal"),
            Figure(f"bus_{bus.name}_read_errors", f"{shown} read errors",
                   (*at, "read_errors"), state_class="total_increasing",
                   icon="mdi:alert-circle-outline"),
        ]
        if bus.transport != "tcp":
            out.append(Figure(f"bus_{bus.name}_line_use", f"{shown} line use",
                              (*at, "line_use_pct"), unit="%", state_class="measurement",
                              precision=1, icon="mdi:gauge"))
    return tuple(out)


def _sensor(node_id: str, figure: Figure, topics: Topics) -> Component:
    cfg: dict[str, Any] = {
        "name": figure.name, "unique_id": f"{node_id}_{figure.key}",
        "entity_category": "diagnostic", "state_topic": topics.bridge_state,
        "value_template": f"{{{{ {_get(figure.path)} }}}}",
        "availability": [{"topic": topics.bridge_availability}]}
    optional = (("unit_of_measurement", figure.unit), ("device_class", figure.device_class),
                ("state_class", figure.state_class),
                ("suggested_display_precision", figure.precision), ("icon", figure.icon))
    cfg.update((key, value) for key, value in optional if value is not None)
    if figure.attributes:
        pairs = ", ".join(f"'{name}': {_get(path)}" for name, path in figure.attributes)
        cfg["json_attributes_topic"] = topics.bridge_state
        cfg["json_attributes_template"] = f"{{{{ {{{pairs}}} | tojson }}}}"
    return Component(figure.key, "sensor", cfg)


def bridge_components(node_id: str, buses: Sequence[BusConfig],
                      topics: Topics) -> dict[str, Component]:
    """Every entity of the bridge's device, keyed by component key."""
    comps = {"connected": Component("connected", "binary_sensor", {
        "name": "MQTT connection", "unique_id": f"{node_id}_connected",
        "device_class": "connectivity", "entity_category": "diagnostic",
        "state_topic": topics.bridge_availability,
        "payload_on": ONLINE, "payload_off": OFFLINE})}
    comps.update((f.key, _sensor(node_id, f, topics)) for f in figures(buses))
    return comps


def status_page_url(web: WebConfig | None) -> str | None:
    """The status page's address for the device page's link, when the page is on and its address
    is one a browser can use (not a wildcard such as 0.0.0.0)."""
    if web is None or not web.enabled:
        return None
    host = web.host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"http://{host}:{web.port}/"  # a host name
    if address.is_unspecified:
        return None
    shown = f"[{host}]" if address.version == 6 else host
    return f"http://{shown}:{web.port}/"


def bridge_device(node_id: str, manufacturer: str, web: WebConfig | None) -> DeviceInfo:
    return DeviceInfo(node_id, BRIDGE_NAME, BRIDGE_MODEL, manufacturer, sw_version=__version__,
                      configuration_url=status_page_url(web))
