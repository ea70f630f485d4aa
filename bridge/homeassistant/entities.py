"""A meter's Home Assistant entities as descriptions (pure).

Each :class:`EntityDescription` says by itself whether it exists for a meter
(:class:`MeterContext`: the wiring, the valid quantities, whether writes and resets are allowed,
whether a pulse input counts the meter's pulse output), whether Home Assistant enables it by
default, and how its discovery config looks. Values that only repeat another under the wiring
get no entity; specialist ones (:class:`~bridge.model.quantities.Visibility`) are created
disabled, one click away. The descriptions are built once per meter profile from the vocabulary of
state keys, the profile's alarm bits, settings and commands; nothing else decides which
entities a meter has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge.meters.profile import AlarmBit, Command, MeterProfile, Setting
from bridge.model.quantities import QUANTITIES, Quantity, Visibility

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
    allow_resets: bool = False
    #: A GPIO pulse input counts this meter's pulse output.
    pulse_linked: bool = False

    def shown(self, visibility: Visibility) -> bool:
        """Whether an entity of ``visibility`` is enabled by default."""
        if visibility is Visibility.PULSE_OUTPUT:
            return self.pulse_linked
        return visibility is Visibility.PRIMARY


@dataclass(frozen=True, slots=True)
class MeterTopics:
    """The topics a meter's entities point at."""

    state: str
    #: Where the result of every command goes (``<base>/<meter>/result``).
    result: str
    #: The command topic of a setting or command key.
    set: Callable[[str], str]


#: (unique id, the meter's topics) -> the component's discovery config.
Builder = Callable[[str, MeterTopics], dict[str, Any]]


def _always(ctx: MeterContext) -> bool:
    return True


@dataclass(frozen=True, slots=True)
class EntityDescription:
    key: str
    platform: str
    exists: Callable[[MeterContext], bool]
    build: Builder
    #: Enabled by default in Home Assistant (otherwise created disabled).
    enabled: Callable[[MeterContext], bool] = _always


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


def _quantity(q: Quantity, repeated: Callable[[int], frozenset[str]]) -> EntityDescription:
    if q.key in BRIDGE_DIAGNOSTICS:
        def exists(ctx: MeterContext) -> bool:
            return True
    else:
        def exists(ctx: MeterContext) -> bool:
            return q.key in ctx.valid and q.key not in repeated(ctx.system_type)
    return EntityDescription(q.key, "sensor", exists, lambda uid, _t: sensor_config(q, uid),
                             lambda ctx: ctx.shown(q.visibility))


def _wiring_faults(info_codes: tuple[str, ...]) -> str:
    """The Jinja list of the wiring check's errors and warnings (``info_codes`` only inform)."""
    info = ", ".join(f"'{code}'" for code in info_codes)
    return f"(value_json.get('wiring', []) | reject('in', [{info}]) | list)"


def _problem(info_codes: tuple[str, ...]) -> EntityDescription:
    """One primary entity that says "this meter has a problem": an alarm (register 146) or a
    wiring fault; the active ones are its attributes."""
    faults = f"value_json.get('alarms', []) or {_wiring_faults(info_codes)}"

    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        return {"name": "Problem", "unique_id": uid, "device_class": "problem",
                "value_template": f"{{{{ 'ON' if {faults} else 'OFF' }}}}",
                "json_attributes_topic": topics.state,
                "json_attributes_template":
                    "{{ {'alarms': value_json.get('alarms', []), "
                    "'wiring': value_json.get('wiring', [])} | tojson }}"}
    return EntityDescription("problem", "binary_sensor", _always, build)


#: The state of Last command: one word, so that the device page keeps room for the entity's
#: name (a sentence there squeezes the name to its first letter).
LAST_COMMAND_TEMPLATE = "{{ 'ok' if value_json.ok else 'refused' }}"
#: What the command was, the meter's value after it and, when there is one, why it was refused
#: and what to do next, as attributes (the more-info dialog lists them; each at most 255
#: characters, as for a state).
LAST_COMMAND_ATTRIBUTES = (
    "{% set a = {'command': (value_json.setting ~ ' ' ~ value_json.requested)[:255], "
    "'meter_value': value_json.value} %}"
    "{% if value_json.error %}{% set a = dict(a, reason=value_json.error[:255]) %}{% endif %}"
    "{% if value_json.get('note') %}{% set a = dict(a, note=value_json.note[:255]) %}"
    "{% endif %}{{ a | tojson }}")


def _last_command() -> EntityDescription:
    """What became of the last command (a refused write says why, where users look)."""
    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        return {"name": "Last command", "unique_id": uid, "entity_category": "diagnostic",
                "icon": "mdi:console-line", "state_topic": topics.result,
                "value_template": LAST_COMMAND_TEMPLATE,
                "json_attributes_topic": topics.result,
                "json_attributes_template": LAST_COMMAND_ATTRIBUTES}
    return EntityDescription("last_command", "sensor", _always, build)


