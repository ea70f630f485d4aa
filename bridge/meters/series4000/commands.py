"""Parse and validate a command payload into a register write, or reject it (pure).

Nothing reaches the meter unless it passes here: the payload is short UTF-8 text; a number is a
plain decimal within the setting's range and step; a select takes an option label or its code;
a button takes ``PRESS``. Rules that span registers are checked against the meter's current
set-up: the system voltage divided by the PT ratio must stay within 82..660 V (the PT ratio itself
is taken in its own range, as the manual sets it first; the write then carries a note saying which
system voltage to set next), and a pulse weight must be able to follow the theoretical maximum
power. The meter may still refuse or ignore a
write; the bus task reads every write back.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

from bridge.meters.profile import MeterSetup, Rejection, Setting, Write
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000 import rules

MAX_PAYLOAD_BYTES = 64
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$", re.ASCII)


def _text(payload: bytes) -> str | None:
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    try:
        return payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


def _shown_text(payload: bytes) -> str:
    """The request as echoed in the result: short, printable, never the whole payload."""
    text = payload[:MAX_PAYLOAD_BYTES].decode("utf-8", errors="replace")
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text + ("..." if len(payload) > MAX_PAYLOAD_BYTES else "")


def parse_number(text: str) -> Decimal | None:
    """A plain decimal (``12``, ``-3.5``, ``0.25``): no exponent, NaN, hex or separators."""
    if not _DECIMAL.match(text):
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def known_commands() -> list[str]:
    return [s.key for s in s4k.SETTINGS] + [c.key for c in s4k.COMMANDS]


def parse_command(key: str, payload: bytes, setup: MeterSetup | None,
                  now: float = 0.0, last_demand_command: float | None = None) -> Write | Rejection:
    requested = _shown_text(payload)

    def reject(error: str) -> Rejection:
        return Rejection(key, requested, error)

    if key not in s4k.SETTINGS_BY_KEY and key not in s4k.COMMANDS_BY_KEY:
        return reject(f"unknown setting; known: {', '.join(known_commands())}")
    text = _text(payload)
    if text is None:
        return reject(f"payload must be UTF-8 text of at most {MAX_PAYLOAD_BYTES} bytes")
    if not text:
        return reject("empty payload")
    if key in s4k.COMMANDS_BY_KEY:
        command = s4k.COMMANDS_BY_KEY[key]
        if text.upper() != "PRESS":
            return reject("a button takes the payload PRESS")
        if command.min_interval_s and last_demand_command is not None:
            wait = command.min_interval_s - (now - last_demand_command)
            if wait > 0:
                return reject(f"the meter ignores demand commands sent less than "
                              f"{command.min_interval_s:.0f} s apart; try again in {wait:.0f} s")
        return Write(key, requested, s4k.REG_COMMAND, command.value, is_button=True)
    setting = s4k.SETTINGS_BY_KEY[key]
    if setup is None:
        return reject("the meter's set-up has not been read yet; try again shortly")
    if setting.kind == "select":
        return _select(setting, text, requested, setup)
    return _number(setting, text, requested, setup)


def _select(setting: Setting, text: str, requested: str,
            setup: MeterSetup) -> Write | Rejection:
    chosen: tuple[str, int] | None = None
    for label, code in setting.options:
        if text.casefold() == label.casefold() or text == str(code):
            chosen = (label, code)
            break
    if chosen is None:
        options = ", ".join(f"{label!r}" for label, _ in setting.options)
        return Rejection(setting.key, requested, f"must be one of {options}")
    _, code = chosen
    if setting.key == "pulse_wh":
        max_power = setup.status.get("max_power_w")
        if max_power is not None and not s4k.pulse_weight_can_keep_up(code, max_power):
            need = next((w for w in s4k.PULSE_WEIGHTS_WH
                         if s4k.pulse_weight_can_keep_up(w, max_power)), None)
            hint = f"; use {need} Wh or more" if need else ""
            return Rejection(setting.key, requested,
                             f"{code} Wh per pulse cannot follow the theoretical maximum power "
                             f"of {max_power / 1000:g} kW{hint}")
    return Write(setting.key, requested, setting.reg, code)


def _number(setting: Setting, text: str, requested: str,
            setup: MeterSetup) -> Write | Rejection:
    def reject(error: str) -> Rejection:
        return Rejection(setting.key, requested, error)

    number = parse_number(text)
    if number is None:
        return reject("must be a plain decimal number")
    unit = f" {setting.unit}" if setting.unit else ""
    lo, hi = Decimal(str(setting.minimum)), Decimal(str(setting.maximum))
    if not lo <= number <= hi:
        return reject(f"must be {setting.minimum:g}..{setting.maximum:g}{unit}")
    step = Decimal(str(setting.step))
    if number % step != 0:
        return reject(f"must be a multiple of {setting.step:g}{unit}")
    for ex_lo, ex_hi in setting.excluded:
        if Decimal(str(ex_lo)) <= number <= Decimal(str(ex_hi)):
            return reject(f"{ex_lo:g}..{ex_hi:g}{unit} is not allowed by the meter")
    raw_decimal = number / Decimal(str(setting.factor))
    raw = int(raw_decimal)
    if raw != raw_decimal or not 0 <= raw <= 0xFFFF:
        return reject("does not fit the register")
    note: str | None = None
    if setting.key == "system_voltage_v":
        error = _voltage_error(float(number), _as_float(setup.settings.get("pt_ratio")))
        if error:
            return reject(error)
    elif setting.key == "pt_ratio":
        note = _pt_ratio_note(float(number), _as_float(setup.settings.get("system_voltage_v")))
    return Write(setting.key, requested, setting.reg, raw, note=note)


def _voltage_error(voltage_v: float, pt_ratio: float) -> str | None:
    """Why the meter would refuse ``voltage_v`` with its current PT ratio, or None."""
    if not (math.isfinite(voltage_v) and math.isfinite(pt_ratio) and pt_ratio > 0):
        return None
    lo_v, hi_v = rules.SECONDARY_VOLTAGE_RANGE
    secondary = rules.secondary_voltage_v(voltage_v, pt_ratio)
    if lo_v <= secondary <= hi_v:
        return None
    lo, hi = rules.system_voltage_range_v(pt_ratio)
    fits = f"with PT ratio {pt_ratio:g} it must be {lo}..{hi} V" if lo <= hi else \
        f"no system voltage fits PT ratio {pt_ratio:g}"
    return (f"system voltage / PT ratio = {secondary:.1f} V; the meter needs "
            f"{lo_v:g}..{hi_v:g} V: {fits} (set pt_ratio first if the PTs differ)")


def _pt_ratio_note(pt_ratio: float, voltage_v: float) -> str | None:
    """After a PT ratio that leaves the current system voltage out of range: what to set next.

    The manual sets the PT ratio before the system voltage, so the ratio is taken in its own
    range and only the voltage is checked against it.
    """
    if not math.isfinite(voltage_v) or _voltage_error(voltage_v, pt_ratio) is None:
        return None
    lo_v, hi_v = rules.SECONDARY_VOLTAGE_RANGE
    secondary = rules.secondary_voltage_v(voltage_v, pt_ratio)
    lo, hi = rules.system_voltage_range_v(pt_ratio)
    head = (f"system voltage {voltage_v:g} V / PT ratio {pt_ratio:g} = {secondary:.1f} V is "
            f"outside {lo_v:g}..{hi_v:g} V")
    if lo > hi:
        return f"{head}, and no system voltage fits this PT ratio: set pt_ratio again"
    return f"{head}: set system_voltage_v next ({lo}..{hi} V with this PT ratio)"


def _as_float(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan


def system_type_hint(before: MeterSetup, after: MeterSetup) -> str | None:
    """After a system-type change, the system voltage to set when the present one was entered
    for the other kind of value (line-to-line vs. line-to-neutral, register 134)."""
    old, new = before.system_type, after.system_type
    voltage = _as_float(after.settings.get("system_voltage_v"))
    ln_type = s4k.SYSTEM_VOLTAGE_LN_TYPE
    if old == new or (old == ln_type) == (new == ln_type) or not math.isfinite(voltage):
        return None
    if new == ln_type:
        target = voltage / s4k.LL_OVER_LN.get(old, 1.0)
        kinds = ("line-to-line", f"type {new} takes line-to-neutral")
    else:
        target = voltage * s4k.LL_OVER_LN.get(new, 1.0)
        kinds = ("line-to-neutral", f"type {new} takes line-to-line")
    setting = s4k.SETTINGS_BY_KEY["system_voltage_v"]
    target = min(max(round(target), setting.minimum), setting.maximum)
    return (f"system voltage {voltage:g} V is a {kinds[0]} value and {kinds[1]}: "
            f"set system_voltage_v to {target:g} next")
