"""The cheaper publish path keeps what subscribers receive: deadbands resolved per key give the
same holds and decisions, the wiring check runs at most once a second per meter."""

from __future__ import annotations

import itertools

import pytest

from bridge.core.publishing import DEFAULT_DEADBANDS, changed, deadband_for, hold, per_key
from bridge.core.wiring import CHECK_INTERVAL_S, check_due
from bridge.model.quantities import BY_KEY
from tests.test_poller import Clock, make_poller, meter, run_until

CONFIGURED = [
    DEFAULT_DEADBANDS,
    {**DEFAULT_DEADBANDS, "power_w": 0.0, "V": 2.0},
    {"W": 5.0, "current": 0.1, "unknown_key": 3.0},
    {},
]


@pytest.mark.parametrize("deadbands", CONFIGURED)
def test_per_key_deadbands_are_the_configured_ones(deadbands: dict[str, float]) -> None:
    resolved = per_key(deadbands)
    for key in [*BY_KEY, "unknown_key", "not_a_key"]:
        assert deadband_for(key, resolved) == deadband_for(key, deadbands)


@pytest.mark.parametrize("deadbands", CONFIGURED)
def test_hold_and_change_decide_alike_with_resolved_deadbands(
        deadbands: dict[str, float]) -> None:
    last = {"power_w": 1000.0, "voltage_an_v": 230.0, "energy_kwh": 5.0, "alarms": []}
    for new in ({"power_w": 1004.0, "voltage_an_v": 231.5, "energy_kwh": 5.0, "alarms": []},
                {"power_w": 1020.0, "voltage_an_v": 230.2, "energy_kwh": 5.001, "alarms": []},
                {"power_w": 1000.0, "voltage_an_v": 230.0, "energy_kwh": 5.0,
                 "alarms": ["x"]}):
        assert hold(last, new, per_key(deadbands)) == hold(last, new, deadbands)
        assert changed(last, new, per_key(deadbands)) == changed(last, new, deadbands)


@pytest.mark.parametrize(("last", "now", "due"), [
    (None, 0.0, True),
    (10.0, 10.5, False),
    (10.0, 10.0 + CHECK_INTERVAL_S, True),
    (10.0, 12.0, True),
])
def test_the_wiring_check_is_due_once_a_second(last: float | None, now: float,
                                               due: bool) -> None:
    assert check_due(last, now) is due


async def test_continuous_polling_checks_the_wiring_once_a_second() -> None:
    clock = Clock()
    poller, _, _, _ = make_poller([meter("m", 1, poll_interval=0.2)], clock=clock)
    rt = poller.meters["m"]
    checks: list[float] = []
    await run_until(poller, clock, clock.now + 0.1)
    start = clock.now
    while clock.now < start + 5.0:
        await run_until(poller, clock, clock.now + 0.2)  # the meter's next slot
        if rt.wiring_checked_at is not None and (not checks or checks[-1] != rt.wiring_checked_at):
            checks.append(rt.wiring_checked_at)
    assert rt.polls >= 25  # five full reads a second
    assert 5 <= len(checks) <= 6
    assert all(b - a >= CHECK_INTERVAL_S for a, b in itertools.pairwise(checks))
