"""From register words to a meter's set-up and state (pure).

``decode_setup`` turns the 26 words of the configuration block (129-154) into a
:class:`MeterSetup`: the system type, the scale factors, the settings in the units and labels of
the state contract, and the status registers. ``measurement_plan`` says what to read for a
set-up; ``state_values`` turns what was read into state keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bridge.errors import DecodeError
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.validity import active_alarms, uncertain_keys, valid_keys, valid_rows
from bridge.model import codec
from bridge.model.quantities import BY_KEY
from bridge.model.registers import ReadBlock, Register, plan_reads

CONFIG_START = 129
CONFIG_COUNT = 26

Number = int | float
StateValue = Number | str | list[str]


@dataclass(frozen=True, slots=True)
class MeterSetup:
    system_type: int
    scales: Mapping[int, int]
    #: Settings as published: numbers, or option labels for selects (``ct_output``: ``"1V"``).
    settings: Mapping[str, StateValue]
    #: Status values as published (``max_power_w``, ``pulse_closure_ms``, ...).
    status: Mapping[str, Number]
    alarm_bitmap: int
    raw: Mapping[int, int] = field(default_factory=dict)

    @property
    def alarms(self) -> list[str]:
        return active_alarms(self.alarm_bitmap, self.system_type)

    def setting_raw(self, key: str) -> int:
        return self.raw[s4k.SETTINGS_BY_KEY[key].reg]


def label_for(setting: s4k.Setting, raw: int) -> StateValue:
    """The published form of a setting's register value."""
    if setting.kind == "select":
        if setting.key in ("system_type", "pulse_wh"):
            return raw  # numbers in the state; the select's template shows the label
        for label, value in setting.options:
            if value == raw:
                return label
        return raw
    if setting.factor != 1.0:
        return codec.scale(raw, round(math.log10(setting.factor)))
    return raw


def decode_setup(words: Sequence[int]) -> MeterSetup:
    """Decode the configuration block 129-154."""
    if len(words) != CONFIG_COUNT:
        raise DecodeError(f"configuration block: expected {CONFIG_COUNT} registers, "
                          f"got {len(words)}")
    raw = {CONFIG_START + i: w for i, w in enumerate(words)}
    system_type = raw[s4k.REG_SYSTEM_TYPE]
    if system_type not in s4k.SYSTEM_TYPES:
        raise DecodeError(f"register 130 holds {system_type}, not a system type "
                          f"({', '.join(map(str, s4k.SYSTEM_TYPES))})")
    scales: dict[int, int] = {}
    for reg in (s4k.SCALE_I, s4k.SCALE_V, s4k.SCALE_W, s4k.SCALE_E):
        value = codec.decode_raw(s4k.BY_REG[reg].dtype, [raw[reg]])
        if value is None or not -4 <= value <= 4:
            raise DecodeError(f"scale register {reg} holds {value}, outside -4..4")
        scales[reg] = int(value)
    settings: dict[str, StateValue] = {}
    for setting in s4k.SETTINGS:
        value = raw[setting.reg]
        if value == codec.QNAN16:
            continue  # e.g. CT output mode on rope-CT variants
        settings[setting.key] = label_for(setting, value)
    status: dict[str, Number] = {}
    max_power = codec.decode(s4k.BY_REG[s4k.REG_MAX_POWER], [raw[s4k.REG_MAX_POWER]], scales)
    if max_power is not None:
        status["max_power_w"] = max_power
    for reg, key in ((s4k.REG_PULSE_CLOSURE, "pulse_closure_ms"),
                     (s4k.REG_ENERGY_RESETS, "energy_reset_count"), (152, "power_up_count")):
        if raw[reg] != codec.QNAN16:
            status[key] = raw[reg]
    return MeterSetup(system_type, scales, settings, status, raw[s4k.REG_ALARMS], raw)


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


def state_values(decoded: Mapping[Register, Number | None]) -> dict[str, Number | None]:
    """Decoded rows -> values by state key (the first row wins if two feed one key)."""
    out: dict[str, Number | None] = {}
    for row, value in decoded.items():
        if row.key and row.key not in out:
            q = BY_KEY.get(row.key)
            if q is not None and q.integer and isinstance(value, float) and value.is_integer():
                value = int(value)
            out[row.key] = value
    return out


def reported_uncertain(values: Mapping[str, Number | None], system_type: int,
                       rows: Sequence[Register] = s4k.MEASUREMENT_ROWS) -> frozenset[str]:
    """The uncertain keys the meter answered with a number (so they are valid after all)."""
    return frozenset(k for k in uncertain_keys(rows, system_type) if values.get(k) is not None)


def valid_state_keys(system_type: int, reported: Iterable[str] = ()) -> frozenset[str]:
    return valid_keys(s4k.MEASUREMENT_ROWS, system_type, reported)
