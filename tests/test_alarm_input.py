"""The alarm contact: level at start, transitions, bounce, wiring options, register 146 check."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bridge.gpio.alarm_input import (
    AlarmInput,
    AlarmInputSettings,
    compare_with_meter,
    contact_open,
    is_problem,
)
from bridge.gpio.fake import FakeGpioBackend

OPEN, CLOSED = True, False  # line level with the contact to ground and a pull-up


class Rig:
    def __init__(self, **kwargs: Any) -> None:
        self.backend = FakeGpioBackend()
        self.line = self.backend.line("GPIO27")
        self.states: list[bool] = []
        self.available: list[bool] = []
        settings = AlarmInputSettings("phase_alarm", "GPIO27", **kwargs)
        self.input = AlarmInput(settings, self.backend, self.states.append,
                                on_available=self.available.append,
                                retry_initial_s=0.01, retry_max_s=0.05)

    @contextlib.asynccontextmanager
    async def running(self, wait_until: Any) -> AsyncIterator[None]:
        task = asyncio.create_task(self.input.run())
        try:
            await wait_until(lambda: bool(self.states), what="first state")
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.parametrize(("level", "problem"), [(CLOSED, False), (OPEN, True)])
async def test_state_at_start_comes_from_the_level(level: bool, problem: bool,
                                                   wait_until: Any) -> None:
    rig = Rig()
    rig.line.set_level(level)
    async with rig.running(wait_until):
        assert rig.states == [problem]
        assert rig.available == [True]
    assert rig.available == [True, False]


async def test_transitions_and_bounce(wait_until: Any) -> None:
    rig = Rig(debounce_ms=20)
    rig.line.set_level(CLOSED)
    async with rig.running(wait_until):
        rig.line.set_level(OPEN)  # a phase is lost: the relay opens
        await wait_until(lambda: rig.states == [False, True])
        rig.line.set_level(CLOSED)
        await wait_until(lambda: rig.states == [False, True, False])
        start = rig.line.last_ns + 1
        # Chatter shorter than the debounce that ends where it began: nothing to report.
        rig.line.drive([(start + k * 1_000_000, level)
                        for k, level in enumerate([OPEN, CLOSED, OPEN, CLOSED])])
        # Chatter that ends open: one change.
        rig.line.drive([(start + 100_000_000 + k * 1_000_000, level)
                        for k, level in enumerate([OPEN, CLOSED, OPEN])])
        await wait_until(lambda: len(rig.states) == 4)
        assert rig.states == [False, True, False, True]
        assert rig.input.problem is True


async def test_the_chip_going_away_is_reported(wait_until: Any) -> None:
    rig = Rig()
    rig.line.set_level(CLOSED)
    async with rig.running(wait_until):
        rig.backend.remove_chip("gpiochip0")
        await wait_until(lambda: rig.available == [True, False])
        rig.line.set_level(OPEN)  # changed while nobody could see it
        rig.backend.restore_chip("gpiochip0")
        await wait_until(lambda: rig.available == [True, False, True])
        await wait_until(lambda: rig.states == [False, True])


@pytest.mark.parametrize(("level", "bias", "active", "problem"), [
    # The meter's N.C. contact to ground with a pull-up: open (high) is the problem.
    (True, "pull_up", "open", True),
    (False, "pull_up", "open", False),
    # An external pull-up (no internal bias) reads the same way.
    (True, "disabled", "open", True),
    # Contact to 3.3 V with a pull-down: open reads low.
    (False, "pull_down", "open", True),
    (True, "pull_down", "open", False),
    # A normally-open contact that closes on alarm.
    (False, "pull_up", "closed", True),
    (True, "pull_up", "closed", False),
])
def test_level_to_problem(level: bool, bias: Any, active: Any, problem: bool) -> None:
    settings = AlarmInputSettings("a", "GPIO27", bias=bias, active=active)
    assert is_problem(level, settings) is problem
    assert contact_open(level, bias) is (level != (bias == "pull_down"))


@pytest.mark.parametrize(("problem", "bitmap", "agree", "phases", "fragment"), [
    (False, 0, True, (), None),
    (True, 1 << 8, True, ("a",), None),
    (True, 0b111 << 8, True, ("a", "b", "c"), None),
    # Other alarms of register 146 do not drive the contact.
    (False, 0b1111111 | 1 << 15, True, (), None),
    (True, 0, False, (), "a broken wire looks like an alarm"),
    (True, 1 << 3, False, (), "reports no phase loss"),
    (False, 1 << 9, False, ("b",), "phase loss on B but the alarm contact does not"),
    (False, 1 << 8 | 1 << 10, False, ("a", "c"), "phase loss on A, C"),
])
def test_compare_with_meter(problem: bool, bitmap: int, agree: bool, phases: tuple[str, ...],
                            fragment: str | None) -> None:
    check = compare_with_meter(problem, bitmap)
    assert (check.agree, check.phases, check.contact_alarm) == (agree, phases, problem)
    assert check.meter_alarm is bool(phases)
    if fragment is None:
        assert check.message is None
    else:
        assert check.message is not None and fragment in check.message


@pytest.mark.parametrize("bad", [{"active": "sometimes"}, {"debounce_ms": -5}])
def test_settings_are_validated(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AlarmInputSettings("a", "GPIO27", **bad)
