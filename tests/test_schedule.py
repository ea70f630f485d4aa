"""The rotation's decisions, table by table (pure functions, no bus)."""

from __future__ import annotations

import itertools
import math

import pytest

from bridge.core.schedule import (
    Cursor,
    Pick,
    Rotation,
    Tiers,
    advance,
    catch_up,
    coprime_at_most,
    full_every,
    pick,
    rotations,
    slot_read,
)


@pytest.mark.parametrize(("limit", "count", "expected"), [
    (32, 40, 31),  # 32 shares 8 with 40
    (30, 63, 29),
    (27, 63, 26),
    (5, 1, 5),
    (0, 10, 1),
    (10, 10, 9),
])
def test_coprime_at_most(limit: int, count: int, expected: int) -> None:
    assert coprime_at_most(limit, count) == expected


@pytest.mark.parametrize(("tiers", "count", "stretch", "expected"), [
    (Tiers("m", 29.0, 0.9), 40, 1.0, 31),  # 32 fast periods fit, 31 shares no factor with 40
    (Tiers("m", 30.0, 1.0), 63, 1.0, 29),
    (Tiers("m", 30.0, 1.0), 63, 1.11, 26),  # the budget's stretch: full reads keep 30 s
    (Tiers("m", 5.0, 1.0), 1, 1.0, 5),
    (Tiers("m", 5.0, None), 10, 1.0, 1),  # no fast tier: every slot reads everything
    (Tiers("m", 5.0, 5.0), 10, 1.0, 1),  # a fast period as long as the full one: none
    (Tiers("m", 0.0, None), 10, 1.0, 1),  # as fast as the line allows
])
def test_full_every(tiers: Tiers, count: int, stretch: float, expected: int) -> None:
    assert full_every(tiers, count, stretch) == expected


def test_rotations_group_the_meters_by_period_in_configuration_order() -> None:
    found = rotations([Tiers("a", 30.0, 1.0), Tiers("b", 10.0), Tiers("c", 30.0, 1.0),
                       Tiers("d", 10.0, 20.0)])
    assert found == (Rotation(1.0, ("a", "c"), (29, 29)), Rotation(10.0, ("b", "d"), (1, 1)))


@pytest.mark.parametrize(("meters", "every"), [(40, 31), (63, 29), (63, 26), (10, 9), (1, 5)])
def test_full_reads_fall_once_per_meter_and_evenly_apart(meters: int, every: int) -> None:
    rotation = Rotation(1.0, tuple(f"m{i}" for i in range(meters)), (every,) * meters)
    slots = [(c, p) for c in range(every) for p in range(meters)]
    full = [c * meters + p for c, p in slots if rotation.is_full(c, p)]
    assert sorted(p % meters for p in full) == list(range(meters))  # each meter once
    assert {b - a for a, b in itertools.pairwise(full)} <= {every}  # evenly apart


def test_the_cursor_walks_the_cycle_and_wraps_a_period_later() -> None:
    rotation = Rotation(1.0, ("a", "b", "c", "d"), (1, 1, 1, 1))
    cursor = Cursor(0, 0, 100.0)
    dues = []
    for _ in range(6):
        dues.append((cursor.cycle, cursor.position, cursor.due_s(rotation)))
        cursor = advance(rotation, cursor)
    assert dues == [(0, 0, 100.0), (0, 1, 100.25), (0, 2, 100.5), (0, 3, 100.75),
                    (1, 0, 101.0), (1, 1, 101.25)]


@pytest.mark.parametrize(("period", "now", "expected_start"), [
    (1.0, 100.75, 100.0),  # on time
    (1.0, 102.75, 100.0),  # two periods behind: back to back until on time, no re-anchor
    (1.0, 103.0, 101.0),  # more: moved on by whole periods, still more than a period behind
    (1.0, 110.5, 108.0),
    (0.0, 100.5, 100.5),  # as fast as the line allows: always now
    (0.0, 99.0, 100.0),  # early: unchanged
])
def test_catch_up_moves_the_timeline_on_only_when_it_falls_far_behind(
        period: float, now: float, expected_start: float) -> None:
    rotation = Rotation(period, ("a", "b", "c", "d"), (1, 1, 1, 1))
    cursor = Cursor(3, 3, 100.0)
    moved = catch_up(rotation, cursor, now)
    assert (moved.cycle, moved.position) == (3, 3)  # the order is kept
    assert moved.start_s == pytest.approx(expected_start)
    late = now - moved.due_s(rotation)
    assert late <= 2 * period
    if moved != cursor and period:
        assert late > period


FAST = Rotation(1.0, ("a", "b"), (3, 3))
FULL = Rotation(5.0, ("a", "b"), (1, 1))


@pytest.mark.parametrize(("rotation", "cycle", "kwargs", "expected"), [
    (FAST, 1, {}, "fast"),
    (FAST, 0, {}, "full"),  # slot 0 of the rotation is a full read
    (FAST, 0, {"full_age_s": 1.0}, "fast"),  # read everything 1 s ago (first reads)
    (FAST, 0, {"full_age_s": 1.6}, "full"),  # half the 3 s full period ago
    (FAST, 1, {"full_wanted": True}, "full"),  # a command asked for it
    (FAST, 1, {"has_fast": False}, None),  # the fast keys are not on this meter
    (FAST, 0, {"polled": False}, None),  # offline: the slot passes free
    (FAST, 1, {"polled": False, "full_wanted": True}, None),
    (FULL, 0, {}, "full"),
    (FULL, 1, {"full_age_s": 0.1}, None),  # just read everything; no fast tier to read
    (FULL, 1, {"full_age_s": 0.1, "has_fast": True}, None),  # fast keys but no fast tier
])
def test_slot_read(rotation: Rotation, cycle: int, kwargs: dict[str, object],
                   expected: str | None) -> None:
    args: dict[str, object] = {"polled": True, "has_fast": True, "full_wanted": False,
                               "full_age_s": math.inf, **kwargs}
    assert slot_read(rotation, Cursor(cycle, 0, 0.0), **args) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("timed", "slots", "expected"), [
    ([], [], Pick(wait_s=None)),
    ([], [10.5, 10.2], Pick(wait_s=pytest.approx(0.2))),
    ([], [9.5, 9.0], Pick(rotation=1)),  # the earlier slot
    ([("m", "init", 9.9)], [9.0], Pick(meter="m", task="init")),  # first reads fit in first
    ([("m", "config", 10.0), ("n", "publish", 10.0)], [9.0], Pick(meter="n", task="publish")),
    ([("m", "init", 9.0), ("n", "init", 8.0)], [], Pick(meter="n", task="init")),
    ([("m", "full", 1.0)], [10.3], Pick(wait_s=pytest.approx(0.3))),  # a wish, not a task
    ([("m", "flush", 10.1), ("m", "config", 10.4)], [], Pick(wait_s=pytest.approx(0.1))),
])
def test_pick(timed: list[tuple[str, str, float]], slots: list[float], expected: Pick) -> None:
    assert pick(timed, slots, 10.0) == expected