def _alarm(bit: AlarmBit, applies: Callable[[int], frozenset[str]]) -> EntityDescription:
    def build(uid: str, _t: MeterTopics) -> dict[str, Any]:
        cfg: dict[str, Any] = {
            "name": bit.name, "unique_id": uid, "device_class": "problem",
            "value_template": f"{{{{ 'ON' if '{bit.key}' in value_json.get('alarms', []) "
                              "else 'OFF' }}"}
        if bit.visibility is not Visibility.PRIMARY:
            cfg["entity_category"] = "diagnostic"
        return cfg
    return EntityDescription(bit.key, "binary_sensor",
                             lambda ctx: bit.key in applies(ctx.system_type), build,
                             lambda ctx: ctx.shown(bit.visibility))


def _select_template(setting: Setting) -> str:
    """The state holds the register number for a numeric select; when its labels say more than
    the number (a system type), the template maps the number to the label."""
    if setting.numeric_state and any(label != str(code) for label, code in setting.options):
        mapping = ", ".join(f"{code}: '{label}'" for label, code in setting.options)
        return f"{{{{ {{{mapping}}}.get({value_of(setting.key)}) }}}}"
    return f"{{{{ {value_of(setting.key)} }}}}"


def _setting_sensor(s: Setting) -> EntityDescription:
    def build(uid: str, _t: MeterTopics) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": s.name, "unique_id": uid}
        if s.icon:
            cfg["icon"] = s.icon
        cfg["entity_category"] = "diagnostic"
        cfg["value_template"] = _select_template(s) if s.kind == "select" \
            else f"{{{{ {value_of(s.key)} }}}}"
        if s.unit:
            cfg["unit_of_measurement"] = s.unit
        if s.device_class:
            cfg["device_class"] = s.device_class
        return cfg
    # A read-only meter's set-up is looked up now and then, not watched: created disabled.
    return EntityDescription(s.key, "sensor", lambda ctx: not ctx.allow_writes, build,
                             lambda ctx: False)


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
            if s.device_class:
                cfg["device_class"] = s.device_class
        return cfg
    platform = "select" if s.kind == "select" else "number"
    return EntityDescription(f"set_{s.key}", platform, lambda ctx: ctx.allow_writes, build,
                             lambda ctx: ctx.shown(s.visibility))


def _button(c: Command) -> EntityDescription:
    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        cfg: dict[str, Any] = {"name": c.name, "unique_id": uid, "entity_category": "config",
                               "command_topic": topics.set(c.key), "payload_press": "PRESS"}
        if c.icon:
            cfg["icon"] = c.icon
        return cfg

    def exists(ctx: MeterContext) -> bool:
        return ctx.allow_writes and (ctx.allow_resets or not c.guarded)
    # A guarded reset is never one click away: even with allow_resets it starts disabled.
    return EntityDescription(c.key, "button", exists, build,
                             lambda ctx: not c.guarded and ctx.shown(c.visibility))


def _wiring_problem(info_codes: tuple[str, ...]) -> EntityDescription:
    """On while the wiring check has an error or a warning (codes in ``wiring``, the state
    contract; ``info_codes`` only inform); the findings with their fixes are attributes."""
    def build(uid: str, topics: MeterTopics) -> dict[str, Any]:
        return {"name": "Wiring problem", "unique_id": uid, "device_class": "problem",
                "entity_category": "diagnostic",
                "value_template": f"{{{{ 'ON' if {_wiring_faults(info_codes)} else 'OFF' }}}}",
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

    repeated_cache: dict[int, frozenset[str]] = {}

    def repeated(system_type: int) -> frozenset[str]:
        if system_type not in repeated_cache:
            repeated_cache[system_type] = profile.repeated_keys(system_type)
        return repeated_cache[system_type]

    bits = {b.key: b for st in profile.system_types for b in profile.alarm_bits(st)}
    ordered_bits = sorted(bits.values(), key=lambda b: b.bit)
    return (
        *(_quantity(q, repeated) for q in QUANTITIES),
        _problem(profile.wiring_info_codes),
        *(_alarm(bit, applies) for bit in ordered_bits),
        _wiring_problem(profile.wiring_info_codes),
        *(d for s in profile.settings for d in (_setting_sensor(s), _setting_control(s))),
        *(_button(c) for c in profile.commands),
        _last_command(),
    )


@dataclass(frozen=True, slots=True)
class Component:
    key: str
    platform: str
    config: Mapping[str, Any]


def components(descriptions: tuple[EntityDescription, ...], ctx: MeterContext,
               unique_id: Callable[[str], str], topics: MeterTopics) -> dict[str, Component]:
    """The entities that exist for ``ctx``, keyed by component key, in description order."""
    out: dict[str, Component] = {}
    for d in descriptions:
        if not d.exists(ctx):
            continue
        cfg = d.build(unique_id(d.key), topics)
        if not d.enabled(ctx):
            cfg["enabled_by_default"] = False
        out[d.key] = Component(d.key, d.platform, cfg)
    return out
