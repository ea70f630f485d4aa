"""The GPIO edge: line requests through libgpiod v2, edge events into the asyncio loop.

Only this module imports ``gpiod`` (the official libgpiod v2 bindings). Everything else works
against the small interface below, which :class:`bridge.gpio.fake.FakeGpioBackend` implements too:

``GpioBackend.request_line(chip, line, *, edge, bias, debounce_ms, consumer) -> LineRequest``
    Request one input line with kernel edge detection, bias and debounce. ``chip=None`` finds the
    line by name (``"GPIO17"``) on every ``/dev/gpiochip*`` (the Raspberry Pi 5 header is
    ``gpiochip4`` on early kernels and ``gpiochip0`` on current ones); a numeric offset needs an
    explicit chip. Raises :class:`GpioError` naming the chip and line when it is missing or busy.
``LineRequest``
    ``fd`` (pollable), ``read_events()`` (non-blocking drain of :class:`EdgeEvent`),
    ``get_value()`` (True = the line is high; no active-low inversion is configured), ``close()``.
    Reads raise :class:`GpioDeviceGone` once the chip has disappeared.
:class:`LineWatcher`
    Keeps a request open, plugs its fd into ``loop.add_reader`` and hands every batch of events
    to a callback. When the chip disappears it logs, closes, and reopens with back-off; it never
    raises out of ``run()`` except for cancellation.

Event timestamps come from the kernel's CLOCK_MONOTONIC, the clock of ``time.monotonic_ns()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import glob
import logging
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal, Protocol

from bridge.errors import GpioDeviceGone, GpioError

if TYPE_CHECKING:
    import gpiod

log = logging.getLogger(__name__)

Edge = Literal["falling", "rising", "both"]
Bias = Literal["pull_up", "pull_down", "disabled"]

#: Events the kernel keeps for a line before it drops the oldest (its default is 16).
EVENT_BUFFER_SIZE = 256


@dataclass(frozen=True, slots=True)
class EdgeEvent:
    """One debounced edge as the kernel reported it."""

    rising: bool
    #: Kernel timestamp (CLOCK_MONOTONIC, ns). With debounce it is taken when the level settled.
    timestamp_ns: int
    #: Per-line sequence number, 1 for the first event of a request; a gap = dropped events.
    line_seqno: int
    #: Sequence number across the lines of the request (equal to ``line_seqno`` for one line).
    global_seqno: int


class LineRequest(Protocol):
    @property
    def fd(self) -> int: ...

    @property
    def description(self) -> str: ...

    def read_events(self) -> list[EdgeEvent]: ...

    def get_value(self) -> bool: ...

    def close(self) -> None: ...


class GpioBackend(Protocol):
    def request_line(self, chip: str | None, line: str | int, *, edge: Edge, bias: Bias,
                     debounce_ms: float, consumer: str) -> LineRequest: ...


@dataclass(frozen=True, slots=True)
class LineSpec:
    """Everything needed to request one input line."""

    chip: str | None
    line: str | int
    edge: Edge
    bias: Bias
    debounce_ms: float
    consumer: str

    def describe(self) -> str:
        return f"{self.chip or 'any chip'} line {self.line}"

    def open(self, backend: GpioBackend) -> LineRequest:
        return backend.request_line(self.chip, self.line, edge=self.edge, bias=self.bias,
                                    debounce_ms=self.debounce_ms, consumer=self.consumer)


def chip_path(chip: str) -> str:
    """``gpiochip0`` -> ``/dev/gpiochip0``; a path stays as it is."""
    return chip if chip.startswith("/") else f"/dev/{chip}"


def is_offset(line: str | int) -> bool:
    return isinstance(line, int) or line.isdigit()


def chip_sort_key(path: str) -> tuple[str, int]:
    match = re.search(r"(\d+)$", path)
    return (path[:match.start()], int(match.group(1))) if match else (path, -1)


def no_offset_without_chip(line: str | int) -> GpioError:
    return GpioError(f"line {line}: a numeric line offset needs an explicit chip "
                     "(chip: gpiochip0), or give the line's name (line: GPIO17)")


# ---------------------------------------------------------------------------------------------
# libgpiod


class RealLineRequest:
    """One requested line of a ``gpiod.LineRequest``."""

    def __init__(self, request: gpiod.LineRequest, offset: int, description: str) -> None:
        self._request = request
        self._offset = offset
        self.description = description
        self.fd: int = request.fd

    def _gone(self, exc: Exception) -> GpioDeviceGone:
        return GpioDeviceGone(f"{self.description}: the GPIO chip is gone ({exc})")

    def read_events(self) -> list[EdgeEvent]:
        import gpiod

        out: list[EdgeEvent] = []
        try:
            for _ in range(64):  # bounded: a line that never stops must not starve the loop
                if not self._request.wait_edge_events(0):
                    break
                batch = self._request.read_edge_events()
                if not batch:  # readable but empty: the kernel signals a removed device
                    raise self._gone(OSError(errno.ENODEV, os.strerror(errno.ENODEV)))
                out.extend(EdgeEvent(
                    rising=ev.event_type is gpiod.EdgeEvent.Type.RISING_EDGE,
                    timestamp_ns=ev.timestamp_ns, line_seqno=ev.line_seqno,
                    global_seqno=ev.global_seqno) for ev in batch)
        except (OSError, gpiod.RequestReleasedError) as exc:
            raise self._gone(exc) from exc
        return out

    def get_value(self) -> bool:
        import gpiod

        try:
            return self._request.get_value(self._offset) is gpiod.line.Value.ACTIVE
        except (OSError, gpiod.RequestReleasedError) as exc:
            raise self._gone(exc) from exc

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._request:
                self._request.release()


class RealGpioBackend:
    """Line requests on ``/dev/gpiochip*`` through libgpiod v2."""

    def __init__(self, event_buffer_size: int = EVENT_BUFFER_SIZE) -> None:
        self.event_buffer_size = event_buffer_size

    @staticmethod
    def chips() -> list[str]:
        return sorted(glob.glob("/dev/gpiochip*"), key=chip_sort_key)

    def find_line(self, name: str) -> tuple[str, int]:
        """The chip path and offset of the line called ``name`` (first chip that has it)."""
        import gpiod

        chips = self.chips()
        if not chips:
            raise GpioError(f"line {name}: no GPIO chips (/dev/gpiochip*) on this machine; "
                            "inside a container the device must be passed through")
        denied: list[str] = []
        for path in chips:
            try:
                with gpiod.Chip(path) as chip:
                    return path, chip.line_offset_from_id(name)
            except PermissionError:
                denied.append(path)
            except (OSError, ValueError):
                continue
        if denied:
            raise GpioError(f"line {name}: permission denied opening {', '.join(denied)} "
                            "(add the user to the 'gpio' group)")
        raise GpioError(f"no GPIO line named {name!r} on {', '.join(chips)}")

    def request_line(self, chip: str | None, line: str | int, *, edge: Edge, bias: Bias,
                     debounce_ms: float, consumer: str) -> RealLineRequest:
        import gpiod
        from gpiod.line import Bias as GBias
        from gpiod.line import Direction
        from gpiod.line import Edge as GEdge

        if chip is None:
            if is_offset(line):
                raise no_offset_without_chip(line)
            path, offset = self.find_line(str(line))
        else:
            path, offset = chip_path(chip), -1
        where = f"{os.path.basename(path)} line {line}"
        if os.path.exists(path) and not gpiod.is_gpiochip_device(path):
            raise GpioError(f"{where}: {path} is not a GPIO chip")
        settings = gpiod.LineSettings(
            direction=Direction.INPUT,
            edge_detection={"falling": GEdge.FALLING, "rising": GEdge.RISING,
                            "both": GEdge.BOTH}[edge],
            bias={"pull_up": GBias.PULL_UP, "pull_down": GBias.PULL_DOWN,
                  "disabled": GBias.DISABLED}[bias],
            debounce_period=timedelta(milliseconds=debounce_ms))
        try:
            with gpiod.Chip(path) as c:
                if offset < 0:
                    offset = c.line_offset_from_id(line)
                info = c.get_line_info(offset)
                if info.used:
                    raise GpioError(f"{where} is busy (used by {info.consumer or 'the kernel'!r})")
                request = c.request_lines({offset: settings}, consumer=consumer,
                                          event_buffer_size=self.event_buffer_size)
        except FileNotFoundError as exc:
            present = ", ".join(os.path.basename(p) for p in self.chips()) or "none"
            raise GpioError(f"{where}: no such GPIO chip {path} (present: {present})") from exc
        except PermissionError as exc:
            raise GpioError(f"{where}: permission denied on {path} "
                            "(add the user to the 'gpio' group)") from exc
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise GpioError(f"no GPIO line named {line!r} on {path}") from exc
            if exc.errno == errno.EBUSY:
                raise GpioError(f"{where} is busy (requested by another program)") from exc
            raise GpioError(f"{where}: cannot request the line ({exc.strerror or exc})") from exc
        except ValueError as exc:
            raise GpioError(f"{where}: no such line on {path} ({exc})") from exc
        log.info("%s: requested (offset %d, %s edges, %s, debounce %g ms)",
                 where, offset, edge, bias, debounce_ms)
        return RealLineRequest(request, offset, where)


# ---------------------------------------------------------------------------------------------
# The asyncio side


class LineWatcher:
    """Keeps one line requested and delivers its events; survives the chip going away."""

    def __init__(self, backend: GpioBackend, spec: LineSpec,
                 on_events: Callable[[Sequence[EdgeEvent]], None], *,
                 on_open: Callable[[LineRequest], None] | None = None,
                 on_lost: Callable[[GpioError], None] | None = None,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self.backend = backend
        self.spec = spec
        self._on_events = on_events
        self._on_open = on_open
        self._on_lost = on_lost
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        #: How many times the line was (re)opened; tests and diagnostics read it.
        self.opened = 0

    async def run(self) -> None:
        """Run until cancelled; the request is closed on the way out."""
        delay = self.retry_initial_s
        failing = False
        while True:
            try:
                request = self.spec.open(self.backend)
            except GpioError as exc:
                if not failing:
                    log.error("%s; retrying (every %g s at most)", exc, self.retry_max_s)
                    self._lost(exc)
                failing = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            if failing:
                log.info("%s: line available again", request.description)
            failing = False
            delay = self.retry_initial_s
            self.opened += 1
            try:
                lost = await self._serve(request)
            finally:
                request.close()
            log.error("%s; reopening", lost)
            self._lost(lost)
            await asyncio.sleep(delay)

    def _lost(self, exc: GpioError) -> None:
        if self._on_lost is not None:
            try:
                self._on_lost(exc)
            except Exception:
                log.exception("%s: on_lost callback failed", self.spec.describe())

    async def _serve(self, request: LineRequest) -> GpioError:
        loop = asyncio.get_running_loop()
        gone: asyncio.Future[GpioError] = loop.create_future()

        def readable() -> None:
            if gone.done():
                return
            try:
                events = request.read_events()
            except GpioError as exc:
                gone.set_result(exc)
                return
            if events:
                try:
                    self._on_events(events)
                except Exception:
                    log.exception("%s: event callback failed", request.description)

        if self._on_open is not None:
            try:
                self._on_open(request)
            except GpioError as exc:
                return exc
            except Exception:
                log.exception("%s: open callback failed", request.description)
        loop.add_reader(request.fd, readable)
        try:
            return await gone
        finally:
            loop.remove_reader(request.fd)
