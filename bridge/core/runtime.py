"""What the bridge knows about one meter, and how each reading changes it (no I/O).

The bus task owns every :class:`MeterRuntime` and is the only writer of its fields: the poller
(schedule, availability, publishing) and the functions here, which apply a set-up read, plan the
reads for the wiring, and fold a measurement read into the published values (QNAN out, totals
never lower than published unless the meter was reset).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.config import MeterConfig
from bridge.core.budget import REFERENCE_TIMING, LineTiming
from bridge.core.publishing import AvailabilityGate
from bridge.core.refresh import NO_READS, ReadGaps
from bridge.meters.findings import FindingHold, state_keys
from bridge.meters.profile import Identity, MeterProfile, MeterSetup, meter_state
from bridge.model.decode_plan import EMPTY, DecodePlan, compile_plan
from bridge.model.fast_plan import fast_plan
from bridge.model.read_limits import NOTHING_REFUSED, ReadLimits, absent_keys, describe, plan
from bridge.model.registers import ReadBlock
from bridge.model.values import Dropped, Number, StateValue, sanitize

log = logging.getLogger(__name__)


@dataclass
class MeterRuntime:
    cfg: MeterConfig
    node_id: str
    profile: MeterProfile
    identity: Identity | None = None
    setup: MeterSetup | None = None
    #: Uncertain keys (per-phase power without a neutral) the meter answered with numbers.
    reported: frozenset[str] = frozenset()
    #: Whether the uncertain keys have been read once under the present wiring.
    probed: bool = False
    valid: frozenset[str] = frozenset()
    full_blocks: tuple[ReadBlock, ...] = ()
    fast_blocks: tuple[ReadBlock, ...] = ()
    #: The full and fast blocks compiled under the set-up's scale registers.
    decoder: DecodePlan = EMPTY
    values: dict[str, Number] = field(default_factory=dict)
    #: The last published value of every accumulator (never publish lower).
    floors: dict[str, Number] = field(default_factory=dict)
    #: Accumulators the meter is known to have reset: their next drop is genuine.
    resets: set[str] = field(default_factory=set)
    #: When each scheduled task of the meter is due next (poller clock).
    due: dict[str, float] = field(default_factory=dict)
    # Health, kept by the poller.
    failures: int = 0
    online: bool = False
    #: When ``online`` last changed (monotonic clock); None before the first answer or probe.
    online_changed_at: float | None = None
    backoff: float = 5.0
    last_error: str | None = None
    errors: int = 0
    response_ms: float | None = None
    #: When the last measurement read completed (monotonic clock).
    last_read_at: float | None = None
    #: The gaps between successful reads (the real refresh, ``core.refresh``).
    read_gaps: ReadGaps = NO_READS
    polls: int = 0
    gate: AvailabilityGate = field(default_factory=AvailabilityGate)
    flap_warned_at: float = float("-inf")
    # Publishing, kept by the poller.
    last_state: dict[str, StateValue] | None = None
    last_state_time: float = 0.0
    #: When a demand command was last accepted (the meter ignores them within 10 s).
    last_demand_command: float | None = None
    #: The words of the latest read of each block, exactly as the meter sent them, and when
    #: they were read, by the block's first register (the Modbus server answers from them).
    words: dict[int, tuple[tuple[int, ...], float]] = field(default_factory=dict)
    #: What the meter refused (long reads, registers it lacks), kept while the bridge runs.
    limits: ReadLimits = NOTHING_REFUSED
    #: The wiring check's findings (``core.wiring``), and when it last ran (monotonic clock).
    wiring: FindingHold = field(default_factory=FindingHold)
    wiring_checked_at: float | None = None
    #: The bus line's timing, which prices the fast tier's read plans (Modbus TCP: the
    #: reference line).
    timing: LineTiming = REFERENCE_TIMING

    @property
    def name(self) -> str:
        return self.cfg.name


def apply_setup(rt: MeterRuntime, setup: MeterSetup) -> bool:
    """Take a new read of the set-up block; True when the wiring changed (entities change)."""
    old = rt.setup
    if old is not None:
        released = rt.profile.released_by(old, setup)
        if released:
            # Reset on the front panel, by another master, or by our command: the drop is
            # genuine.
            rt.resets |= released
            log.info("%s: the meter counted a reset of %s", rt.name, ", ".join(sorted(released)))
    rt.setup = setup
    if old is not None and old.system_type == setup.system_type:
        if old.scales != setup.scales:
            # A new CT or PT size: integer rows decode with the new exponents, and the fast
            # tier's choice between integer and float is made again.
            replan(rt)
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
    rows = [r for b in rt.profile.measurement_plan(st, rt.reported,
                                                   include_uncertain=not rt.probed)
            for r in b.registers]
    # Keys whose registers the meter does not have are absent: neither published nor announced.
    rt.valid = rt.profile.valid_keys(st, rt.reported) - absent_keys(rt.limits, rows)
    rt.full_blocks = plan(rows, rt.limits)
    rt.fast_blocks = fast_plan(rt.full_blocks, rt.cfg.fast_keys, rt.profile.fast_integer_rows,
                               rt.setup.scales, rt.limits, rt.timing.read_s)
    rt.decoder = compile_plan((*rt.full_blocks, *rt.fast_blocks), rt.setup.scales)
    rt.values = {k: v for k, v in rt.values.items() if k in rt.valid}


def learn(rt: MeterRuntime, limits: ReadLimits) -> str | None:
    """Keep what a read taught about the meter's refusals and replan. Returns what to warn
    about once: registers it lacks, or the first read it refused as too long."""
    old, rt.limits = rt.limits, limits
    if rt.setup is not None:
        replan(rt)
    news = limits.missing != old.missing or (limits.refused is not None and old.refused is None)
    return describe(limits) if news else None


def ingest(rt: MeterRuntime, decoded: Mapping[str, Number | None],
           full: bool) -> tuple[bool, list[Dropped]]:
    """Fold a read into the published values. Returns (entities changed, dropped totals)."""
    assert rt.setup is not None
    changed = False
    if full and not rt.probed:
        rt.probed = True
        rt.reported = rt.profile.reported_uncertain(decoded, rt.setup.system_type)
        replan(rt)
        changed = True
    clean, rt.floors, dropped = sanitize(decoded, rt.valid, rt.floors, rt.resets)
    rt.resets -= clean.keys()
    for key, value in decoded.items():
        if key in clean:
            rt.values[key] = clean[key]
        elif value is None or key not in rt.valid:
            rt.values.pop(key, None)  # QNAN now: not available
    return changed, dropped


def state_of(rt: MeterRuntime) -> dict[str, StateValue]:
    """The published state: the meter's (as ``read`` shows it) plus the bus figures."""
    if rt.setup is None:
        return {}
    state = meter_state(rt.setup, rt.values, rt.valid)
    state.update(state_keys(rt.wiring.active))
    state["read_errors"] = rt.errors
    if rt.response_ms is not None:
        state["response_time_ms"] = round(rt.response_ms, 1)
    return state
