"""A meter's Home Assistant entities as descriptions (pure).

Each :class:`EntityDescription` says by itself whether it exists for a meter
(:class:`MeterContext`: the wiring, the valid quantities, whether writes are allowed) and how its
discovery config looks. The descriptions are built once per meter profile from the vocabulary of
state keys, the profile's alarm bits, settings and commands; nothing else decides which
entities a meter has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.meters.profile import AlarmBit, Command, MeterProfile, Setting
from bridge.model.quantities import QUANTITIES, Quantity

#: Values the bridge reads from the set-up block or keeps itself: present for every meter,
#: whatever the wiring.
BRIDGE_DIAGNOSTICS = frozenset({"max_power_w", "pulse_closure_ms", "energy_reset_count",
                                "power_up_count", "read_errors", "response_time_ms"})


@dataclass(frozen=True, slots=True)
class MeterContext:
    """What decides which entities one meter has."""

    system_type: int
    valid: frozenset[str]
    allow_writes: bool


@dataclass(frozen=True, slots=True)
class MeterTopics:
    """The topics a meter's entities point at."""

    state: str
    #: The command topic of a setting or command key.
    set: Callable[[str], str]


#: (unique id, the meter's topics) -> the component's discovery config.
Builder = Callable[[str, MeterTopics], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class EntityDescription:
    key: str
    platform: str
    exists: Callable[[MeterContext], bool]
    build: Builder


def value_of(key: str) -> str:
    """The Jinja expression that reads ``key`` from the state JSON (missing = unavailable)."""
    return f"value_json.get('{key}')"


def sensor_config(q: Quantity, unique_id: str) -> dict[str, Any]:
    cfg: dict[str, Any] = {"name": q.name, "unique_id": unique_id,
                           "value_template": f"{{{{ {value_of(q.key)} }}}}"}
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


def _quantity(q: Quantity) -> EntityDescription:
    if q.key in BRIDGE_DIAGNOSTICS:
        def exists(ctx: MeterContext) -> bool:
            return True
    else:
        def exists(ctx: MeterContext) -> bool:
            return q.key in ctx.valid
    return EntityDescription(q.key, "sensor", exists,
                             lambda uid, _topics: sensor_config(q, uid))


def _alarm(bit: AlarmBit, applies: Callable[[int], frozenset[str]]) -> EntityDescription:
    def build(uid: str, _topics: MeterTopics) -> dict[str, Any]:
        return {"name": bit.name, "unique_id": uid, "device_class": "problem",
                "entity_category": "diagnostic",
                "value_template": f"{{{{ 'ON' if '{bit.key}' in value_json.get('alarms', []) "
                                  "else 'OFF' }}"}
    return EntityDescription(bit.key, "binary_sensor",
                             lambda ctx: bit.key in applies(ctx.system_type), build)


def _select_template(setting: Setting) -> str:
    """The state holds the register number for a numeric select; when its labels say more than
    the number (a system type), the template maps the number to the label."""
    if setting.numeric_state and any(label != str(code) for label, code in setting.options):
        mapping = ", ".join(f"{code}: '{label}'" for label, code in setting.options)
        return f"{{{{ {{{mapping}}}.get({value_of(setting.key)}) }}}}"
    return f"{{{{ {value_of(setting.key)} }}}}"


def _setting_sensor(s: Setting) -> EntityDescription:
    def build(uid: str, _topics: MeterTopics) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": s.name, "unique_id": uid}
        if s.icon:
            cfg["icon"] = s.icon
        cfg["entity_category"] = "diagnostic"
        cfg["value_template"] = _select_template(s) if s.kind == "select" \
            else f"{{{{ {value_of(s.key)} }}}}"
        if s.unit:
            cfg["unit_of_measurement"] = s.unit
        return cfg
    return EntityDescription(s.key, "sensor", lambda ctx: not ctx.allow_writes, build)


def _setting_control(s: Setting) -> EntityDescription:
    # A control has its own component key, so that switching allow_writes removes the
    # read-only sensor cleanly instead of changing a component's platform in place.
    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": s.name, "unique_id": uid}
        if s.icon:
            cfg["icon"] = s.icon
        cfg.update({"entity_category": "config", "command_topic": topics.set(s.key)})
        if s.kind == "select":
            cfg["options"] = [label for label, _ in s.options]
            cfg["value_template"] = _select_template(s)
        else:
            cfg.update({"min": s.minimum, "max": s.maximum, "step": s.step, "mode": "box",
                        "value_template": f"{{{{ {value_of(s.key)} }}}}"})
            if s.unit:
                cfg["unit_of_measurement"] = s.unit
        return cfg
    platform = "select" if s.kind == "select" else "number"
    return EntityDescription(f"set_{s.key}", platform, lambda ctx: ctx.allow_writes, build)


def _button(c: Command) -> EntityDescription:
    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": c.name, "unique_id": uid, "entity_category": "config",
                               "command_topic": topics.set(c.key), "payload_press": "PRESS"}
        if c.icon:
            cfg["icon"] = c.icon
        return cfg
    return EntityDescription(c.key, "button", lambda ctx: ctx.allow_writes, build)


def _wiring_problem(info_codes: tuple[str, ...]) -> EntityDescription:
    """On while the wiring check has an error or a warning (codes in ``wiring``, the state
    contract; ``info_codes`` only inform); the findings with their fixes are attributes."""
    info = ", ".join(f"'{code}'" for code in info_codes)

    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        return {"name": "Wiring problem", "unique_id": uid, "device_class": "problem",
                "entity_category": "diagnostic",
                "value_template": "{{ 'ON' if value_json.get('wiring', []) "
                                  f"| reject('in', [{info}]) | list else 'OFF' }}}}",
                "json_attributes_topic": topics.state,
                "json_attributes_template": "{{ {'findings': "
                                            "value_json.get('wiring_findings', [])} | tojson }}"}
    return EntityDescription("wiring_problem", "binary_sensor", lambda ctx: True, build)


def meter_entities(profile: MeterProfile) -> tuple[EntityDescription, ...]:
    """Every entity a meter of ``profile`` can have, in the order Home Assistant lists them."""
    applies_cache: dict[int, frozenset[str]] = {}

    def applies(system_type: int) -> frozenset[str]:
        if system_type not in applies_cache:
            applies_cache[system_type] = frozenset(
                b.key for b in profile.alarm_bits(system_type))
        return applies_cache[system_type]

    bits = {b.key: b for st in profile.system_types for b in profile.alarm_bits(st)}
    ordered_bits = sorted(bits.values(), key=lambda b: b.bit)
    return (
        *(_quantity(q) for q in QUANTITIES),
        *(_alarm(bit, applies) for bit in ordered_bits),
        _wiring_problem(profile.wiring_info_codes),
        *(d for s in profile.settings for d in (_setting_sensor(s), _setting_control(s))),
        *(_button(c) for c in profile.commands),
    )


@dataclass(frozen=True, slots=True)
class Component:
    key: str
    platform: str
    config: Mapping[str, Any]


def components(descriptions: tuple[EntityDescription, ...], ctx: MeterContext,
               unique_id: Callable[[str], str], topics: MeterTopics) -> dict[str, Component]:
    """The entities that exist for ``ctx``, keyed by component key, in description order."""
    return {d.key: Component(d.key, d.platform, d.build(unique_id(d.key), topics))
            for d in descriptions if d.exists(ctx)}
