"""The bus budget: the share of an RTU line that a bus's configured tiers need (pure).

A read of n registers holds the line for its request (8 characters) and answer (5 + 2n
characters) at the character time of the baud rate and format, the two t3.5 silences around
the answer, and the reaction time between them beyond the silence (the meter's and the
master's). Per meter and second that is 1/fast of a fast read, 1/full of a full read in place
of a fast one (it takes the fast read's turn) and 1/config of a set-up read. When the sum is
above :data:`LIMIT`, every meter's fast period would have to stretch by the same factor to fit:
the refresh the line can keep, which ``check-config`` says.

The reaction per transaction is the bridge's own turnaround (:data:`MASTER_TURNAROUND_S`) plus
the meters' reaction beyond t3.5, which the Modbus edge measures on a running bus
(``BusStats.reaction_ms``): :func:`live_budget` prices the line with it, the status page shows
it. Until it is measured (and in ``check-config``) the meters are assumed quick
(:data:`DEFAULT_METER_REACTION_S`).

Modbus TCP has no shared line, so no budget (``line_timing`` is None).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bridge.config import BusConfig
from bridge.meters.profile import MeterProfile
from bridge.modbus.links import char_s, silence_s
from bridge.model.fast_plan import coarsest_scales, fast_plan
from bridge.model.read_limits import NOTHING_REFUSED
from bridge.model.registers import ReadBlock, Register

#: The share of the line a configuration may plan for; the rest absorbs retries and jitter.
LIMIT = 0.97
#: The bridge's own turnaround per transaction, from the t3.5 after an answer to its next
#: request on the line (choosing and building the request, pymodbus, the event loop, and on
#: the bench the emulator hearing it): what ``make bench`` measures per transaction beyond wire
#: time and silences (about 1.1 ms) less what the bridge measures as the reaction of the bench's
#: emulated meter, which answers right at t3.5 (0.1-0.3 ms at 9600-115200 baud: the emulator's
#: delivery lateness and the bridge's wake-up).
MASTER_TURNAROUND_S = 0.0009
#: The meters' reaction beyond t3.5 assumed until one is measured (a quick meter's, as above).
DEFAULT_METER_REACTION_S = 0.0002
#: The reaction per transaction assumed until the meters' is measured.
DEFAULT_REACTION_S = MASTER_TURNAROUND_S + DEFAULT_METER_REACTION_S
#: Characters of a read request (unit, function, address, count, CRC) and of an answer's frame
#: around its data (unit, function, byte count, CRC).
REQUEST_CHARS = 8
ANSWER_FRAME_CHARS = 5


@dataclass(frozen=True, slots=True)
class LineTiming:
    char_s: float
    silence_s: float
    reaction_s: float = DEFAULT_REACTION_S

    def read_s(self, registers: int) -> float:
        """Line time of one read of ``registers`` registers."""
        chars = REQUEST_CHARS + ANSWER_FRAME_CHARS + 2 * registers
        return chars * self.char_s + 2 * self.silence_s + self.reaction_s

    def reads_s(self, blocks: Sequence[int]) -> float:
        return sum(self.read_s(n) for n in blocks)


#: The line that prices read plans where a bus has none (Modbus TCP): 19200 8N1, the speed
#: the plans' gap rule was first sized for.
REFERENCE_TIMING = LineTiming(char_s(19200, "N", 1), silence_s(19200, "N", 1))


def line_timing(bus: BusConfig, reaction_s: float = DEFAULT_REACTION_S) -> LineTiming | None:
    """The line's timing, or None for Modbus TCP (no shared line)."""
    if bus.transport == "tcp":
        return None
    return LineTiming(char_s(bus.baudrate, bus.parity, bus.stopbits),
                      silence_s(bus.baudrate, bus.parity, bus.stopbits), reaction_s)


@dataclass(frozen=True, slots=True)
class MeterLoad:
    """One meter's configured tiers and the register counts of its reads."""

    full_s: float
    fast_s: float | None
    config_s: float
    full_blocks: tuple[int, ...]
    fast_blocks: tuple[int, ...]
    config_blocks: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Budget:
    #: The share of the line the configuration needs as configured (1.0: all of it).
    share: float
    #: The factor every fast period is stretched by to fit (1.0: it fits as configured).
    fast_stretch: float


