"""What the bridge knows about one meter, and how each reading changes it (no I/O).

The bus task owns every :class:`MeterRuntime`; the functions here apply a set-up read, plan the
reads for the wiring, fold a measurement read into the published values (QNAN out, totals never
lower than published unless the meter was reset), and build the state object.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.config import MeterConfig
from bridge.core.publishing import AvailabilityGate
from bridge.homeassistant.discovery import Component, DeviceInfo, meter_components
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import (
    MeterSetup,
    Number,
    StateValue,
    measurement_plan,
    reported_uncertain,
    valid_state_keys,
)
from bridge.meters.series4000.validity import Dropped, sanitize
from bridge.modbus.reader import Identity
from bridge.model.registers import ReadBlock, plan_reads
from bridge.model.topics import Topics

log = logging.getLogger(__name__)

ENERGY_KEYS = s4k.COMMANDS_BY_KEY["reset_energy"].resets


@dataclass
class MeterRuntime:
    cfg: MeterConfig
    node_id: str
    identity: Identity | None = None
    setup: MeterSetup | None = None
    #: Uncertain keys (per-phase power without a neutral) the meter answered with numbers.
    reported: frozenset[str] = frozenset()
    #: Whether the uncertain keys have been read once under the present wiring.
    probed: bool = False
    valid: frozenset[str] = frozenset()
    full_blocks: tuple[ReadBlock, ...] = ()
    fast_blocks: tuple[ReadBlock, ...] = ()
    values: dict[str, Number] = field(default_factory=dict)
    #: The last published value of every accumulator (never publish lower).
    floors: dict[str, Number] = field(default_factory=dict)
    #: Accumulators the meter is known to have reset: their next drop is genuine.
    resets: set[str] = field(default_factory=set)
    due: dict[str, float] = field(default_factory=dict)
    failures: int = 0
    online: bool = False
    backoff: float = 5.0
    last_error: str | None = None
    errors: int = 0
    response_ms: float | None = None
    last_state: dict[str, StateValue] | None = None
    last_state_time: float = 0.0
    gate: AvailabilityGate = field(default_factory=AvailabilityGate)
    flap_warned_at: float = float("-inf")
    polls: int = 0
    #: When each quantity was last read (freshness figures).
    read_at: dict[str, float] = field(default_factory=dict)
    last_demand_command: float | None = None
    writes: int = 0

    @property
    def name(self) -> str:
        return self.cfg.name


def apply_setup(rt: MeterRuntime, setup: MeterSetup) -> bool:
    """Take a new read of the set-up block; True when the wiring changed (entities change)."""
    old = rt.setup
    if old is not None:
        before = old.status.get("energy_reset_count")
        now = setup.status.get("energy_reset_count")
        if before is not None and now is not None and now != before:
            # Reset on the front panel or by another master: the drop is genuine.
            rt.resets |= set(ENERGY_KEYS)
            log.info("%s: energy accumulators were reset (register 147 %s -> %s)", rt.name,
                     before, now)
    rt.setup = setup
    if old is not None and old.system_type == setup.system_type:
        return False
    if old is not None:
        log.warning("%s: system type changed %s -> %s", rt.name, old.system_type,
                    setup.system_type)
    rt.probed = False
    rt.reported = frozenset()
    replan(rt)
    return True


def replan(rt: MeterRuntime) -> None:
    """Valid keys and read plans for the present wiring."""
    assert rt.setup is not None
    st = rt.setup.system_type
    rt.valid = valid_state_keys(st, rt.reported)
    rt.full_blocks = measurement_plan(st, rt.reported, include_uncertain=not rt.probed)
    fast = set(rt.cfg.fast_keys)
    fast_rows = [r for b in rt.full_blocks for r in b.registers if r.key in fast]
    rt.fast_blocks = plan_reads(fast_rows) if fast_rows else ()
    rt.values = {k: v for k, v in rt.values.items() if k in rt.valid}


def ingest(rt: MeterRuntime, decoded: Mapping[str, Number | None], now: float,
           full: bool) -> tuple[bool, list[Dropped]]:
    """Fold a read into the published values. Returns (entities changed, dropped totals)."""
    assert rt.setup is not None
    changed = False
    if full and not rt.probed:
        rt.probed = True
        rt.reported = reported_uncertain(decoded, rt.setup.system_type)
        replan(rt)
        changed = True
    clean, rt.floors, dropped = sanitize(decoded, rt.valid, rt.floors, rt.resets)
    rt.resets -= clean.keys()
    for key, value in decoded.items():
        if key in clean:
            rt.values[key] = clean[key]
            rt.read_at[key] = now
        elif value is None or key not in rt.valid:
            rt.values.pop(key, None)  # QNAN now: not available
    return changed, dropped


def state_of(rt: MeterRuntime) -> dict[str, StateValue]:
    state: dict[str, StateValue] = dict(rt.values)
    if rt.setup is not None:
        state.update(rt.setup.settings)
        state.update(rt.setup.status)
        state["alarms"] = rt.setup.alarms
    state["read_errors"] = rt.errors
    if rt.response_ms is not None:
        state["response_time_ms"] = round(rt.response_ms, 1)
    return state


def device_info(rt: MeterRuntime) -> DeviceInfo:
    name = rt.cfg.display_name or rt.name.replace("_", " ").capitalize()
    fw = rt.identity.firmware if rt.identity else None
    return DeviceInfo(rt.node_id, name, sw_version=fw)


def components(rt: MeterRuntime, unique_prefix: str, topics: Topics) -> dict[str, Component]:
    assert rt.setup is not None
    return dict(meter_components(rt.name, unique_prefix, rt.valid, rt.setup.system_type,
                                 rt.cfg.allow_writes, topics))
