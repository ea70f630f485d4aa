"""Human-readable tables for ``read`` and ``scan`` (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from bridge.meters.series4000 import points as s4k
from bridge.modbus.reader import Reading
from bridge.model.quantities import BY_KEY, QUANTITIES

_SETTING_UNITS = {s.key: s.unit for s in s4k.SETTINGS}


def format_value(key: str, value: object) -> str:
    q = BY_KEY.get(key)
    if isinstance(value, list):
        return ", ".join(map(str, value)) if value else "none"
    is_float = isinstance(value, float) and q is not None
    text = f"{value:.{q.precision}f}" if is_float and q is not None else str(value)
    unit = q.unit if q is not None else _SETTING_UNITS.get(key)
    return f"{text} {unit}" if unit else text


def table(rows: Iterable[Sequence[str]], headers: Sequence[str]) -> str:
    rows = [list(r) for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out)


def format_reading(reading: Reading) -> str:
    setup = reading.setup
    ident = reading.identity
    head = [
        f"Unit {reading.unit}: {ident.vendor or '?'} {ident.product or 'Series 4000'} "
        f"firmware {ident.firmware or '?'}",
        f"System type {setup.system_type}: {s4k.SYSTEM_TYPES[setup.system_type].label}",
        "",
    ]
    state: Mapping[str, object] = reading.state
    rows = [(q.name, q.key, format_value(q.key, state[q.key]))
            for q in QUANTITIES if q.key in state]
    settings = [(s.name, s.key, format_value(s.key, state[s.key]))
                for s in s4k.SETTINGS if s.key in state]
    alarms = state.get("alarms") or []
    parts = [*head, table(rows, ("quantity", "key", "value")), "",
             table(settings, ("setting", "key", "value")), "",
             f"Alarms: {format_value('alarms', alarms)}"]
    return "\n".join(parts)