def _fixed_and_fast_s(load: MeterLoad, timing: LineTiming) -> tuple[float, float]:
    """(line seconds per second that do not depend on the fast period, those that do x fast)."""
    full = timing.reads_s(load.full_blocks)
    fixed = timing.reads_s(load.config_blocks) / load.config_s
    if load.full_s <= 0:
        return fixed + 1.0, 0.0  # as fast as the line allows: all of it
    if load.fast_s is None or not load.fast_blocks or load.fast_s >= load.full_s:
        return fixed + full / load.full_s, 0.0
    fast = timing.reads_s(load.fast_blocks)
    return fixed + (full - fast) / load.full_s, fast


def budget(loads: Sequence[MeterLoad], timing: LineTiming, limit: float = LIMIT) -> Budget:
    fixed = per_fast = 0.0
    for load in loads:
        f, a = _fixed_and_fast_s(load, timing)
        fixed += f
        if a and load.fast_s:
            per_fast += a / load.fast_s
    share = fixed + per_fast
    if share <= limit or per_fast == 0.0:
        return Budget(share, 1.0)
    room = limit - fixed
    # Without room for a fast tier the full reads alone fill the line: the fast periods stretch
    # to the full ones (the full reads carry the fast keys).
    longest = max((ld.full_s / ld.fast_s for ld in loads if ld.fast_s), default=1.0)
    stretch = per_fast / room if room > 0 else longest
    return Budget(share, min(stretch, longest))


def meter_loads(bus: BusConfig, full_blocks: Sequence[ReadBlock],
                config_block: ReadBlock, integer_rows: Sequence[Register] = (),
                scales: Mapping[int, int] | None = None) -> list[MeterLoad]:
    """Every meter of the bus with the given full read plan, its fast keys planned from it as
    the bridge plans them (:func:`~bridge.model.fast_plan.fast_plan`): with the profile's
    integer rows and the meters' scale registers when they are known."""
    timing = line_timing(bus) or REFERENCE_TIMING
    loads = []
    for m in bus.meters:
        fast_blocks = fast_plan(full_blocks, m.fast_keys, integer_rows, scales, NOTHING_REFUSED,
                                timing.read_s)
        loads.append(MeterLoad(m.poll_interval, m.fast_interval, m.config_interval,
                               tuple(b.count for b in full_blocks),
                               tuple(b.count for b in fast_blocks), (config_block.count,)))
    return loads


@dataclass(frozen=True, slots=True)
class BusPlan:
    """A bus's budget with what it was computed from."""

    loads: tuple[MeterLoad, ...]
    timing: LineTiming
    result: Budget

    def achievable_fast_s(self) -> tuple[float, ...]:
        """The fast periods the line can keep (the configured ones when they fit)."""
        return tuple(sorted({ld.fast_s * self.result.fast_stretch for ld in self.loads
                             if ld.fast_s}))


def _widest(profile: MeterProfile) -> tuple[ReadBlock, ...]:
    """The widest read plan a meter can have (its wiring is only known once it answers)."""
    return max((profile.measurement_plan(st, include_uncertain=True)
                for st in profile.system_types), key=lambda p: sum(b.count for b in p))


def bus_plan(bus: BusConfig, profile: MeterProfile,
             scales: Mapping[int, int] | None = None,
             meter_reaction_s: float = DEFAULT_METER_REACTION_S) -> BusPlan | None:
    """The budget with the widest read plan the meters can have (their wiring is only known
    once they answer), with the meters' scale registers when they are known (the integer fast
    reads they allow) and their reaction beyond t3.5; None for Modbus TCP."""
    timing = line_timing(bus, MASTER_TURNAROUND_S + meter_reaction_s)
    if timing is None:
        return None
    integer_rows = profile.fast_integer_rows if scales is not None else ()
    loads = meter_loads(bus, _widest(profile), profile.config_block, integer_rows, scales)
    return BusPlan(tuple(loads), timing, budget(loads, timing))


@dataclass(frozen=True, slots=True)
class LiveBudget:
    """A running bus's budget, priced with its meters' measured reaction."""

    #: The configured periods (every distinct one of the bus's meters).
    fast_s: tuple[float, ...]
    full_s: tuple[float, ...]
    #: The share of the line the configuration needs (1.0: all of it).
    share: float
    #: The fast periods the line can keep (the configured ones when they fit).
    achievable_fast_s: tuple[float, ...]
    #: The meters' measured reaction beyond t3.5; None until measured (the default prices it).
    meter_reaction_s: float | None


