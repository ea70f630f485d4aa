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
from dataclasses import dataclass, field
from typing import Any

from bridge import __version__
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.validity import alarm_bits_for
from bridge.model.quantities import BY_KEY, QUANTITIES, Quantity
from bridge.model.topics import Topics

ORIGIN = {"name": "series4000-bridge", "sw": __version__}

#: Bridge-kept diagnostics present for every meter, whatever the wiring.
BRIDGE_DIAGNOSTICS = ("max_power_w", "pulse_closure_ms", "energy_reset_count", "power_up_count",
                      "read_errors", "response_time_ms")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    node_id: str
    name: str
    model: str = s4k.MODEL
    manufacturer: str = s4k.MANUFACTURER
    sw_version: str | None = None
    serial: str | None = None

    def block(self) -> dict[str, Any]:
        out: dict[str, Any] = {"identifiers": [self.node_id], "name": self.name,
                               "manufacturer": self.manufacturer, "model": self.model}
        if self.sw_version:
            out["sw_version"] = self.sw_version
        if self.serial:
            out["serial_number"] = self.serial
        return out


@dataclass(frozen=True, slots=True)
class Component:
    key: str
    platform: str
    config: Mapping[str, Any] = field(default_factory=dict)


def _get(key: str) -> str:
    return f"value_json.get('{key}')"


def sensor_config(q: Quantity, unique_id: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": q.name, "unique_id": unique_id,
                           "value_template": f"{{{{ {_get(q.key)} }}}}"}
    if q.device_class:
        cfg["device_class"] = q.device_class
    if q.unit:
        cfg["unit_of_measurement"] = q.unit
    if q.state_class:
        cfg["state_class"] = q.state_class.value
    if q.unit or q.state_class:
        cfg["suggested_display_precision"] = q.precision
    if q.diagnostic:
        cfg["entity_category"] = "diagnostic"
    if q.icon:
        cfg["icon"] = q.icon
    return cfg


def _select_template(setting: s4k.Setting) -> str:
    if setting.key == "system_type":
        mapping = ", ".join(f"{code}: '{label}'" for label, code in setting.options)
        return f"{{{{ {{{mapping}}}.get({_get(setting.key)}) }}}}"
    return f"{{{{ {_get(setting.key)} }}}}"


def setting_components(uid: str, set_topic: Any, allow_writes: bool) -> list[Component]:
    """Settings as controls when writes are allowed, else as read-only diagnostic sensors."""
    out: list[Component] = []
    for s in s4k.SETTINGS:
        base: dict[str, Any] = {"name": s.name, "unique_id": f"{uid}_{s.key}"}
        if s.icon:
            base["icon"] = s.icon
        if not allow_writes:
            cfg = {**base, "entity_category": "diagnostic",
                   "value_template": _select_template(s) if s.kind == "select"
                   else f"{{{{ {_get(s.key)} }}}}"}
            if s.unit:
                cfg["unit_of_measurement"] = s.unit
            out.append(Component(s.key, "sensor", cfg))
            continue
        # A control has its own component key, so that switching allow_writes removes the
        # read-only sensor cleanly instead of changing a component's platform in place.
        cfg = {**base, "unique_id": f"{uid}_set_{s.key}", "entity_category": "config",
               "command_topic": set_topic(s.key)}
        if s.kind == "select":
            cfg["options"] = [label for label, _ in s.options]
            cfg["value_template"] = _select_template(s)
            out.append(Component(f"set_{s.key}", "select", cfg))
        else:
            cfg.update({"min": s.minimum, "max": s.maximum, "step": s.step, "mode": "box",
                        "value_template": f"{{{{ {_get(s.key)} }}}}"})
            if s.unit:
                cfg["unit_of_measurement"] = s.unit
            out.append(Component(f"set_{s.key}", "number", cfg))
    if allow_writes:
        for c in s4k.COMMANDS:
            cfg = {"name": c.name, "unique_id": f"{uid}_{c.key}", "entity_category": "config",
                   "command_topic": set_topic(c.key), "payload_press": "PRESS"}
            if c.icon:
                cfg["icon"] = c.icon
            out.append(Component(c.key, "button", cfg))
    return out


