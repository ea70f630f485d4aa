"""The bridge's status as plain data: what the status page, its API and the metrics show.

Pure functions over the running objects (the bus pollers' meter runtimes and link statistics,
the published states); they read and never change anything, and return JSON-able values only.
Meter and input states are the ones as published on MQTT, so the page, the API and the metrics
show exactly what Home Assistant got.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge.config import BusConfig
from bridge.core.budget import LIMIT, LiveBudget
from bridge.core.refresh import refresh_s
from bridge.core.runtime import MeterRuntime
from bridge.modbus.links import BusStats, char_s
from bridge.model.quantities import BY_KEY

JSON = dict[str, Any]


@dataclass(frozen=True, slots=True)
class BusSample:
    """A bus's counters at one moment (monotonic seconds), for rates over a window."""

    at: float
    line_bytes: int
    transactions: int


@dataclass(frozen=True, slots=True)
class BusRates:
    #: Share of wall time the line carried frames (0..1); None on Modbus TCP (no serial line).
    line_busy: float | None
    transactions_per_s: float


def sample(stats: BusStats, at: float) -> BusSample:
    return BusSample(at, stats.line_bytes, stats.requests + stats.errors)


def line_busy(line_bytes: int, seconds: float, baudrate: int, parity: str,
              stopbits: int) -> float:
    """Share of ``seconds`` the line carried ``line_bytes`` bytes of frames at this speed."""
    if seconds <= 0:
        return 0.0
    wire_s = line_bytes * char_s(baudrate, parity, stopbits)
    return min(1.0, wire_s / seconds)


def rates(bus: BusConfig, old: BusSample, new: BusSample) -> BusRates:
    seconds = new.at - old.at
    per_s = (new.transactions - old.transactions) / seconds if seconds > 0 else 0.0
    busy = None
    if bus.transport != "tcp":
        busy = line_busy(new.line_bytes - old.line_bytes, seconds, bus.baudrate, bus.parity,
                         bus.stopbits)
    return BusRates(busy, per_s)


def wall_time(monotonic_at: float | None, now_mono: float, now_wall: float) -> str | None:
    """An instant on the monotonic clock as UTC ISO 8601 (seconds)."""
    if monotonic_at is None:
        return None
    when = now_wall - (now_mono - monotonic_at)
    return datetime.fromtimestamp(when, UTC).isoformat(timespec="seconds")


#: Decimals of the meters' measured reaction in milliseconds (a hundredth: far below the
#: spread of real answers, and what the page shows to a tenth).
REACTION_MS_DECIMALS = 2


def budget_status(live: LiveBudget | None) -> JSON | None:
    """A bus's budget with its meters' measured reaction; None on Modbus TCP."""
    if live is None:
        return None
    return {
        "fast_interval_s": list(live.fast_s),
        "poll_interval_s": list(live.full_s),
        "share_needed": round(live.share, 4),
        "limit": LIMIT,
        "fast_achievable_s": [round(s, 3) for s in live.achievable_fast_s],
        "meter_reaction_ms": None if live.meter_reaction_s is None
        else round(live.meter_reaction_s * 1000.0, REACTION_MS_DECIMALS),
    }


def bus_status(bus: BusConfig, stats: BusStats, connected: bool, bus_rates: BusRates | None,
               live: LiveBudget | None) -> JSON:
    return {
        "name": bus.name,
        "transport": bus.transport,
        "endpoint": bus.device if bus.transport == "rtu" else f"{bus.host}:{bus.port}",
        "connected": connected,
        "baudrate": None if bus.transport == "tcp" else bus.baudrate,
        "line_busy": None if bus_rates is None or bus_rates.line_busy is None
        else round(bus_rates.line_busy, 4),
        "transactions_per_s": None if bus_rates is None
        else round(bus_rates.transactions_per_s, 2),
        "transactions": stats.requests,
        "timeouts": stats.timeouts,
        "crc_errors": stats.crc_errors,
        "exceptions": stats.exceptions,
        "retries": stats.retries,
        "failed": stats.errors,
        "reconnects": stats.reconnects,
        "last_error": stats.last_error,
        "budget": budget_status(live),
    }


def phases(valid: Iterable[str]) -> list[str]:
    """The phases the wiring uses (a, b, c), from its valid per-phase quantities (line to
    neutral voltages count for their line; line to line ones say nothing alone)."""
    used = set()
    for key in valid:
        quantity = BY_KEY.get(key)
        if quantity is not None and quantity.phase is not None:
            phase = quantity.phase
            if len(phase) == 1 or phase.endswith("n"):
                used.add(phase[0])
    return sorted(used)


def meter_status(rt: MeterRuntime, bus: str, now_mono: float, now_wall: float) -> JSON:
    setup = rt.setup
    last_read = rt.last_read_at
    return {
        "name": rt.name,
        "display_name": rt.cfg.display_name or rt.name.replace("_", " ").capitalize(),
        "bus": bus,
        "unit": rt.cfg.unit,
        "online": rt.online,
        "online_since": wall_time(rt.online_changed_at, now_mono, now_wall) if rt.online
        else None,
        "offline_since": None if rt.online
        else wall_time(rt.online_changed_at, now_mono, now_wall),
        "system_type": setup.system_type if setup is not None else None,
        "system_type_text": rt.profile.system_type_label(setup.system_type)
        if setup is not None else None,
        "phases": phases(rt.valid),
        "firmware": rt.identity.firmware if rt.identity is not None else None,
        "response_time_ms": None if rt.response_ms is None else round(rt.response_ms, 1),
        "read_errors": rt.errors,
        "last_read_age_s": None if last_read is None else round(now_mono - last_read, 1),
        "refresh_s": None if (refresh := refresh_s(rt.read_gaps, now_mono)) is None
        else round(refresh, 3),
        "last_error": rt.last_error,
        "state": dict(rt.last_state) if rt.last_state is not None else {},
        "alarms": list(setup.alarms) if setup is not None else [],
        "wiring": [finding.as_dict() for finding in rt.wiring.active],
    }


def input_status(name: str, kind: str, meter: str | None, state_payload: str | None,
                 availability: str | None) -> JSON:
    """A pulse or alarm input from its published state and availability."""
    state: JSON = {}
    if state_payload:
        try:
            parsed = json.loads(state_payload)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            state = parsed
    return {"name": name, "kind": kind, "meter": meter,
            "available": None if availability is None else availability == "online",
            "state": state}


def bridge_status(version: str, uptime_s: float, mqtt_connected: bool, broker: str) -> JSON:
    return {"version": version, "uptime_s": round(uptime_s),
            "mqtt": {"connected": mqtt_connected, "broker": broker}}


def modbus_client_status(peer: str, connected_s: float, requests: int, passthrough_reads: int,
                         refused: Mapping[int, int]) -> JSON:
    """One client of the Modbus TCP server: who, since when, how much it asked."""
    return {"peer": peer, "connected_s": round(connected_s, 1), "requests": requests,
            "passthrough_reads": passthrough_reads,
            "refused": {f"{code:02d}": n for code, n in sorted(refused.items())}}


def snapshot(bridge: JSON, buses: Sequence[JSON], meters: Iterable[JSON],
             inputs: Sequence[JSON], commands: Sequence[Mapping[str, Any]],
             modbus_server: JSON | None = None) -> JSON:
    """The whole status (the ``/api/status`` contract); ``modbus_server`` is None when the
    server is off, else ``{"listen", "clients": [...]}``."""
    return {"bridge": bridge, "buses": list(buses), "meters": list(meters),
            "inputs": list(inputs), "commands": [dict(c) for c in commands],
            "modbus_server": modbus_server}