def live_budget(bus: BusConfig, profile: MeterProfile, scales: Mapping[int, int] | None,
                meter_reaction_s: float | None) -> LiveBudget | None:
    """The budget with what the running bus knows: the meters' scales (None: not all known)
    and their measured reaction (None: not measured yet); None for Modbus TCP."""
    plan = bus_plan(bus, profile, scales)
    return None if plan is None else repriced(plan, meter_reaction_s)


def repriced(plan: BusPlan, meter_reaction_s: float | None) -> LiveBudget:
    """A bus's plan priced with the meters' measured reaction (None: not measured yet, the
    default); the plan's loads stay as planned (the costly part, which depends on the scales
    only)."""
    reaction = DEFAULT_METER_REACTION_S if meter_reaction_s is None else meter_reaction_s
    timing = replace(plan.timing, reaction_s=MASTER_TURNAROUND_S + reaction)
    priced = BusPlan(plan.loads, timing, budget(plan.loads, timing))
    return LiveBudget(tuple(sorted({ld.fast_s for ld in plan.loads if ld.fast_s})),
                      tuple(sorted({ld.full_s for ld in plan.loads})), priced.result.share,
                      priced.achievable_fast_s(), meter_reaction_s)


def coarsest_known(scales: Sequence[Mapping[int, int] | None]) -> Mapping[int, int] | None:
    """The coarsest scale of every register over a bus's meters (a larger exponent is a
    coarser step): the integer fast reads all of them allow; None while a meter's scales are
    unknown (the budget then plans the floats)."""
    if not scales or any(s is None for s in scales):
        return None
    out: dict[int, int] = {}
    for known in scales:
        assert known is not None
        for register, exponent in known.items():
            out[register] = max(exponent, out.get(register, exponent))
    return out


@dataclass(frozen=True, slots=True)
class Planned:
    """``check-config``'s text for a bus, and whether it needs more than :data:`LIMIT`."""

    text: str
    over_limit: bool


def planned(bus: BusConfig, profile: MeterProfile) -> str | None:
    """``check-config``'s line for a bus; None for Modbus TCP."""
    report = planned_report(bus, profile)
    return None if report is None else report.text


def planned_report(bus: BusConfig, profile: MeterProfile) -> Planned | None:
    """``check-config``'s line for a bus and whether it is above the limit (the service logs
    it at start, as a warning then); None for Modbus TCP."""
    plan = bus_plan(bus, profile)
    if plan is None:
        return None
    loads, timing = plan.loads, plan.timing
    text = describe(bus, loads, timing, plan.result)
    # The meters' scale registers are only known once they answer: the line above plans the
    # floats; say what the integer reads would give where the scales are fine enough.
    coarsest = coarsest_scales(profile.fast_integer_rows)
    fine = meter_loads(bus, _widest(profile), profile.config_block, profile.fast_integer_rows,
                       coarsest)
    if [ld.fast_blocks for ld in fine] != [ld.fast_blocks for ld in loads]:
        result = budget(fine, timing)
        fast = sorted({ld.fast_s * result.fast_stretch for ld in fine if ld.fast_s})
        keys = ", ".join(sorted({r.key for r in profile.fast_integer_rows if r.key}))
        scales = ", ".join(f"register {reg} <= {s}" for reg, s in sorted(coarsest.items()))
        text += (f"\n  with {keys} read as the integer where a meter's scale allows it "
                 f"({scales}): {result.share:.0%}, the fast tier every {_seconds(fast, 2)}")
    return Planned(text, plan.result.share > LIMIT)


def describe(bus: BusConfig, loads: Sequence[MeterLoad], timing: LineTiming,
             result: Budget) -> str:
    """One line for ``check-config`` and the service's start."""
    line = f"{bus.baudrate} 8{bus.parity}{bus.stopbits}"
    fast = sorted({ld.fast_s for ld in loads if ld.fast_s})
    full = sorted({ld.full_s for ld in loads})
    tiers = []
    if fast:
        tiers.append(f"fast tier every {_seconds(fast)}")
    tiers.append(f"everything every {_seconds(full)}")
    text = (f"bus {bus.name}: {len(loads)} meters need {result.share:.0%} of the line at {line}: "
            + ", ".join(tiers))
    if result.fast_stretch > 1.0:
        achievable = [f * result.fast_stretch for f in fast]
        text += (f"; more than the {LIMIT:.0%} it can carry: at best the fast tier every "
                 f"{_seconds(achievable, 2)}")
    return text


def _seconds(values: Sequence[float], digits: int = 1) -> str:
    shown = sorted({round(v, digits) for v in values})
    return "/".join(f"{v:g}" for v in shown) + " s"
