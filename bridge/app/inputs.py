"""GPIO pulse and alarm inputs inside the service: MQTT state, discovery, and the linked meter.

A pulse input linked to a meter (``meter:``) takes its weight from register 144 (and refuses to
count with a configured weight that disagrees), uses the closure time of register 145 for its
plausibility check, cross-checks its count against the meter's pulse counter (registers 43-44),
and appears under the meter's device. Its total starts from the state file; when that file is
missing or corrupt, from the highest of the meter's own counter and the last retained MQTT
state, so a lost file never makes Home Assistant see a lower total.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from bridge.config import AlarmInputConfig, PulseInputConfig
from bridge.core.runtime import MeterRuntime
from bridge.errors import PulseWeightMismatch
from bridge.gpio import store
from bridge.gpio.alarm_input import AlarmInput, AlarmInputSettings, compare_with_meter
from bridge.gpio.backend import GpioBackend
from bridge.gpio.pulse_input import PulseInput, PulseInputSettings
from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.discovery import DeviceInfo, alarm_components, pulse_components
from bridge.homeassistant.entities import Component
from bridge.model.naming import Naming, display_name
from bridge.model.topics import OFFLINE, ONLINE, Topics
from bridge.mqtt.hub import AVAILABILITY, STATE, Hub

log = logging.getLogger(__name__)

#: How long a pulse input without a usable state file waits for the meter's counter and the
#: retained MQTT state before it starts counting.
RESTORE_WAIT_S = 15.0
#: Consecutive disagreements before the alarm contact is reported as not matching the meter.
DISAGREE_AFTER = 2


class _Channel:
    """What pulse and alarm inputs share: a name, a device, a state topic, availability."""

    def __init__(self, name: str, meter: str | None, hub: Hub, topics: Topics,
                 announcer: Announcer, naming: Naming, manufacturer: str,
                 model: str) -> None:
        self.name = name
        self.meter = meter
        self.hub = hub
        self.topics = topics
        self.announcer = announcer
        self.naming = naming
        self.node_id = naming.node_id(meter or name)
        self.manufacturer = manufacturer
        self.model = model

    def announce(self, components: Mapping[str, Component]) -> None:
        if self.meter is None:
            self.announcer.set_device(
                DeviceInfo(self.node_id, display_name(self.name), self.model,
                           self.manufacturer),
                [self.topics.bridge_availability, self.topics.availability(self.name)],
                self.topics.state(self.name))
        self.announcer.set_part(self.node_id, f"input:{self.name}", components)
        self.announcer.announce(self.node_id)

    def available(self, online: bool) -> None:
        self.hub.retain(AVAILABILITY, self.topics.availability(self.name),
                        ONLINE if online else OFFLINE)

    def publish(self, state: dict[str, object]) -> None:
        self.hub.retain(STATE, self.topics.state(self.name), json.dumps(state, sort_keys=True))


class PulseChannel(_Channel):
    def __init__(self, cfg: PulseInputConfig, backend: GpioBackend, state_dir: Path, hub: Hub,
                 topics: Topics, announcer: Announcer, naming: Naming,
                 manufacturer: str) -> None:
        super().__init__(cfg.name, cfg.meter, hub, topics, announcer, naming, manufacturer,
                         "Pulse input")
        self.cfg = cfg
        self.backend = backend
        self.store_path = state_dir / f"pulses_{cfg.name}.json"
        self.input: PulseInput | None = None
        self.difference: int | None = None
        self.refused: str | None = None
        self._meter_weight: int | None = None
        self._meter_pulses: int | None = None
        self._retained_pulses: int | None = None
        #: The broker has delivered the retained messages of our subscriptions (or had none).
        self._retained_checked = False
        self._meter_seen = asyncio.Event()
        self._sources_changed = asyncio.Event()
        #: Set when the meter's pulse weight no longer matches the weight being counted.
        self._weight_changed = asyncio.Event()

    # -- information from the rest of the bridge -------------------------------------------

    def on_meter(self, rt: MeterRuntime, kind: str) -> None:
        """A read of the linked meter (from its bus task)."""
        if rt.setup is None:
            return
        weight = rt.setup.settings.get("pulse_wh")
        if isinstance(weight, int):
            self._meter_weight = weight
            if self.input is not None:
                try:
                    self.input.accept_meter_weight(weight)
                except PulseWeightMismatch:
                    self._weight_changed.set()
            closure = rt.setup.status.get("pulse_closure_ms")
            if self.input is not None and isinstance(closure, int):
                self.input.accept_meter_closure(closure)
        count = rt.values.get("pulse_count")
        if kind == "full" and isinstance(count, (int, float)):
            self._meter_pulses = int(count)
            if self.input is not None:
                self.difference = self.input.cross_check(int(count))
        self._meter_seen.set()
        self._sources_changed.set()

    def on_retained_state(self, payload: bytes) -> None:
        """Our own retained state, read back from the broker once at start."""
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            pulses = json.loads(payload).get("pulses")
            if isinstance(pulses, int) and pulses >= 0:
                self._retained_pulses = pulses
                self._sources_changed.set()

    def retained_window_closed(self) -> None:
        """Called shortly after subscribing: a retained state would have arrived by now."""
        self._retained_checked = True
        self._sources_changed.set()

    def _refuse(self, message: str) -> None:
        if self.refused != message:
            log.error("%s; not counting until the configuration or the meter is corrected",
                      message)
        self.refused = message
        self.available(False)

    # -- running ---------------------------------------------------------------------------

    def _publish_state(self, message: dict[str, float | int | None]) -> None:
        state: dict[str, object] = dict(message)
        if self.meter is not None:
            state["meter_difference"] = self.difference
        self.publish(state)

    def _weight(self) -> int | None:
        """The weight to count with: configured, else the meter's (register 144)."""
        return self.cfg.wh_per_pulse if self.cfg.wh_per_pulse is not None \
            else self._meter_weight

    async def run(self) -> None:
        """Count; start again when the meter's weight changes (the stored total is converted
        so the energy stays the same); stop counting while the weights disagree."""
        while True:
            self._weight_changed.clear()
            weight = self._weight()
            if weight is None:  # nothing configured: wait for the meter's register 144
                self._meter_seen.clear()
                await self._meter_seen.wait()
                continue
            if self._meter_weight is not None and weight != self._meter_weight:
                self._refuse(f"pulse input {self.name}: configured wh_per_pulse {weight} but "
                             f"the meter {self.meter} sends one pulse per "
                             f"{self._meter_weight} Wh (register 144)")
                self._meter_seen.clear()
                await self._meter_seen.wait()
                continue
            self.refused = None
            await self._count(weight)

    async def _count(self, weight: int) -> None:
        settings = PulseInputSettings(
            self.name, self.cfg.chip, self.cfg.line, weight, self.cfg.edge, self.cfg.bias,
            self.cfg.debounce_ms, self.cfg.power_timeout_s)
        self.input = PulseInput(settings, self.backend, self.store_path, self._publish_state)
        if store.load(self.store_path).total is None:
            # No usable file: wait a little for the other sources of the total.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RESTORE_WAIT_S):
                    await self._sources()
            if self._meter_weight is not None and weight != self._meter_weight:
                self.input = None
                return  # the meter disagrees: refused by the caller before any pulse
        start = self.input.restore(meter_pulses=self._meter_pulses,
                                   retained_pulses=self._retained_pulses)
        log.info("pulse input %s: counting %d Wh per pulse from %d pulses (%s)", self.name,
                 weight, start.pulses, start.source)
        self.announce(pulse_components(self.name, self.naming, self.topics,
                                       self.meter is not None))
        self.available(True)
        try:
            async with asyncio.TaskGroup() as counting:
                # Cancelled, the input saves its total; failing, it ends the group.
                counter = counting.create_task(self.input.run())
                await self._weight_changed.wait()
                counter.cancel()
        finally:
            self.available(False)
            self.input = None
        log.info("pulse input %s: the meter's pulse weight changed", self.name)

    async def _sources(self) -> None:
        while (self.meter is not None and self._meter_pulses is None) or \
                (self._retained_pulses is None and not self._retained_checked):
            self._sources_changed.clear()
            await self._sources_changed.wait()


