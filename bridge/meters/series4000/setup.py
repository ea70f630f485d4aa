"""From register words to a Series 4000's set-up, and what to read for it (pure).

``decode_setup`` turns the words of the configuration block (129-154) into a
:class:`~bridge.meters.profile.MeterSetup`: the system type, the scale factors, the settings in the
units and labels of the state contract, the status registers and the active alarms.
``measurement_plan`` says what to read for a set-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bridge.errors import DecodeError
from bridge.meters.profile import MeterSetup, Setting
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.validity import (
    active_alarms,
    uncertain_keys,
    valid_keys,
    valid_rows,
)
from bridge.model import codec
from bridge.model.registers import ReadBlock, Register, plan_reads, power_of_ten
from bridge.model.values import Number, StateValue

__all__ = ["MeterSetup", "decode_setup", "measurement_plan"]

#: Status registers published under their own state keys (counts and times, not scaled).
_STATUS_COUNTS = ((s4k.REG_PULSE_CLOSURE, "pulse_closure_ms"),
                  (s4k.REG_ENERGY_RESETS, "energy_reset_count"),
                  (s4k.REG_POWER_UPS, "power_up_count"))


def label_for(setting: Setting, raw: int) -> StateValue:
    """The published form of a setting's register value."""
    if setting.kind == "select":
        if setting.numeric_state:
            return raw  # a number in the state; the select's template shows the label
        for label, value in setting.options:
            if value == raw:
                return label
        return raw
    if setting.factor != 1.0:
        return codec.scale(raw, power_of_ten(setting.factor))
    return raw


def decode_setup(words: Sequence[int]) -> MeterSetup:
    """Decode the configuration block 129-154."""
    block = s4k.CONFIG_READ
    if len(words) != block.count:
        raise DecodeError(f"configuration block: expected {block.count} registers, "
                          f"got {len(words)}")
    raw = {block.start + i: w for i, w in enumerate(words)}
    system_type = raw[s4k.REG_SYSTEM_TYPE]
    if system_type not in s4k.SYSTEM_TYPES:
        raise DecodeError(f"register {s4k.REG_SYSTEM_TYPE} holds {system_type}, not a system "
                          f"type ({', '.join(map(str, s4k.SYSTEM_TYPES))})")
    scales: dict[int, int] = {}
    for reg in (s4k.SCALE_I, s4k.SCALE_V, s4k.SCALE_W, s4k.SCALE_E):
        value = codec.decode_raw(s4k.BY_REG[reg].dtype, [raw[reg]])
        if value is None or not -4 <= value <= 4:
            raise DecodeError(f"scale register {reg} holds {value}, outside -4..4")
        scales[reg] = int(value)
    settings: dict[str, StateValue] = {}
    raw_settings: dict[str, int] = {}
    for setting in s4k.SETTINGS:
        value = raw[setting.reg]
        if value == codec.QNAN16:
            continue  # e.g. CT output mode on rope-CT variants
        settings[setting.key] = label_for(setting, value)
        raw_settings[setting.key] = value
    status: dict[str, Number] = {}
    max_power = codec.decode(s4k.BY_REG[s4k.REG_MAX_POWER], [raw[s4k.REG_MAX_POWER]], scales)
    if max_power is not None:
        status["max_power_w"] = max_power
    for reg, key in _STATUS_COUNTS:
        if raw[reg] != codec.QNAN16:
            status[key] = raw[reg]
    bitmap = raw[s4k.REG_ALARMS]
    return MeterSetup(system_type, scales, settings, status, bitmap, raw_settings,
                      active_alarms(bitmap, system_type), tuple(words))


def measurement_rows(system_type: int, reported: Iterable[str] = (),
                     rows: Sequence[Register] = s4k.MEASUREMENT_ROWS,
                     include_uncertain: bool = False) -> tuple[Register, ...]:
    """Rows to read for a system type.

    With ``include_uncertain`` the rows whose validity the sources leave open are read too, so
    that the meter can settle it (a number means valid).
    """
    chosen = list(valid_rows(rows, system_type, reported))
    if include_uncertain:
        extra = uncertain_keys(rows, system_type)
        chosen += [r for r in rows if r.key in extra and r not in chosen]
    return tuple(chosen)


def measurement_plan(system_type: int, reported: Iterable[str] = (),
                     include_uncertain: bool = False, max_gap: int = 10,
                     rows: Sequence[Register] = s4k.MEASUREMENT_ROWS) -> tuple[ReadBlock, ...]:
    return plan_reads(measurement_rows(system_type, reported, rows, include_uncertain),
                      max_gap=max_gap)


def reported_uncertain(values: Mapping[str, Number | None], system_type: int,
                       rows: Sequence[Register] = s4k.MEASUREMENT_ROWS) -> frozenset[str]:
    """The uncertain keys the meter answered with a number (so they are valid after all)."""
    return frozenset(k for k in uncertain_keys(rows, system_type) if values.get(k) is not None)


def valid_state_keys(system_type: int, reported: Iterable[str] = ()) -> frozenset[str]:
    return valid_keys(s4k.MEASUREMENT_ROWS, system_type, reported)
