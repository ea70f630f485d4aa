"""One pulse input: GPIO edges to a durable total, energy and power (no MQTT here).

:class:`PulseInput` restores the count (:meth:`PulseInput.restore`, done by :meth:`run` if the
caller did not), keeps the line requested through :class:`bridge.gpio.backend.LineWatcher`,
counts with :mod:`bridge.gpio.pulses`, saves with :mod:`bridge.gpio.store` (at most every
``save_interval_s``, and at shutdown) and calls ``on_state({"energy_kwh", "power_w",
"pulses"})`` on every pulse, every ``publish_interval_s``, and as soon as the power has fallen
to 0. ``power_w`` is None until two pulses have been seen. ``on_state`` runs in the event loop
(from the line's reader callback and the one-second tick): it must not block; hand the message
to the MQTT owner's queue.

Saving is synchronous: a small file written and fsync'd at most once per ``save_interval_s``,
which keeps the bound "a crash loses at most one second of pulses" exact on the loop's clock.

Checks against the meter: :meth:`PulseInput.accept_meter_weight` (register 144) refuses a
configured weight that disagrees; :meth:`PulseInput.accept_meter_closure` (register 145) tightens
the plausibility check; :meth:`PulseInput.cross_check` compares the count with the meter's own
counter (registers 43-44).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bridge.errors import GpioError, PulseWeightMismatch, StoreError
from bridge.gpio import pulses as pm
from bridge.gpio import store
from bridge.gpio.backend import Bias, EdgeEvent, GpioBackend, LineRequest, LineSpec, LineWatcher

log = logging.getLogger(__name__)

PulseStateMessage = dict[str, float | int | None]


@dataclass(frozen=True, slots=True)
class PulseInputSettings:
    name: str
    chip: str | None
    line: str | int
    wh_per_pulse: float
    edge: Literal["falling", "rising"] = "falling"
    bias: Bias = "pull_up"
    debounce_ms: float = 10.0
    power_timeout_s: float = 300.0
    #: The meter's closure time (register 145) when known; see PulseInput.accept_meter_closure.
    closure_ms: float | None = None

    def __post_init__(self) -> None:
        if self.edge not in ("falling", "rising"):
            raise ValueError(f"pulse input {self.name}: edge must be falling or rising")
        if self.debounce_ms < 0:
            raise ValueError(f"pulse input {self.name}: debounce_ms cannot be negative")
        self.params()  # validates the weight and the timeout

    def params(self) -> pm.PulseParams:
        return pm.PulseParams(self.wh_per_pulse, self.power_timeout_s, self.closure_ms)

    def spec(self) -> LineSpec:
        return LineSpec(self.chip, self.line, self.edge, self.bias, self.debounce_ms,
                        f"series4000-bridge {self.name}")


class PulseInput:
    def __init__(self, settings: PulseInputSettings, backend: GpioBackend, store_path: Path,
                 on_state: Callable[[PulseStateMessage], None], *,
                 clock_ns: Callable[[], int] = time.monotonic_ns,
                 publish_interval_s: float = 5.0, save_interval_s: float = 1.0,
                 retry_initial_s: float = 1.0, retry_max_s: float = 30.0) -> None:
        self.settings = settings
        self.backend = backend
        self.store_path = store_path
        self.publish_interval_s = publish_interval_s
        self.save_interval_s = save_interval_s
        self._on_state = on_state
        self._clock_ns = clock_ns
        self._params = settings.params()
        self._retry = (retry_initial_s, retry_max_s)
        self._counter = pm.start(0, clock_ns())
        self._restored = False
        self._dirty = False
        self._save_failing = False
        self._last_save_ns: int | None = None
        self._last_publish_ns: int | None = None
        self._last_power: float | None = None
        self._baseline: tuple[int, int] | None = None

    # -- count and state ---------------------------------------------------------------------

    @property
    def counter(self) -> pm.PulseState:
        return self._counter

    @property
    def pulses(self) -> int:
        return self._counter.pulses

    def state(self) -> PulseStateMessage:
        power = pm.power_w(self._counter, self._params, self._clock_ns())
        return {"energy_kwh": pm.energy_kwh(self.pulses, self.settings.wh_per_pulse),
                "power_w": None if power is None else round(power, 1),
                "pulses": self.pulses}

    def restore(self, *, meter_pulses: int | None = None,
                retained_pulses: int | None = None) -> store.StartValue:
        """Load the stored total and start from the highest trustworthy source (once)."""
        if self._restored:
            raise RuntimeError(f"pulse input {self.settings.name}: already restored")
        loaded = store.load(self.store_path)
        stored = None
        if loaded.total is not None:
            stored = loaded.total.pulses
            if loaded.total.wh_per_pulse != self.settings.wh_per_pulse:
                stored = store.pulses_for_weight(stored, loaded.total.wh_per_pulse,
                                                 self.settings.wh_per_pulse)
                log.warning("pulse input %s: %s was counted at %g Wh per pulse, now %g: "
                            "converted to %d pulses", self.settings.name, self.store_path,
                            loaded.total.wh_per_pulse, self.settings.wh_per_pulse, stored)
        start = store.start_value(stored, meter_pulses, retained_pulses)
        if start.warning:
            log.warning("pulse input %s: %s", self.settings.name, start.warning)
        self._counter = pm.start(start.pulses, self._clock_ns())
        self._dirty = start.pulses != (loaded.total.pulses if loaded.total else None)
        self._restored = True
        return start

    def handle_events(self, events: Sequence[EdgeEvent]) -> None:
        """Count a batch of edges from the line; save when due; publish."""
        result = pm.count(self._counter, events, self._params)
        self._counter = result.state
        for rejected in result.rejected:
            log.warning("pulse input %s: %s", self.settings.name, rejected.describe())
        if result.dropped:
            log.warning("pulse input %s: the kernel dropped %d events; counted from their "
                        "sequence numbers", self.settings.name, result.dropped)
        if result.added:
            self._dirty = True
            now = self._clock_ns()
            self._save_if_due(now)
            self._publish(now)

    def tick(self) -> None:
        """Periodic work: save when due; publish when due or when power has fallen to 0."""
        now = self._clock_ns()
        self._save_if_due(now)
        power = pm.power_w(self._counter, self._params, now)
        due = (self._last_publish_ns is None
               or now - self._last_publish_ns >= self.publish_interval_s * 1e9)
        if due or (power == 0.0 and self._last_power != 0.0):
            self._publish(now)

    def _publish(self, now: int) -> None:
        message = self.state()
        self._last_publish_ns = now
        power = message["power_w"]
        self._last_power = None if power is None else float(power)
        try:
            self._on_state(message)
        except Exception:
            log.exception("pulse input %s: state callback failed", self.settings.name)

    # -- persistence ---------------------------------------------------------------------------

    def _save_if_due(self, now: int) -> None:
        if store.save_due(self._dirty, self._last_save_ns, now, self.save_interval_s):
            self.save()

    def save(self) -> None:
        """Write the total now if it changed (also called at shutdown)."""
        if not self._dirty:
            return
        self._last_save_ns = self._clock_ns()
        try:
            store.save(self.store_path, store.StoredTotal(self.pulses,
                                                          self.settings.wh_per_pulse))
        except StoreError as exc:
            if not self._save_failing:
                log.error("pulse input %s: %s", self.settings.name, exc)
            self._save_failing = True
            return
        if self._save_failing:
            log.info("pulse input %s: saving works again", self.settings.name)
        self._save_failing = False
        self._dirty = False

    # -- the meter's view ------------------------------------------------------------------------

    def accept_meter_weight(self, meter_wh: int) -> None:
        """Check the weight read from register 144; PulseWeightMismatch if it disagrees."""
        problem = pm.weight_problem(self.settings.wh_per_pulse, meter_wh)
        if problem:
            raise PulseWeightMismatch(f"pulse input {self.settings.name}: {problem}")

    def accept_meter_closure(self, closure_ms: int) -> str | None:
        """Use the closure time read from register 145; returns (and logs) a debounce problem."""
        self._params = replace(self._params, closure_ms=float(closure_ms))
        problem = pm.debounce_problem(self.settings.debounce_ms, closure_ms)
        if problem:
            log.error("pulse input %s: %s", self.settings.name, problem)
        return problem

    def cross_check(self, meter_count: int) -> int | None:
        """Pulses counted here minus pulses the meter counted (registers 43-44) since the first
        call: positive = extra pulses (noise), negative = missed ones. None when a new baseline
        was taken (first call, or the meter's counter was reset)."""
        check = (pm.pulse_check(self._baseline, self.pulses, meter_count)
                 if self._baseline is not None else None)
        if check is None:
            self._baseline = (self.pulses, meter_count)
            return None
        return check.difference

    # -- the loop --------------------------------------------------------------------------------

    def _opened(self, request: LineRequest) -> None:
        self._counter = pm.reopened(self._counter, self._clock_ns())

    def _lost(self, exc: GpioError) -> None:
        self.save()

    async def run(self) -> None:
        """Count until cancelled; the total is saved on the way out."""
        if not self._restored:
            self.restore()
        self._publish(self._clock_ns())
        watcher = LineWatcher(self.backend, self.settings.spec(), self.handle_events,
                              on_open=self._opened, on_lost=self._lost,
                              retry_initial_s=self._retry[0], retry_max_s=self._retry[1])
        task = asyncio.create_task(watcher.run(), name=f"pulse input {self.settings.name}")
        try:
            while True:
                await asyncio.sleep(self.save_interval_s)
                self.tick()
                if task.done():  # the watcher only ends on a bug: let it surface
                    await task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.save()
