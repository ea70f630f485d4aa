"""A GPIO backend without hardware: the interface of :mod:`bridge.gpio.backend`, driven from code.

:class:`FakeGpioBackend` has chips with named lines (by default ``gpiochip0`` with ``GPIO0`` ..
``GPIO27``) and resolves, requests and refuses lines like the real backend. Each request has a
real pollable fd (an eventfd), so :class:`bridge.gpio.backend.LineWatcher` runs unchanged on it.

Tests drive the wiring through :meth:`FakeGpioBackend.line`, which returns a :class:`FakeLine`:
``drive()`` takes a waveform (times in ns, CLOCK_MONOTONIC like the kernel) after which the line
stays stable; ``set_level()``, ``press()`` and ``pulse_train()`` build common waveforms. The
events are worked out the way the kernel's debounce does it: a level counts once it has been
stable for the debounce period, and the event is stamped when it settled (last edge + period).
Per-line sequence numbers count every emitted event; ``drop_next(n)`` loses events the way a full
kernel buffer does (the sequence numbers show the gap), and so does a buffer that overflows
(oldest first). ``remove_chip()`` makes a chip disappear: its requests' fds turn readable and
their reads raise :class:`GpioDeviceGone`; ``restore_chip()`` brings it back for new requests.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence

from bridge.errors import GpioDeviceGone, GpioError
from bridge.gpio.backend import Bias, Edge, EdgeEvent, chip_path, is_offset, no_offset_without_chip

PI_HEADER_LINES = tuple(f"GPIO{n}" for n in range(28))


class FakeLineRequest:
    def __init__(self, line: FakeLine, edge: Edge, bias: Bias, debounce_ms: float,
                 consumer: str, buffer_size: int) -> None:
        self.line = line
        self.edge = edge
        self.bias = bias
        self.debounce_ns = round(debounce_ms * 1_000_000)
        self.consumer = consumer
        self.description = f"{line.chip} line {line.name}"
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.closed = False
        self.gone = False
        self.seqno = 0
        self.reported = line.effective_level(bias)
        self._queue: deque[EdgeEvent] = deque(maxlen=buffer_size)
        self._drop = 0

    def _signal(self) -> None:
        if not self.closed:
            os.eventfd_write(self.fd, 1)

    def emit(self, rising: bool, timestamp_ns: int) -> None:
        self.seqno += 1
        if self._drop:
            self._drop -= 1
            return
        self._queue.append(EdgeEvent(rising, timestamp_ns, self.seqno, self.seqno))
        self._signal()

    def drop_next(self, n: int) -> None:
        self._drop += n

    def set_gone(self) -> None:
        self.gone = True
        self._signal()

    def _check(self) -> None:
        if self.closed:
            raise GpioError(f"{self.description}: the request was released")
        if self.gone:
            raise GpioDeviceGone(f"{self.description}: the GPIO chip is gone "
                                 f"({os.strerror(errno.ENODEV)})")

    def read_events(self) -> list[EdgeEvent]:
        self._check()
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self.fd)
        out = list(self._queue)
        self._queue.clear()
        return out

    def get_value(self) -> bool:
        self._check()
        return self.line.effective_level(self.bias)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)
            if self.line.request is self:
                self.line.request = None


class FakeLine:
    """One line of a fake chip: its wiring (level over time) and the request holding it."""

    def __init__(self, chip: str, offset: int, name: str,
                 clock_ns: Callable[[], int]) -> None:
        self.chip = chip
        self.offset = offset
        self.name = name
        self.request: FakeLineRequest | None = None
        self._clock_ns = clock_ns
        #: Driven level; None = not driven, the bias decides (no bias: an external pull-up).
        self.level: bool | None = None
        self.last_ns = 0

    def effective_level(self, bias: Bias) -> bool:
        return self.level if self.level is not None else bias != "pull_down"

    def _idle(self) -> bool:
        return self.request.bias != "pull_down" if self.request else True

    def _start(self, at_ns: int | None) -> int:
        return at_ns if at_ns is not None else max(self._clock_ns(), self.last_ns + 1)

    def drive(self, transitions: Sequence[tuple[int, bool]]) -> None:
        """Apply a waveform: (time_ns, level) in time order; the line stays at the last level."""
        times = [t for t, _ in transitions]
        if times != sorted(times) or (times and times[0] < self.last_ns):
            raise ValueError(f"{self.name}: transitions must be in time order, after "
                             f"{self.last_ns} ns")
        req = self.request if self.request and not self.request.gone else None
        for i, (t, level) in enumerate(transitions):
            self.level = level
            if req is None:
                continue
            if req.debounce_ns:
                nxt = transitions[i + 1][0] if i + 1 < len(transitions) else None
                if nxt is not None and nxt - t < req.debounce_ns:
                    continue  # not stable for the period: the kernel never reports it
                t += req.debounce_ns
            if level == req.reported:
                continue
            req.reported = level
            if req.edge == "both" or (req.edge == "rising") == level:
                req.emit(level, t)
        if times:
            self.last_ns = times[-1]

    def set_level(self, high: bool, at_ns: int | None = None) -> None:
        self.drive([(self._start(at_ns), high)])

    def press(self, duration_s: float, *, at_ns: int | None = None, bounces: int = 0,
              bounce_s: float = 0.001) -> int:
        """Close the contact for ``duration_s`` (away from the idle level), then open it.

        ``bounces`` adds that many chatter transitions of ``bounce_s`` each after both edges.
        Returns the time of the last transition.
        """
        start = self._start(at_ns)
        idle = self._idle()
        waveform = self._edge(start, not idle, bounces, bounce_s)
        waveform += self._edge(start + round(duration_s * 1e9), idle, bounces, bounce_s)
        self.drive(waveform)
        return waveform[-1][0]

    @staticmethod
    def _edge(t: int, level: bool, bounces: int, bounce_s: float) -> list[tuple[int, bool]]:
        step = round(bounce_s * 1e9)
        out = [(t, level)]
        for k in range(1, 2 * bounces + 1):
            out.append((t + k * step, level if k % 2 == 0 else not level))
        return out

    def pulse_train(self, n: int, period_s: float, *, closure_s: float | None = None,
                    start_ns: int | None = None) -> int:
        """``n`` closures, one every ``period_s``, each ``closure_s`` long (half the period)."""
        start = self._start(start_ns)
        period = round(period_s * 1e9)
        closure = round((closure_s if closure_s is not None else period_s / 2) * 1e9)
        idle = self._idle()
        waveform: list[tuple[int, bool]] = []
        for k in range(n):
            waveform += [(start + k * period, not idle), (start + k * period + closure, idle)]
        self.drive(waveform)
        return waveform[-1][0] if waveform else start

    def drop_next(self, n: int) -> None:
        """The next ``n`` events are lost as from a full kernel buffer (seqno still counts)."""
        if self.request is not None:
            self.request.drop_next(n)


class FakeGpioBackend:
    """Chips and lines in memory, with the interface of :class:`bridge.gpio.backend.GpioBackend`."""

    def __init__(self, chips: Mapping[str, Sequence[str]] | None = None, *,
                 clock_ns: Callable[[], int] = time.monotonic_ns,
                 event_buffer_size: int = 16) -> None:
        layout = chips if chips is not None else {"gpiochip0": PI_HEADER_LINES}
        self.event_buffer_size = event_buffer_size
        self._lines = {chip: [FakeLine(chip, i, name, clock_ns) for i, name in enumerate(names)]
                       for chip, names in layout.items()}
        self._absent: set[str] = set()
        #: Every successful request, in order; tests read it.
        self.requests: list[FakeLineRequest] = []

    def _present(self) -> list[str]:
        return [c for c in self._lines if c not in self._absent]

    def _chip_name(self, chip: str) -> str:
        return os.path.basename(chip_path(chip))

    def line(self, name: str | int, chip: str | None = None) -> FakeLine:
        """A line to drive, by name (or offset with ``chip``), present or not."""
        chips = [self._chip_name(chip)] if chip is not None else list(self._lines)
        for c in chips:
            for line in self._lines.get(c, []):
                if name in (line.name, line.offset):
                    return line
        raise KeyError(f"no fake line {name!r}")

    def request_line(self, chip: str | None, line: str | int, *, edge: Edge, bias: Bias,
                     debounce_ms: float, consumer: str) -> FakeLineRequest:
        if chip is None:
            if is_offset(line):
                raise no_offset_without_chip(line)
            found = [ln for c in self._present() for ln in self._lines[c] if ln.name == line]
            if not found:
                raise GpioError(f"no GPIO line named {line!r} on "
                                f"{', '.join(self._present()) or 'no chips'}")
            target = found[0]
        else:
            name = self._chip_name(chip)
            if name not in self._present():
                raise GpioError(f"{name} line {line}: no such GPIO chip {chip_path(chip)} "
                                f"(present: {', '.join(self._present()) or 'none'})")
            lines = self._lines[name]
            match = [ln for ln in lines
                     if (is_offset(line) and ln.offset == int(line)) or ln.name == line]
            if not match:
                raise GpioError(f"no GPIO line named {line!r} on {chip_path(chip)}")
            target = match[0]
        if target.request is not None and not target.request.gone:
            raise GpioError(f"{target.chip} line {line} is busy "
                            f"(used by {target.request.consumer!r})")
        request = FakeLineRequest(target, edge, bias, debounce_ms, consumer,
                                  self.event_buffer_size)
        target.request = request
        self.requests.append(request)
        return request

    def remove_chip(self, chip: str) -> None:
        """The chip disappears (a removed device): open requests die, lookups fail."""
        name = self._chip_name(chip)
        self._absent.add(name)
        for line in self._lines[name]:
            if line.request is not None:
                line.request.set_gone()
                line.request = None

    def restore_chip(self, chip: str) -> None:
        self._absent.discard(self._chip_name(chip))