class AlarmChannel(_Channel):
    def __init__(self, cfg: AlarmInputConfig, backend: GpioBackend, hub: Hub, topics: Topics,
                 announcer: Announcer, naming: Naming, manufacturer: str) -> None:
        super().__init__(cfg.name, cfg.meter, hub, topics, announcer, naming, manufacturer,
                         "Alarm input")
        self.cfg = cfg
        settings = AlarmInputSettings(cfg.name, cfg.line, cfg.chip, cfg.active,
                                      cfg.debounce_ms, cfg.bias)
        self.input = AlarmInput(settings, backend, self._changed, on_available=self.available)
        self.agrees: bool | None = None
        self._disagreements = 0

    def _changed(self, problem: bool) -> None:
        self._publish()

    def _publish(self) -> None:
        state: dict[str, object] = {"problem": self.input.problem}
        if self.meter is not None:
            state["agrees_with_meter"] = self.agrees
        self.publish(state)

    def on_meter(self, rt: MeterRuntime, kind: str) -> None:
        if kind != "config" or rt.setup is None or self.input.problem is None:
            return
        check = compare_with_meter(self.input.problem, rt.setup.alarm_bitmap)
        # The contact and register 146 are sampled at different moments: act on a
        # disagreement only when it persists.
        self._disagreements = 0 if check.agree else self._disagreements + 1
        agrees = check.agree or self._disagreements < DISAGREE_AFTER
        if agrees != self.agrees:
            if not agrees and check.message:
                log.warning("alarm input %s: %s", self.name, check.message)
            self.agrees = agrees
            self._publish()

    async def run(self) -> None:
        self.announce(alarm_components(self.name, self.naming, self.topics,
                                       self.meter is not None))
        await self.input.run()


def make_backend() -> GpioBackend:
    from bridge.gpio.backend import RealGpioBackend

    return RealGpioBackend()
