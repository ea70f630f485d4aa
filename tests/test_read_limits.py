"""Read plans that adapt to refusals (pure): a meter's length limit and the registers it lacks
are found without ever splitting a 32-bit value, and every other row is read."""

from __future__ import annotations

from collections.abc import Collection

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import measurement_rows
from bridge.model.exception_codes import ILLEGAL_ADDRESS, ILLEGAL_VALUE
from bridge.model.read_limits import (
    NOTHING_REFUSED,
    ReadLimits,
    absent_keys,
    after_answer,
    after_refusal,
    describe,
    describe_registers,
    plan,
)
from bridge.model.registers import ReadBlock, Register

ROWS = measurement_rows(40, include_uncertain=True)


def meter_answer(block: ReadBlock, max_read: int, missing: Collection[int]) -> int | None:
    """How a meter with these limits answers a read: None, or the exception (like the
    simulator's quirks: too long first, then a register it lacks)."""
    if block.count > max_read:
        return ILLEGAL_VALUE
    if any(block.start <= reg <= block.end for reg in missing):
        return ILLEGAL_ADDRESS
    return None


def read_all(rows: tuple[Register, ...], max_read: int, missing: Collection[int],
             limits: ReadLimits = NOTHING_REFUSED) -> tuple[list[ReadBlock], int, ReadLimits]:
    """Drive the pure functions as the reader does; the answered blocks, the requests sent."""
    answered: list[ReadBlock] = []
    pending = list(plan(rows, limits))
    requests = 0
    while pending:
        block = pending.pop(0)
        requests += 1
        assert requests < 500, "the plan does not converge"
        code = meter_answer(block, max_read, missing)
        if code is None:
            limits = after_answer(limits, block)
            answered.append(block)
        else:
            limits, instead = after_refusal(limits, block, code)
            pending[0:0] = instead
    return answered, requests, limits


def assert_whole_rows(blocks: list[ReadBlock]) -> None:
    for block in blocks:
        for row in block.registers:
            assert block.start <= row.reg and row.last_reg <= block.end, (block, row.reg)


def settle(max_read: int, missing: Collection[int]) -> tuple[list[int], ReadLimits]:
    """Ten polls of one meter, keeping what was learnt: the requests each poll sent."""
    limits = NOTHING_REFUSED
    counts = []
    for _ in range(10):
        answered, requests, limits = read_all(ROWS, max_read, missing, limits)
        assert_whole_rows(answered)
        lacking = {row for row in ROWS if any(r in missing for r in range(row.reg,
                                                                           row.last_reg + 1))}
        assert {row for block in answered for row in block.registers} == set(ROWS) - lacking
        counts.append(requests)
    return counts, limits


@pytest.mark.parametrize(("max_read", "missing", "lacked", "first_at_most", "settled"), [
    # Refuses nothing: one request of 90 registers, every time.
    (125, (), "", 1, 1),
    # At most 60 registers per read, lacks 343-346: learnt in the first poll, then the
    # longest acceptable length is found by bisection within a few polls: two requests a poll.
    (60, range(343, 347), "343-346", 15, 2),
    (60, (), "", 4, 2),
    # Lacks only the inferred last row.
    (125, range(345, 347), "345-346", 13, 1),
    # Lacks the reserved registers 305-306 between two rows: not read across any more.
    (125, (305, 306), "", 12, 2),
    # Answers at most one float per read: every row alone.
    (2, (), "", 50, len(ROWS)),
])
def test_a_meter_is_learnt_once_and_read_around(max_read: int, missing: Collection[int],
                                                lacked: str, first_at_most: int,
                                                settled: int) -> None:
    counts, limits = settle(max_read, missing)
    assert describe_registers(limits.missing) == lacked
    assert counts[0] <= first_at_most
    assert counts[-3:] == [settled] * 3, counts


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 125), st.sets(st.sampled_from([r.reg for r in s4k.FLOAT_BLOCK]),
                                    max_size=6))
def test_any_limit_and_any_lacking_rows_converge(max_read: int, lacking_rows: set[int]) -> None:
    missing = {reg + i for reg in lacking_rows for i in range(2)}
    answered, _, limits = read_all(ROWS, max_read, missing)
    assert_whole_rows(answered)
    assert all(block.count <= max_read for block in answered)
    read_rows = [row for block in answered for row in block.registers]
    assert len(read_rows) == len(set(read_rows))  # nothing read twice
    expected = {row for row in ROWS if row.reg not in lacking_rows}
    assert set(read_rows) == expected
    assert limits.missing == {reg for reg in missing if any(r.reg <= reg <= r.last_reg
                                                            for r in ROWS)}


def test_a_refused_gap_is_not_read_across() -> None:
    # 305-306 (reserved) lies between rows: a meter lacking it refuses the span with 02.
    answered, _, limits = read_all(ROWS, 125, {305})
    assert 305 in limits.unbridged and not limits.missing
    assert all(not block.start <= 305 <= block.end for block in answered)
    assert {row for block in answered for row in block.registers} == set(ROWS)


def test_keys_whose_rows_the_meter_lacks_are_absent() -> None:
    limits = ReadLimits(missing=frozenset(range(343, 347)))
    assert absent_keys(limits, ROWS) == {"energy_b_kwh", "energy_c_kwh"}
    assert absent_keys(NOTHING_REFUSED, ROWS) == frozenset()


@pytest.mark.parametrize(("limits", "max_count"), [
    (NOTHING_REFUSED, 125),
    (ReadLimits(refused=90), 45),
    (ReadLimits(accepted=44, refused=90), 67),
    (ReadLimits(accepted=60, refused=61), 60),
    (ReadLimits(accepted=80, refused=61), 60),  # contradictory answers: below the refusal
    (ReadLimits(refused=2), 1),
])
def test_the_next_length_to_try_bisects(limits: ReadLimits, max_count: int) -> None:
    assert limits.max_count == max_count


def test_a_single_row_refused_is_missing_whatever_the_code() -> None:
    block = plan([s4k.BY_REG[345]], NOTHING_REFUSED)[0]
    for code in (ILLEGAL_ADDRESS, ILLEGAL_VALUE):
        limits, instead = after_refusal(NOTHING_REFUSED, block, code)
        assert instead == () and limits.missing == {345, 346} and limits.refused is None


def test_describe() -> None:
    assert describe(NOTHING_REFUSED) is None
    assert describe(ReadLimits(accepted=44, refused=90, missing=frozenset({343, 344, 345, 346,
                                                                           7001}))) == (
        "does not have registers 343-346, 7001; refuses reads of 90 registers or more "
        "(answered 44)")
