"""When each meter's reads run on a bus: a fixed rotation per period (pure, no I/O).

The meters of a bus that share a period (their fast period, or their full period when they
have no fast tier) form a :class:`Rotation`: one slot per meter and cycle, in configuration
order, the k-th of n meters at ``k / n`` of the period. A meter reads in its own slot only:
its fast read, or every ``full_every`` cycles its full read instead (which refreshes the fast
keys too). The full reads are laid on every ``full_every``-th slot of the whole rotation, so
they are spread evenly over the cycles and within them, never two of them back to back.

A slot starts at its nominal time, or when the line is free if it is later: the bus task
takes the slots in their order and never skips or reorders them. When reads cost more than
planned, every slot comes a little later, so every meter's refresh stretches by the same
amount (the cycle's real length) and none is starved. A rotation more than two periods behind
is re-anchored (its timeline moved on by whole periods) instead of bursting to catch up. The
slot of a meter that is not polled (offline, or its first reads still to come) passes free:
the next slot still waits for its own time, so the others keep their places, and a meter
that comes back takes up its old place.

The few reads that are not in the rotation (first reads and back-off probes, set-up reads)
and the work that needs no line time (publishing at the end of a hold, availability) run when
due, ahead of the next slot; commands go ahead of everything (the poller takes its queue
first).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

#: Timed tasks (a due time each) and their rank: lower runs first; every slot ranks after them.
TIMED_RANK = {"flush": 0, "publish": 0, "init": 1, "config": 1}
SLOT_RANK = 2
#: A full read due by the rotation is skipped (the slot reads the fast tier) when the meter read
#: everything less than this share of its full period ago: its first reads, or a command's.
FRESH_SHARE = 0.5


@dataclass(frozen=True, slots=True)
class Tiers:
    """One meter's configured periods."""

    name: str
    full_s: float
    fast_s: float | None = None

    @property
    def has_fast(self) -> bool:
        return self.fast_s is not None and self.fast_s < self.full_s

    @property
    def period_s(self) -> float:
        """The period of the meter's slots."""
        return self.fast_s if self.fast_s is not None and self.has_fast else self.full_s


@dataclass(frozen=True, slots=True)
class Rotation:
    """Meters sharing a period, one slot each per cycle, in a fixed order."""

    period_s: float
    meters: tuple[str, ...]
    #: Per position: the meter reads everything every this many cycles (1: in every slot).
    full_every: tuple[int, ...]

    def offset_s(self, position: int) -> float:
        return self.period_s * position / len(self.meters)

    def is_full(self, cycle: int, position: int) -> bool:
        """Whether the slot is one of the meter's full reads: every ``full_every``-th slot of
        the rotation as a whole (the stride shares no factor with the number of meters, so
        every meter gets exactly one per ``full_every`` cycles)."""
        return (cycle * len(self.meters) + position) % self.full_every[position] == 0

    def full_period_s(self, position: int) -> float:
        return self.period_s * self.full_every[position]


def coprime_at_most(limit: int, count: int) -> int:
    """The largest whole number from 1 to ``limit`` that shares no factor with ``count``."""
    return next(m for m in range(max(limit, 1), 0, -1) if math.gcd(m, count) == 1)


def full_every(tiers: Tiers, count: int, fast_stretch: float = 1.0) -> int:
    """Cycles between a meter's full reads: as many as fit in its full period with the fast
    period stretched as the bus budget says (so the full read keeps its promise when the line
    runs the cycles back to back), and no factor in common with the ``count`` meters."""
    if not tiers.has_fast or tiers.fast_s is None:
        return 1
    cycles = math.floor(tiers.full_s / (tiers.fast_s * max(fast_stretch, 1.0)) + 1e-9)
    return coprime_at_most(cycles, count)


def rotations(meters: Sequence[Tiers], fast_stretch: float = 1.0) -> tuple[Rotation, ...]:
    """The bus's rotations, one per period, the meters in configuration order."""
    groups: dict[float, list[Tiers]] = {}
    for m in meters:
        groups.setdefault(m.period_s, []).append(m)
    return tuple(Rotation(period, tuple(m.name for m in members),
                          tuple(full_every(m, len(members), fast_stretch) for m in members))
                 for period, members in groups.items())


