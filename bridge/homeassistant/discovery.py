"""Home Assistant MQTT discovery payloads (pure).

One device per meter. In ``device`` mode (Home Assistant >= 2024.12) one retained message at
``<prefix>/device/<node_id>/config`` carries every component in ``cmps``; in ``component`` mode
each entity has its own config topic. Home Assistant does not remove a component just because a
later device message leaves it out: it must be sent once as ``{"platform": ...}`` alone, which
:func:`device_payload` does for every key in ``removed``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import __version__
from bridge.homeassistant.entities import Component, sensor_config, value_of
from bridge.model.naming import Naming
from bridge.model.quantities import BY_KEY, Quantity
from bridge.model.topics import Topics

ORIGIN = {"name": "series4000-bridge", "sw": __version__}

@dataclass(frozen=True, slots=True)
class DeviceInfo:
    node_id: str
    name: str
    model: str
    manufacturer: str
    sw_version: str | None = None
    serial: str | None = None
    #: Where the meter is: ``bus panel, unit 3`` (the device page shows it under the model).
    hw_version: str | None = None
    suggested_area: str | None = None
    #: The node id of the device this one is reached through (the bridge).
    via_device: str | None = None
    #: The device page's "Visit" link (the bridge's status page).
    configuration_url: str | None = None

    def block(self) -> dict[str, Any]:
        out: dict[str, Any] = {"identifiers": [self.node_id], "name": self.name,
                               "manufacturer": self.manufacturer, "model": self.model}
        optional = (("sw_version", self.sw_version), ("serial_number", self.serial),
                    ("hw_version", self.hw_version), ("suggested_area", self.suggested_area),
                    ("via_device", self.via_device),
                    ("configuration_url", self.configuration_url))
        out.update((key, value) for key, value in optional if value)
        return out


def pulse_components(name: str, naming: Naming, topics: Topics,
                     linked: bool) -> dict[str, Component]:
    """Energy, power and pulse count of a GPIO pulse input (its own state topic and
    availability, so they stay available when the Modbus side is not)."""
    uid = naming.node_id(name)
    rows: list[tuple[str, Quantity, str, bool]] = [
        ("energy_kwh", BY_KEY["energy_kwh"], "Pulse energy", False),
        ("power_w", BY_KEY["power_w"], "Pulse power", False),
        ("pulses", BY_KEY["pulse_count"], "Pulses", True),
    ]
    if linked:
        rows.append(("meter_difference", Quantity(
            "meter_difference", "Pulses missed or extra", None, None, None, 0,
            diagnostic=True, icon="mdi:counter"), "Pulses vs meter", True))
    comps: dict[str, Component] = {}
    for key, q, label, diagnostic in rows:
        cfg = sensor_config(q, f"{uid}_{key}")
        cfg.update({"name": label, "state_topic": topics.state(name),
                    "value_template": f"{{{{ {value_of(key)} }}}}",
                    "availability": [{"topic": topics.bridge_availability},
                                     {"topic": topics.availability(name)}]})
        if diagnostic:
            cfg["entity_category"] = "diagnostic"
        else:
            cfg.pop("entity_category", None)
        comps[f"{name}_{key}"] = Component(f"{name}_{key}", "sensor", cfg)
    return comps


def alarm_components(name: str, naming: Naming, topics: Topics,
                     linked: bool) -> dict[str, Component]:
    """The meter's alarm contact as a problem sensor (and, when linked to a meter on the bus,
    whether the contact agrees with the meter's phase-loss bits)."""
    uid = naming.node_id(name)
    avail = [{"topic": topics.bridge_availability}, {"topic": topics.availability(name)}]
    comps = {f"{name}_problem": Component(f"{name}_problem", "binary_sensor", {
        "name": "Alarm contact", "unique_id": f"{uid}_problem", "device_class": "problem",
        "state_topic": topics.state(name), "availability": avail,
        "value_template": "{{ 'ON' if value_json.get('problem') else 'OFF' }}"})}
    if linked:
        comps[f"{name}_wiring"] = Component(f"{name}_wiring", "binary_sensor", {
            "name": "Alarm contact disagrees with meter", "unique_id": f"{uid}_wiring",
            "device_class": "problem", "entity_category": "diagnostic",
            "state_topic": topics.state(name), "availability": avail,
            "value_template": "{{ 'ON' if value_json.get('agrees_with_meter') == false "
                              "else 'OFF' }}"})
    return comps


def device_payload(device: DeviceInfo, components: Mapping[str, Component],
                   removed: Mapping[str, str], availability: Iterable[str],
                   state_topic: str) -> dict[str, Any]:
    """One device-discovery message; ``removed`` maps keys to remove to their platform."""
    cmps: dict[str, Any] = {}
    for key, comp in components.items():
        cmps[key] = {"platform": comp.platform, **comp.config}
    for key, platform in removed.items():
        if key not in components:
            cmps[key] = {"platform": platform}
    out: dict[str, Any] = {"device": device.block(), "origin": ORIGIN}
    out.update(_availability(availability))
    out.update({"state_topic": state_topic, "qos": 1, "components": cmps})
    return out


def _availability(topics: Iterable[str]) -> dict[str, Any]:
    """Availability options (none for the bridge's own device: it reports its state itself)."""
    avail = [{"topic": t} for t in topics]
    return {"availability": avail, "availability_mode": "all"} if avail else {}


def component_payloads(device: DeviceInfo, components: Mapping[str, Component],
                       removed: Mapping[str, str], availability: Iterable[str],
                       state_topic: str, topics: Topics) -> dict[str, str]:
    """Per-entity discovery (Home Assistant before 2024.12): topic -> payload ('' removes)."""
    avail = _availability(availability)
    out: dict[str, str] = {}
    for key, comp in components.items():
        cfg = {**comp.config, "device": device.block(), "origin": ORIGIN, **avail, "qos": 1}
        cfg.setdefault("state_topic", state_topic)
        if comp.platform == "button":
            cfg.pop("state_topic")
        out[topics.component_config(comp.platform, device.node_id, key)] = encode(cfg)
    for key, platform in removed.items():
        if key not in components:
            out[topics.component_config(platform, device.node_id, key)] = ""
    return out


def encode(payload: Mapping[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), sort_keys=False)


def removed_components(announced: Mapping[str, str],
                       current: Mapping[str, Component]) -> dict[str, str]:
    """Components announced before (key -> platform) that the current set no longer has."""
    return {k: p for k, p in announced.items() if k not in current}
