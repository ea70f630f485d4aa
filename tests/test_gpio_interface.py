"""The line interface, the same tests on the fake backend and on gpio-sim (real gpiod).

The gpio-sim variant needs root and the gpio-sim kernel module; elsewhere it is skipped with the
reason. Waiting is bounded but generous: nothing here asserts on how fast the kernel is.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from bridge.errors import GpioError
from bridge.gpio.backend import EdgeEvent, LineRequest, LineSpec, LineWatcher


def request(rig: Any, *, chip: str | None = None, line: str | int | None = None,
            edge: str = "both", debounce_ms: float = 0.0, consumer: str = "test") -> LineRequest:
    result: LineRequest = rig.backend.request_line(
        chip, rig.line_name if line is None else line, edge=edge, bias="pull_up",
        debounce_ms=debounce_ms, consumer=consumer)
    return result


async def collect(req: LineRequest, n: int, timeout: float = 10.0) -> list[EdgeEvent]:
    """Events from the request's fd through the loop, until ``n`` have arrived."""
    loop = asyncio.get_running_loop()
    events: list[EdgeEvent] = []
    enough = asyncio.Event()

    def readable() -> None:
        events.extend(req.read_events())
        if len(events) >= n:
            enough.set()

    loop.add_reader(req.fd, readable)
    try:
        await asyncio.wait_for(enough.wait(), timeout)
    finally:
        loop.remove_reader(req.fd)
    return events


async def settle(rig: Any) -> None:
    """Give the real kernel time to deliver anything still pending (the fake is synchronous)."""
    if rig.kind == "gpiosim":
        await asyncio.sleep(0.3)


async def test_line_found_by_name_and_level_follows_the_wiring(line_rig: Any) -> None:
    rig = line_rig
    req = request(rig)
    try:
        rig.pull(True)
        await settle(rig)
        assert req.get_value() is True
        rig.pull(False)
        await settle(rig)
        assert req.get_value() is False
        assert rig.line_name in req.description
    finally:
        req.close()


def test_numeric_offset_needs_an_explicit_chip(line_rig: Any) -> None:
    rig = line_rig
    with pytest.raises(GpioError, match="explicit chip"):
        request(rig, line=rig.offset)
    req = request(rig, chip=rig.chip, line=rig.offset)
    req.close()


def test_unknown_line_is_named_in_the_error(line_rig: Any) -> None:
    with pytest.raises(GpioError, match="NO_SUCH_LINE"):
        request(line_rig, line="NO_SUCH_LINE")


def test_unknown_chip_is_named_in_the_error(line_rig: Any) -> None:
    with pytest.raises(GpioError, match="gpiochip99"):
        request(line_rig, chip="gpiochip99", line=0)


def test_busy_line_is_refused_with_its_name(line_rig: Any) -> None:
    rig = line_rig
    first = request(rig, consumer="first")
    try:
        with pytest.raises(GpioError, match="busy") as info:
            request(rig)
        assert str(rig.line_name) in str(info.value)
    finally:
        first.close()
    request(rig).close()  # free again once released


async def test_edges_carry_direction_sequence_and_monotonic_timestamps(line_rig: Any) -> None:
    rig = line_rig
    rig.pull(True)
    await settle(rig)
    req = request(rig)
    try:
        before = time.monotonic_ns()
        for level in (False, True, False):
            rig.pull(level)
        events = await collect(req, 3)
    finally:
        req.close()
    assert [e.rising for e in events] == [False, True, False]
    assert [e.line_seqno for e in events] == [1, 2, 3]
    stamps = [e.timestamp_ns for e in events]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= time.monotonic_ns() + 10**9


async def test_falling_edge_only(line_rig: Any) -> None:
    rig = line_rig
    rig.pull(True)
    await settle(rig)
    req = request(rig, edge="falling")
    try:
        for _ in range(3):
            rig.pull(False)
            rig.pull(True)
        events = await collect(req, 3)
    finally:
        req.close()
    assert all(not e.rising for e in events)
    assert [e.line_seqno for e in events] == [1, 2, 3]


async def test_kernel_debounce_swallows_chatter(line_rig: Any) -> None:
    rig = line_rig
    rig.pull(True)
    await settle(rig)
    req = request(rig, debounce_ms=50)
    try:
        rig.chatter([False, True, False, True, False])
        events = await collect(req, 1)
        await settle(rig)
        events += req.read_events()
    finally:
        req.close()
    assert [(e.rising, e.line_seqno) for e in events] == [(False, 1)]


async def test_watcher_reopens_after_the_chip_comes_back(line_rig: Any, wait_until: Any) -> None:
    rig = line_rig
    rig.pull(True)
    spec = LineSpec(None, rig.line_name, "falling", "pull_up", 0.0, "test")
    seen: list[EdgeEvent] = []
    lost: list[GpioError] = []
    watcher = LineWatcher(rig.backend, spec, seen.extend, on_lost=lost.append,
                          retry_initial_s=0.01, retry_max_s=0.05)
    task = asyncio.create_task(watcher.run())
    try:
        await wait_until(lambda: watcher.opened == 1, what="first open")
        rig.pull(False)
        await wait_until(lambda: len(seen) == 1, what="first event")
        rig.remove_chip()
        await wait_until(lambda: bool(lost), what="loss noticed")
        assert "gone" in str(lost[0]) or "no GPIO line" in str(lost[0])
        rig.restore_chip()
        await wait_until(lambda: watcher.opened == 2, what="reopen")
        rig.pull(True)
        rig.pull(False)
        await wait_until(lambda: len(seen) == 2, what="event after reopen")
        assert seen[1].line_seqno == 1  # a new request: its own sequence
        assert not task.done()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def real_backend() -> Any:
    pytest.importorskip("gpiod", reason="the gpiod bindings are not installed")
    from bridge.gpio.backend import RealGpioBackend

    return RealGpioBackend()


@pytest.mark.parametrize(("chip", "line", "message"), [
    (None, 17, "a numeric line offset needs an explicit chip"),
    (None, "17", "a numeric line offset needs an explicit chip"),
    ("gpiochip99", 3, "gpiochip99 line 3: no such GPIO chip /dev/gpiochip99"),
    ("/dev/null", 1, "null line 1: /dev/null is not a GPIO chip"),
])
def test_real_backend_errors_name_chip_and_line(chip: str | None, line: str | int,
                                                message: str) -> None:
    with pytest.raises(GpioError, match=message):
        real_backend().request_line(chip, line, edge="falling", bias="pull_up",
                                    debounce_ms=10, consumer="test")


def test_real_backend_without_any_chip(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = real_backend()
    monkeypatch.setattr(type(backend), "chips", staticmethod(lambda: []))
    with pytest.raises(GpioError, match=r"line GPIO17: no GPIO chips \(/dev/gpiochip\*\)"):
        backend.request_line(None, "GPIO17", edge="falling", bias="pull_up", debounce_ms=10,
                             consumer="test")