@dataclass(frozen=True, slots=True)
class Cursor:
    """A rotation's next slot: its cycle, its position in the cycle, the cycle's start."""

    cycle: int
    position: int
    start_s: float

    def due_s(self, rotation: Rotation) -> float:
        return self.start_s + rotation.offset_s(self.position)


def advance(rotation: Rotation, cursor: Cursor) -> Cursor:
    """The slot after ``cursor``."""
    if cursor.position + 1 < len(rotation.meters):
        return Cursor(cursor.cycle, cursor.position + 1, cursor.start_s)
    return Cursor(cursor.cycle + 1, 0, cursor.start_s + rotation.period_s)


#: How many periods a rotation may fall behind its timeline before the timeline moves on.
LAG_PERIODS = 2


def catch_up(rotation: Rotation, cursor: Cursor, now: float) -> Cursor:
    """The cursor with its timeline moved on by whole periods when its slot is more than
    :data:`LAG_PERIODS` periods late, so that it is late by one to two; else unchanged.

    A rotation that is late runs its slots back to back until it is on time again, so a meter
    is read at most a period or two ahead of its timeline; more would be a burst (the line
    catching up with cycles nobody needs now), so those periods are dropped. They are not
    dropped down to no delay at all: on a line that cannot keep up with the configured period,
    a rotation less than a period late would wait for the nominal time of its next short read
    (its share of the period is longer than the read) while the long reads make it later again.
    Kept a period late, it stays busy, each cycle as long as its reads take.
    """
    late = now - cursor.due_s(rotation)
    if late <= LAG_PERIODS * rotation.period_s:
        return cursor
    if rotation.period_s <= 0:  # as fast as the line allows: the slot is due now
        return Cursor(cursor.cycle, cursor.position, cursor.start_s + late)
    periods = math.floor(late / rotation.period_s) - LAG_PERIODS + 1
    return Cursor(cursor.cycle, cursor.position, cursor.start_s + periods * rotation.period_s)


def slot_read(rotation: Rotation, cursor: Cursor, *, polled: bool, has_fast: bool,
              full_wanted: bool, full_age_s: float) -> str | None:
    """What the meter reads in the slot: ``"full"``, ``"fast"``, or None (the slot passes
    free: the meter is not polled, or it read everything just now and has no fast read).

    ``has_fast``: the meter has a fast read planned; it is used only in a rotation of fast
    periods (in one of full periods every slot is a full read).
    """
    if not polled:
        return None
    if full_wanted:
        return "full"
    fast = has_fast and rotation.full_every[cursor.position] > 1
    if rotation.is_full(cursor.cycle, cursor.position):
        fresh = full_age_s < FRESH_SHARE * rotation.full_period_s(cursor.position)
        if not fresh:
            return "full"
    return "fast" if fast else None


@dataclass(frozen=True, slots=True)
class Pick:
    """What the bus task does next: a timed ``task`` of ``meter``, the slot of rotation
    ``rotation``, or nothing for ``wait_s`` seconds (None: nothing is scheduled)."""

    meter: str | None = None
    task: str = ""
    rotation: int | None = None
    wait_s: float | None = None


def pick(timed: Iterable[tuple[str, str, float]], slots: Sequence[float], now: float) -> Pick:
    """The next thing to run among timed tasks (meter, task, due) and the rotations' next
    slots (their due times): by rank, then the earliest due; else how long to wait."""
    best: tuple[int, float] | None = None
    chosen = Pick()
    earliest = math.inf
    for meter, task, due in timed:
        rank = TIMED_RANK.get(task)
        if rank is None:
            continue  # not a timed task (a wish the slots read, such as "full")
        if due > now:
            earliest = min(earliest, due)
        elif best is None or (rank, due) < best:
            best, chosen = (rank, due), Pick(meter=meter, task=task)
    for index, due in enumerate(slots):
        if due > now:
            earliest = min(earliest, due)
        elif best is None or (SLOT_RANK, due) < best:
            best, chosen = (SLOT_RANK, due), Pick(rotation=index)
    if best is not None:
        return chosen
    return Pick(wait_s=None if earliest == math.inf else earliest - now)