def meter_components(name: str, unique_prefix: str, valid_keys: Iterable[str],
                     system_type: int, allow_writes: bool,
                     topics: Topics) -> dict[str, Component]:
    """Every entity of one meter, keyed by state key (stable order: the vocabulary's)."""
    uid = f"{unique_prefix}_{name}"
    valid = set(valid_keys) | set(BRIDGE_DIAGNOSTICS)
    comps: dict[str, Component] = {}
    for q in QUANTITIES:
        if q.key in valid:
            comps[q.key] = Component(q.key, "sensor", sensor_config(q, f"{uid}_{q.key}"))
    for bit in alarm_bits_for(system_type):
        comps[bit.key] = Component(bit.key, "binary_sensor", {
            "name": bit.name, "unique_id": f"{uid}_{bit.key}", "device_class": "problem",
            "entity_category": "diagnostic",
            "value_template": f"{{{{ 'ON' if '{bit.key}' in value_json.get('alarms', []) "
                              "else 'OFF' }}",
        })
    for c in setting_components(uid, lambda key: topics.set(name, key), allow_writes):
        comps[c.key] = c
    return comps


def pulse_components(name: str, unique_prefix: str, topics: Topics,
                     linked: bool) -> dict[str, Component]:
    """Energy, power and pulse count of a GPIO pulse input (its own state topic and
    availability, so they stay available when the Modbus side is not)."""
    uid = f"{unique_prefix}_{name}"
    rows: list[tuple[str, Quantity, str, bool]] = [
        ("energy_kwh", BY_KEY["energy_kwh"], "Pulse energy", False),
        ("power_w", BY_KEY["power_w"], "Pulse power", False),
        ("pulses", BY_KEY["pulse_count"], "Pulses", True),
    ]
    if linked:
        rows.append(("meter_difference", Quantity(
            "meter_difference", "Pulses missed or extra", "pulses", None, None, 0,
            diagnostic=True, icon="mdi:counter"), "Pulses vs meter", True))
    comps: dict[str, Component] = {}
    for key, q, label, diagnostic in rows:
        cfg = sensor_config(q, f"{uid}_{key}")
        cfg.update({"name": label, "state_topic": topics.state(name),
                    "value_template": f"{{{{ {_get(key)} }}}}",
                    "availability": [{"topic": topics.bridge_availability},
                                     {"topic": topics.availability(name)}]})
        if diagnostic:
            cfg["entity_category"] = "diagnostic"
        else:
            cfg.pop("entity_category", None)
        comps[f"{name}_{key}"] = Component(f"{name}_{key}", "sensor", cfg)
    return comps


def alarm_components(name: str, unique_prefix: str, topics: Topics,
                     linked: bool) -> dict[str, Component]:
    """The meter's alarm contact as a problem sensor (and, when linked to a meter on the bus,
    whether the contact agrees with the meter's phase-loss bits)."""
    uid = f"{unique_prefix}_{name}"
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
    return {
        "device": device.block(),
        "origin": ORIGIN,
        "availability": [{"topic": t} for t in availability],
        "availability_mode": "all",
        "state_topic": state_topic,
        "qos": 1,
        "components": cmps,
    }


def component_payloads(device: DeviceInfo, components: Mapping[str, Component],
                       removed: Mapping[str, str], availability: Iterable[str],
                       state_topic: str, topics: Topics) -> dict[str, str]:
    """Per-entity discovery (Home Assistant before 2024.12): topic -> payload ('' removes)."""
    avail = [{"topic": t} for t in availability]
    out: dict[str, str] = {}
    for key, comp in components.items():
        cfg = {**comp.config, "device": device.block(), "origin": ORIGIN,
               "availability": avail, "availability_mode": "all", "qos": 1}
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
