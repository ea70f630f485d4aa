"""The fake backend behaves like the kernel where the tests rely on it; the watcher survives."""

from __future__ import annotations

import asyncio
import re
import select
from pathlib import Path
from typing import Any

import pytest

from bridge.errors import GpioDeviceGone, GpioError
from bridge.gpio.backend import EdgeEvent, LineSpec, LineWatcher
from bridge.gpio.fake import FakeGpioBackend

MS = 1_000_000


def backend(clock: Any, **kwargs: Any) -> FakeGpioBackend:
    return FakeGpioBackend(clock_ns=clock, **kwargs)


def open_line(b: FakeGpioBackend, edge: str = "both", debounce_ms: float = 10.0,
              bias: str = "pull_up") -> Any:
    return b.request_line(None, "GPIO17", edge=edge, bias=bias,  # type: ignore[arg-type]
                          debounce_ms=debounce_ms, consumer="test")


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


@pytest.mark.parametrize(("duration_ms", "debounce_ms", "bounces", "expected"), [
    # A clean press: both edges, each stamped when it settled (edge + debounce).
    (50, 10, 0, [(False, 10), (True, 60)]),
    # Chatter of 1 ms after each edge, shorter than the debounce: the same two events.
    (50, 10, 3, [(False, 16), (True, 66)]),
    # No debounce: every level change is an event, at the edge's own time.
    (50, 0, 1, [(False, 0), (True, 1), (False, 2), (True, 50), (False, 51), (True, 52)]),
    # Shorter than the debounce period: the kernel never reports it.
    (5, 10, 0, []),
])
def test_debounce_like_the_kernel(clock: Any, duration_ms: int, debounce_ms: float,
                                  bounces: int, expected: list[tuple[bool, int]]) -> None:
    b = backend(clock)
    req = open_line(b, debounce_ms=debounce_ms)
    t0 = clock()
    b.line("GPIO17").press(duration_ms / 1000, at_ns=t0, bounces=bounces, bounce_s=0.001)
    events = req.read_events()
    assert [(e.rising, (e.timestamp_ns - t0) // MS) for e in events] == expected
    assert [e.line_seqno for e in events] == list(range(1, len(expected) + 1))
    assert req.get_value() is True


def test_fd_is_readable_only_with_events(clock: Any) -> None:
    b = backend(clock)
    req = open_line(b, edge="falling")
    assert not readable(req.fd)
    b.line("GPIO17").press(0.05)
    assert readable(req.fd)
    assert len(req.read_events()) == 1
    assert not readable(req.fd)
    assert req.read_events() == []


def test_dropped_events_leave_sequence_gaps(clock: Any) -> None:
    b = backend(clock)
    req = open_line(b, edge="falling", debounce_ms=1)
    line = b.line("GPIO17")
    line.pulse_train(2, 0.1)
    line.drop_next(3)
    line.pulse_train(4, 0.1)
    assert [e.line_seqno for e in req.read_events()] == [1, 2, 6]


def test_a_full_buffer_drops_the_oldest(clock: Any) -> None:
    b = backend(clock, event_buffer_size=4)
    req = open_line(b, edge="falling", debounce_ms=1)
    b.line("GPIO17").pulse_train(10, 0.1)
    assert [e.line_seqno for e in req.read_events()] == [7, 8, 9, 10]


def test_pulse_train_timestamps_follow_the_period(clock: Any) -> None:
    b = backend(clock)
    req = open_line(b, edge="falling", debounce_ms=2)
    t0 = clock()
    b.line("GPIO17").pulse_train(3, 0.5, closure_s=0.1, start_ns=t0)
    assert [e.timestamp_ns - t0 for e in req.read_events()] == [2 * MS, 502 * MS, 1002 * MS]


def test_waveforms_must_move_forward_in_time(clock: Any) -> None:
    b = backend(clock)
    line = b.line("GPIO17")
    line.set_level(False, at_ns=clock() + 10)
    with pytest.raises(ValueError, match="time order"):
        line.set_level(True, at_ns=clock())


def test_bias_decides_an_undriven_level(clock: Any) -> None:
    b = backend(clock)
    up = open_line(b, bias="pull_up")
    assert up.get_value() is True
    up.close()
    down = open_line(b, bias="pull_down")
    assert down.get_value() is False
    down.close()


def test_lookup_rules(clock: Any) -> None:
    b = FakeGpioBackend({"gpiochip0": ["ID_SDA"], "gpiochip4": ["GPIO16", "GPIO17"]},
                        clock_ns=clock)
    req = open_line(b)
    assert req.description == "gpiochip4 line GPIO17"
    req.close()
    with pytest.raises(GpioError, match="explicit chip"):
        b.request_line(None, 1, edge="both", bias="pull_up", debounce_ms=0, consumer="t")
    with pytest.raises(GpioError, match="explicit chip"):
        b.request_line(None, "1", edge="both", bias="pull_up", debounce_ms=0, consumer="t")
    by_offset = b.request_line("/dev/gpiochip4", 1, edge="both", bias="pull_up",
                               debounce_ms=0, consumer="t")
    assert by_offset.description == "gpiochip4 line GPIO17"
    with pytest.raises(GpioError, match=r"busy \(used by 't'\)"):
        open_line(b)


def test_a_removed_chip_makes_reads_fail_and_lookups_miss(clock: Any) -> None:
    b = backend(clock)
    req = open_line(b)
    b.remove_chip("gpiochip0")
    assert readable(req.fd)  # like POLLHUP: the loop wakes up and reads the error
    with pytest.raises(GpioDeviceGone, match="gpiochip0 line GPIO17"):
        req.read_events()
    with pytest.raises(GpioDeviceGone):
        req.get_value()
    with pytest.raises(GpioError, match="no GPIO line named 'GPIO17'"):
        open_line(b)
    b.line("GPIO17").set_level(False)  # the wiring still changes while the chip is away
    b.restore_chip("gpiochip0")
    again = open_line(b)
    assert again.get_value() is False
    req.close()
    again.close()


async def test_watcher_delivers_batches(wait_until: Any) -> None:
    b = FakeGpioBackend()
    seen: list[list[EdgeEvent]] = []
    spec = LineSpec(None, "GPIO17", "falling", "pull_up", 1.0, "test")
    watcher = LineWatcher(b, spec, lambda evs: seen.append(list(evs)))
    task = asyncio.create_task(watcher.run())
    try:
        await wait_until(lambda: watcher.opened == 1)
        b.line("GPIO17").pulse_train(5, 0.02)
        await wait_until(lambda: sum(map(len, seen)) == 5)
        assert [e.line_seqno for batch in seen for e in batch] == [1, 2, 3, 4, 5]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert b.requests[0].closed  # released on the way out


async def test_watcher_survives_failing_callbacks_and_a_missing_chip(
        wait_until: Any, caplog: pytest.LogCaptureFixture) -> None:
    b = FakeGpioBackend()
    b.remove_chip("gpiochip0")  # not there at start: keep trying, log once
    calls: list[int] = []

    def broken(events: Any) -> None:
        calls.append(len(events))
        raise RuntimeError("bug in a callback")

    spec = LineSpec(None, "GPIO17", "falling", "pull_up", 1.0, "test")
    watcher = LineWatcher(b, spec, broken, retry_initial_s=0.001, retry_max_s=0.005)
    task = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(0.05)
        assert watcher.opened == 0
        assert sum("no GPIO line named 'GPIO17'" in r.getMessage()
                   for r in caplog.records) == 1
        b.restore_chip("gpiochip0")
        await wait_until(lambda: watcher.opened == 1)
        b.line("GPIO17").press(0.05)
        await wait_until(lambda: len(calls) == 1)
        b.line("GPIO17").press(0.05)
        await wait_until(lambda: len(calls) == 2)
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def test_only_the_gpio_backend_imports_gpiod() -> None:
    bridge = Path(__file__).resolve().parent.parent / "bridge"
    pattern = re.compile(r"^\s*(import gpiod|from gpiod)", re.MULTILINE)
    importers = sorted(str(p.relative_to(bridge)) for p in bridge.rglob("*.py")
                       if pattern.search(p.read_text()))
    assert importers == ["gpio/backend.py"]
