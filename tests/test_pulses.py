"""Pulse math: counting by sequence number, energy, power and its decay, plausibility (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.gpio import pulses as pm
from bridge.gpio.backend import EdgeEvent

MS = 1_000_000
S = 1_000_000_000
T0 = 1_000 * S


def ev(seqno: int, t_ms: float) -> EdgeEvent:
    return EdgeEvent(False, T0 + round(t_ms * MS), seqno, seqno)


P10 = pm.PulseParams(10, power_timeout_s=60)


@pytest.mark.parametrize(("events", "params", "pulses", "dropped", "rejected", "interval_ms"), [
    ([], P10, 0, 0, 0, None),
    ([ev(1, 0)], P10, 1, 0, 0, None),
    ([ev(1, 0), ev(2, 1000), ev(3, 2000)], P10, 3, 0, 0, 1000),
    # The kernel dropped events 2..4: they count, and the interval is per pulse.
    ([ev(1, 0), ev(5, 400)], P10, 5, 3, 0, 100),
    # The sequence restarted (a new request) without reopened(): that event is one pulse.
    ([ev(1, 0), ev(2, 500), ev(1, 1000)], P10, 3, 0, 0, 500),
    # Closure 100 ms: pulses are at least 200 ms apart (160 ms with 20 % tolerance).
    ([ev(1, 0), ev(2, 50), ev(3, 1000)], pm.PulseParams(10, 60, closure_ms=100), 2, 0, 1, 1000),
    ([ev(1, 0), ev(2, 170)], pm.PulseParams(10, 60, closure_ms=100), 2, 0, 0, 170),
    # Closure unknown: the shortest the meter uses (10 ms) -> 16 ms minimum.
    ([ev(1, 0), ev(2, 10), ev(3, 30)], P10, 2, 0, 1, 30),
    ([ev(1, 0), ev(2, 20)], pm.PulseParams(10, 60, tolerance=0.0), 2, 0, 0, 20),
    # A gap whose span is too short for that many pulses: noise, all of it refused.
    ([ev(1, 0), ev(11, 100)], P10, 1, 0, 10, None),
])
def test_count(events: list[EdgeEvent], params: pm.PulseParams, pulses: int, dropped: int,
               rejected: int, interval_ms: float | None) -> None:
    result = pm.count(pm.start(0, T0), events, params)
    assert result.state.pulses == result.added == pulses
    assert result.state.dropped == result.dropped == dropped
    assert result.state.rejected == sum(r.pulses for r in result.rejected) == rejected
    got = result.state.interval_ns
    assert (None if got is None else got / MS) == interval_ms


def test_count_continues_across_batches_from_a_restored_total() -> None:
    state = pm.start(1000, T0)
    first = pm.count(state, [ev(1, 0), ev(2, 1000)], P10)
    second = pm.count(first.state, [ev(3, 2000)], P10)
    assert (first.added, second.added, second.state.pulses) == (2, 1, 1003)


def test_reopened_restarts_the_sequence_and_forgets_the_old_timestamp() -> None:
    before = pm.count(pm.start(0, T0), [ev(1, 0), ev(2, 1000)], P10).state
    state = pm.reopened(before, T0 + 5 * S)
    after = pm.count(state, [ev(1, 6000)], P10).state
    assert after.pulses == 3
    assert after.interval_ns is None  # the outage is not an interval


def test_rejections_are_described() -> None:
    result = pm.count(pm.start(0, T0), [ev(1, 0), ev(2, 5)], pm.PulseParams(10, 60, 100))
    assert result.rejected[0].describe() == (
        "1 pulse(s) 5.0 ms apart, faster than the meter can emit (160.0 ms minimum): "
        "not counted")


@pytest.mark.parametrize(("pulses", "wh", "kwh"), [
    (0, 10, 0.0), (1, 10, 0.01), (1234, 10, 12.34), (3, 1000, 3.0), (7, 10000, 70.0),
    (123_456_789, 100, 12_345_678.9),
])
def test_energy(pulses: int, wh: float, kwh: float) -> None:
    assert pm.energy_kwh(pulses, wh) == kwh


def counted(*times_ms: float, wh: float = 10, timeout_s: float = 60) -> pm.PulseState:
    params = pm.PulseParams(wh, timeout_s)
    return pm.count(pm.start(0, T0), [ev(i + 1, t) for i, t in enumerate(times_ms)],
                    params).state


@pytest.mark.parametrize(("times_ms", "now_ms", "wh", "expected"), [
    # Not known before two pulses, 0 once the timeout has passed without any.
    ((), 1000, 10, None),
    ((), 60_000, 10, 0.0),
    ((0,), 1000, 10, None),
    ((0,), 60_000, 10, 0.0),
    # 10 Wh every second = 36 kW; 1000 Wh every 3.6 s = 1 MW.
    ((0, 1000), 1000, 10, 36_000.0),
    ((0, 1000), 1500, 10, 36_000.0),
    ((0, 3600), 3600, 1000, 1_000_000.0),
    # No pulse for longer than the last interval: bounded by wh * 3600 / time since the pulse.
    ((0, 1000), 3000, 10, 18_000.0),
    ((0, 1000), 37_000, 10, 1_000.0),
    ((0, 1000), 60_999, 10, 600.01),
    # Timeout after the last pulse.
    ((0, 1000), 61_000, 10, 0.0),
])
def test_power_and_its_decay(times_ms: tuple[float, ...], now_ms: float, wh: float,
                             expected: float | None) -> None:
    state = counted(*times_ms, wh=wh)
    got = pm.power_w(state, pm.PulseParams(wh, 60), T0 + round(now_ms * MS))
    assert got == (None if expected is None else pytest.approx(expected, rel=1e-9))


def test_power_after_dropped_events_uses_the_interval_per_pulse() -> None:
    state = pm.count(pm.start(0, T0), [ev(1, 0), ev(5, 4000)], P10).state
    assert pm.power_w(state, P10, T0 + 4000 * MS) == pytest.approx(36_000)


@pytest.mark.parametrize(("configured", "meter", "fragment"), [
    (10, 10, None),
    (1000, 1000, None),
    (10, 100, "wh_per_pulse is 10 but the meter sends one pulse per 100 Wh (register 144)"),
    (10, 5, "not one of 10, 100, 1000, 10000"),
])
def test_weight_problem(configured: float, meter: int, fragment: str | None) -> None:
    problem = pm.weight_problem(configured, meter)
    assert (problem is None) == (fragment is None)
    if fragment is not None:
        assert problem is not None and fragment in problem


@pytest.mark.parametrize(("debounce", "closure", "ok"), [
    (10, 100, True), (5, 10, True), (9.9, 10, True), (10, 10, False), (20, 10, False),
])
def test_debounce_problem(debounce: float, closure: float, ok: bool) -> None:
    problem = pm.debounce_problem(debounce, closure)
    assert (problem is None) == ok
    if problem:
        assert f"use at most {closure / 2:g} ms" in problem


@pytest.mark.parametrize(("baseline", "gpio", "meter", "difference"), [
    ((100, 5000), 100, 5000, 0),
    ((100, 5000), 150, 5050, 0),
    ((100, 5000), 148, 5050, -2),   # missed two
    ((100, 5000), 153, 5050, 3),    # three extra (noise)
    ((100, 5000), 150, 20, None),   # the meter's counter was reset
])
def test_pulse_check(baseline: tuple[int, int], gpio: int, meter: int,
                     difference: int | None) -> None:
    check = pm.pulse_check(baseline, gpio, meter)
    assert (None if check is None else check.difference) == difference


@pytest.mark.parametrize("bad", [
    {"wh_per_pulse": 0}, {"wh_per_pulse": -10}, {"power_timeout_s": 0}, {"tolerance": 1.0},
])
def test_params_are_validated(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        pm.PulseParams(**{"wh_per_pulse": 10, **bad})


@given(st.lists(st.tuples(st.integers(-3, 20), st.integers(0, 500)), max_size=40),
       st.integers(0, 10**6))
def test_the_total_never_decreases(steps: list[tuple[int, int]], start: int) -> None:
    state = pm.start(start, T0)
    seqno, t = 0, T0
    for seq_step, dt_ms in steps:
        seqno = max(1, seqno + seq_step)  # forwards, repeated, or restarted
        t += dt_ms * MS
        before = state.pulses
        state = pm.count(state, [EdgeEvent(False, t, seqno, seqno)], P10).state
        assert state.pulses >= before
    assert state.pulses >= start
