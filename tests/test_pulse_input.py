"""One pulse input end to end on the fake backend, with a clock the test moves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import PulseWeightMismatch
from bridge.gpio import store
from bridge.gpio.backend import EdgeEvent
from bridge.gpio.fake import FakeGpioBackend
from bridge.gpio.pulse_input import PulseInput, PulseInputSettings

S = 1_000_000_000
MS = 1_000_000


class Rig:
    def __init__(self, tmp_path: Path, clock: Any, wh: float = 10, **kwargs: Any) -> None:
        self.clock = clock
        self.backend = FakeGpioBackend(clock_ns=clock)
        self.line = self.backend.line("GPIO17")
        self.path = tmp_path / "main_pulses.json"
        self.states: list[dict[str, Any]] = []
        settings = PulseInputSettings("main_pulses", None, "GPIO17", wh, debounce_ms=2,
                                      power_timeout_s=60, **kwargs)
        self.input = PulseInput(settings, self.backend, self.path, self.states.append,
                                clock_ns=clock, retry_initial_s=0.01, retry_max_s=0.05)

    @contextlib.asynccontextmanager
    async def running(self, wait_until: Any) -> AsyncIterator[asyncio.Task[None]]:
        opened = len(self.backend.requests)
        task = asyncio.create_task(self.input.run())
        try:
            await wait_until(lambda: len(self.backend.requests) > opened, what="line request")
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def pulses_at(self, *times_s: float) -> list[EdgeEvent]:
        """Edge events as the kernel would stamp them, without going through a line."""
        t0 = self.clock()
        return [EdgeEvent(False, t0 + round(t * S), i + 1, i + 1) for i, t in enumerate(times_s)]


async def test_counts_and_publishes(tmp_path: Path, clock: Any, wait_until: Any) -> None:
    rig = Rig(tmp_path, clock)
    async with rig.running(wait_until):
        assert rig.states == [{"energy_kwh": 0.0, "power_w": None, "pulses": 0}]
        t0 = clock()
        clock.set(t0 + 4 * S + 2 * MS)  # when the last pulse settles
        rig.line.pulse_train(5, 1.0, start_ns=t0)
        await wait_until(lambda: rig.states[-1]["pulses"] == 5)
    assert rig.states[-1] == {"energy_kwh": 0.05, "power_w": 36000.0, "pulses": 5}
    assert store.load(rig.path).total == store.StoredTotal(5, 10)  # saved at shutdown


async def test_bounces_shorter_than_the_debounce_do_not_count(
        tmp_path: Path, clock: Any, wait_until: Any) -> None:
    rig = Rig(tmp_path, clock)
    async with rig.running(wait_until):
        for _ in range(3):
            clock.advance(1)
            rig.line.press(0.05, bounces=4, bounce_s=0.0003)
        await wait_until(lambda: rig.input.pulses == 3)
        clock.advance(1)
        rig.line.press(0.05, bounces=4, bounce_s=0.0003)
        await wait_until(lambda: rig.input.pulses == 4)
    assert rig.input.counter.rejected == 0


async def test_sequence_gaps_still_count(tmp_path: Path, clock: Any, wait_until: Any) -> None:
    rig = Rig(tmp_path, clock)
    async with rig.running(wait_until):
        rig.line.pulse_train(2, 0.5)
        rig.line.drop_next(3)
        rig.line.pulse_train(5, 0.5)
        await wait_until(lambda: rig.input.pulses == 7)
    assert rig.input.counter.dropped == 3


def test_power_decays_and_falls_to_zero(tmp_path: Path, clock: Any) -> None:
    rig = Rig(tmp_path, clock)
    rig.input.restore()
    rig.input.handle_events(rig.pulses_at(0, 1))
    clock.advance(1)
    assert rig.input.state()["power_w"] == 36000.0
    clock.advance(2)  # two seconds since the last pulse, interval was one
    assert rig.input.state()["power_w"] == 18000.0
    published = len(rig.states)
    clock.advance(2)
    rig.input.tick()  # publish interval (5 s) reached
    assert len(rig.states) == published + 1
    assert rig.states[-1]["power_w"] == 9000.0
    clock.advance(1)
    rig.input.tick()  # not due, power not zero: nothing
    assert len(rig.states) == published + 1
    clock.advance(55)  # 60 s after the last pulse: the timeout
    rig.input.tick()
    assert rig.states[-1] == {"energy_kwh": 0.02, "power_w": 0.0, "pulses": 2}
    rig.input.tick()  # 0 is published once, then only when due
    assert len(rig.states) == published + 2


def test_saves_at_most_every_second(tmp_path: Path, clock: Any,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    saved: list[int] = []
    real_save = store.save

    def counting_save(path: Path, total: store.StoredTotal) -> None:
        saved.append(total.pulses)
        real_save(path, total)

    monkeypatch.setattr(store, "save", counting_save)
    rig = Rig(tmp_path, clock)
    rig.input.restore()
    for k in range(10):  # ten pulses within 0.9 s
        rig.input.handle_events([EdgeEvent(False, clock(), k + 1, k + 1)])
        clock.advance(0.1)
    assert saved == [1]
    rig.input.tick()  # one second after the first save
    assert saved == [1, 10]
    clock.advance(5)
    rig.input.tick()  # nothing new: nothing written
    assert saved == [1, 10]


async def test_restart_from_the_store_never_lower(tmp_path: Path, clock: Any,
                                                  wait_until: Any) -> None:
    rig = Rig(tmp_path, clock)
    async with rig.running(wait_until):
        rig.line.pulse_train(7, 0.5)
        await wait_until(lambda: rig.input.pulses == 7)

    again = Rig(tmp_path, clock)
    start = again.input.restore(meter_pulses=5, retained_pulses=6)
    assert (start.pulses, start.source) == (7, "store")
    async with again.running(wait_until):
        assert again.states[0]["pulses"] == 7  # restored before the first publish
        again.line.pulse_train(3, 0.5)
        await wait_until(lambda: again.input.pulses == 10)

    third = Rig(tmp_path, clock)
    start = third.input.restore(retained_pulses=12)
    assert (start.pulses, start.source) == (12, "retained")
    third.input.save()  # a start value from elsewhere is written back
    assert store.load(third.path).total == store.StoredTotal(12, 10)


def test_a_corrupt_store_is_reported_and_the_caller_decides(
        tmp_path: Path, clock: Any, caplog: pytest.LogCaptureFixture) -> None:
    rig = Rig(tmp_path, clock)
    rig.path.write_bytes(b'{"version": 1, "pulses": 99')
    with caplog.at_level(logging.WARNING):
        start = rig.input.restore(meter_pulses=40)
    assert (start.pulses, start.source) == (40, "meter")
    assert f"the stored pulse total {rig.path} is corrupt" in caplog.text

    fresh = Rig(tmp_path, clock)
    assert fresh.input.restore().pulses == 0  # nothing trustworthy: 0, with a warning
    assert "counting from 0" in caplog.text


def test_a_changed_weight_keeps_the_energy(tmp_path: Path, clock: Any) -> None:
    rig = Rig(tmp_path, clock, wh=100)
    store.save(rig.path, store.StoredTotal(1001, 10))
    assert rig.input.restore().pulses == 101
    assert rig.input.state()["energy_kwh"] == 10.1


def test_restore_only_once(tmp_path: Path, clock: Any) -> None:
    rig = Rig(tmp_path, clock)
    rig.input.restore()
    with pytest.raises(RuntimeError, match="already restored"):
        rig.input.restore()


async def test_the_chip_disappears_and_comes_back(tmp_path: Path, clock: Any,
                                                  wait_until: Any) -> None:
    rig = Rig(tmp_path, clock)
    async with rig.running(wait_until) as task:
        rig.line.pulse_train(2, 0.5)
        await wait_until(lambda: rig.input.pulses == 2)
        rig.backend.remove_chip("gpiochip0")
        await wait_until(lambda: store.load(rig.path).total == store.StoredTotal(2, 10),
                         what="save when the line is lost")
        rig.line.pulse_train(4, 0.5)  # nobody listens: these are lost
        rig.backend.restore_chip("gpiochip0")
        await wait_until(lambda: len(rig.backend.requests) == 2, what="reopen")
        rig.line.pulse_train(3, 0.5)
        await wait_until(lambda: rig.input.pulses == 5)
        assert not task.done()
    assert rig.input.counter.rejected == 0


async def test_a_failing_store_does_not_stop_counting(
        tmp_path: Path, clock: Any, wait_until: Any, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "blocker").write_text("")
    rig = Rig(tmp_path, clock)
    rig.input.store_path = tmp_path / "blocker" / "p.json"
    async with rig.running(wait_until):
        for _ in range(3):
            clock.advance(1.5)
            rig.line.press(0.05)
            await wait_until(lambda: rig.states[-1]["pulses"] >= 1)
        await wait_until(lambda: rig.input.pulses == 3)
    assert caplog.text.count("cannot save the pulse total") == 1


def test_meter_weight_must_agree(tmp_path: Path, clock: Any) -> None:
    rig = Rig(tmp_path, clock, wh=10)
    rig.input.accept_meter_weight(10)
    with pytest.raises(PulseWeightMismatch,
                       match=r"main_pulses: wh_per_pulse is 10 but the meter sends one pulse "
                             r"per 100 Wh \(register 144\)"):
        rig.input.accept_meter_weight(100)


def test_meter_closure_tightens_plausibility(tmp_path: Path, clock: Any) -> None:
    rig = Rig(tmp_path, clock)
    rig.input.restore()
    assert rig.input.accept_meter_closure(100) is None
    rig.input.handle_events(rig.pulses_at(0, 0.05, 1.0))  # 50 ms: impossible at 100 ms closure
    assert (rig.input.pulses, rig.input.counter.rejected) == (2, 1)
    problem = rig.input.accept_meter_closure(2)
    assert problem is not None and "debounce_ms 2 is not shorter" in problem


def test_cross_check_with_the_meter_counter(tmp_path: Path, clock: Any) -> None:
    rig = Rig(tmp_path, clock)
    rig.input.restore()
    assert rig.input.cross_check(5000) is None  # baseline
    rig.input.handle_events(rig.pulses_at(0, 1, 2, 3, 4))
    assert rig.input.cross_check(5005) == 0
    assert rig.input.cross_check(5006) == -1  # the meter saw one more: missed here
    assert rig.input.cross_check(5003) == 2   # two extra here
    assert rig.input.cross_check(10) is None  # the meter's counter was reset: new baseline
    assert rig.input.cross_check(10) == 0


@pytest.mark.parametrize("bad", [{"edge": "both"}, {"wh_per_pulse": 0},
                                 {"debounce_ms": -1}, {"power_timeout_s": 0}])
def test_settings_are_validated(bad: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"name": "p", "chip": None, "line": "GPIO17",
                              "wh_per_pulse": 10, **bad}
    with pytest.raises(ValueError):
        PulseInputSettings(**kwargs)
