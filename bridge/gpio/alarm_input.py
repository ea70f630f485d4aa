"""One alarm input: the meter's normally-closed alarm contact on a GPIO line (no MQTT here).

The meter's alarm output follows its phase-loss detection (bits 8-10 of register 146). It is
normally closed, so by default (``active="open"``) an open contact is a problem: a lost phase, an
unpowered meter, or a broken wire. Wired between the GPIO and ground with a pull-up (internal,
or external with ``bias="disabled"``), an open contact reads high; with ``bias="pull_down"`` the
contact goes to 3.3 V and an open contact reads low.

:class:`AlarmInput` reads the level when the line is (re)opened and follows the kernel-debounced
edges after that, calling ``on_state(problem)`` at start and on every change, and
``on_available(False/True)`` when the GPIO chip goes away and comes back.
:func:`compare_with_meter` checks the contact against register 146 (pure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from bridge.errors import GpioError
from bridge.gpio.backend import Bias, EdgeEvent, GpioBackend, LineRequest, LineSpec, LineWatcher
from bridge.meters.series4000.points import ALARM_BITS, PHASE_LOSS_MASK

log = logging.getLogger(__name__)

PHASE_LOSS_BITS = tuple(b for b in ALARM_BITS if PHASE_LOSS_MASK >> b.bit & 1)


@dataclass(frozen=True, slots=True)
class AlarmInputSettings:
    name: str
    line: str | int
    chip: str | None = None
    #: Which contact state is the problem: "open" for the meter's normally-closed output.
    active: Literal["open", "closed"] = "open"
    debounce_ms: float = 20.0
    bias: Bias = "pull_up"

    def __post_init__(self) -> None:
        if self.active not in ("open", "closed"):
            raise ValueError(f"alarm input {self.name}: active must be open or closed")
        if self.debounce_ms < 0:
            raise ValueError(f"alarm input {self.name}: debounce_ms cannot be negative")

    def spec(self) -> LineSpec:
        return LineSpec(self.chip, self.line, "both", self.bias, self.debounce_ms,
                        f"series4000-bridge {self.name}")


def contact_open(high: bool, bias: Bias) -> bool:
    """Whether the contact is open, from the line level and the wiring the bias implies."""
    return not high if bias == "pull_down" else high


def is_problem(high: bool, settings: AlarmInputSettings) -> bool:
    return contact_open(high, settings.bias) == (settings.active == "open")


@dataclass(frozen=True, slots=True)
class AlarmCheck:
    agree: bool
    contact_alarm: bool
    meter_alarm: bool
    #: Phases the meter reports lost ("a", "b", "c").
    phases: tuple[str, ...]
    message: str | None


def compare_with_meter(problem: bool, alarm_bitmap: int) -> AlarmCheck:
    """Compare the contact with the phase-loss bits of register 146 (mask 0b111 << 8).

    The two are read at different moments, so act on a disagreement only when it persists.
    """
    phases = tuple(b.phase or "" for b in PHASE_LOSS_BITS if alarm_bitmap >> b.bit & 1)
    meter = bool(phases)
    message = None
    if problem and not meter:
        message = ("the alarm contact signals a problem but the meter reports no phase loss "
                   "(register 146): check the wiring, a broken wire looks like an alarm")
    elif meter and not problem:
        message = (f"the meter reports phase loss on {', '.join(p.upper() for p in phases)} "
                   "but the alarm contact does not: the input may be shorted, or 'active' is "
                   "the wrong way round")
    return AlarmCheck(problem == meter, problem, meter, phases, message)


class AlarmInput:
    def __init__(self, settings: AlarmInputSettings, backend: GpioBackend,
                 on_state: Callable[[bool], None], *,
                 on_available: Callable[[bool], None] | None = None,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self.settings = settings
        self.backend = backend
        self._on_state = on_state
        self._on_available = on_available
        self._retry = (retry_initial_s, retry_max_s)
        self._problem: bool | None = None
        self._available = False

    @property
    def problem(self) -> bool | None:
        """The present state; None until the line has been read."""
        return self._problem

    def _report(self, problem: bool, always: bool = False) -> None:
        if problem == self._problem and not always:
            return
        self._problem = problem
        log.log(logging.WARNING if problem else logging.INFO, "alarm input %s: %s",
                self.settings.name, "problem" if problem else "ok")
        try:
            self._on_state(problem)
        except Exception:
            log.exception("alarm input %s: state callback failed", self.settings.name)

    def _available_now(self, available: bool) -> None:
        if available == self._available:
            return
        self._available = available
        if self._on_available is not None:
            try:
                self._on_available(available)
            except Exception:
                log.exception("alarm input %s: availability callback failed",
                              self.settings.name)

    def _opened(self, request: LineRequest) -> None:
        high = request.get_value()
        self._available_now(True)
        self._report(is_problem(high, self.settings), always=True)

    def _lost(self, exc: GpioError) -> None:
        self._available_now(False)

    def handle_events(self, events: Sequence[EdgeEvent]) -> None:
        """Edges alternate after debounce, so the last one gives the present level."""
        if events:
            self._report(is_problem(events[-1].rising, self.settings))

    async def run(self) -> None:
        """Follow the contact until cancelled."""
        watcher = LineWatcher(self.backend, self.settings.spec(), self.handle_events,
                              on_open=self._opened, on_lost=self._lost,
                              retry_initial_s=self._retry[0], retry_max_s=self._retry[1])
        try:
            await watcher.run()
        finally:
            self._available_now(False)

