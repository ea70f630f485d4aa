"""The composition root: builds the bridge from a validated configuration and runs it.

One task per bus (:class:`BusPoller`), one MQTT connection (:class:`MqttLink`), GPIO inputs;
MQTT callbacks never touch a bus, they hand commands to the bus's task through its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

from bridge.app.inputs import AlarmChannel, PulseChannel, make_backend
from bridge.config import BusConfig, Config
from bridge.core.poller import BusPoller, CommandRequest, MeterRuntime
from bridge.core.runtime import components, device_info
from bridge.gpio.backend import GpioBackend
from bridge.homeassistant.announce import Announcer
from bridge.modbus.client import BusClient
from bridge.modbus.links import Link, SerialLink, TcpLink
from bridge.model.topics import BRIDGE, ONLINE, Topics
from bridge.mqtt.hub import Hub
from bridge.mqtt.link import MqttLink

log = logging.getLogger(__name__)

#: After subscribing, the broker sends retained messages at once; this is ample for loopback
#: and LAN brokers.
RETAINED_WINDOW_S = 2.0


async def supervise(name: str, run: Callable[[asyncio.Event], Awaitable[None]],
                    stop: asyncio.Event, restart_delay_s: float = 5.0) -> None:
    """Run a task until ``stop``; if it fails, log it and start it again (a bug in one bus
    must not silently end the polling of that bus)."""
    while not stop.is_set():
        try:
            await run(stop)
        except Exception:
            log.exception("%s failed; restarting in %.0f s", name, restart_delay_s)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), restart_delay_s)


def until_stopped(run: Callable[[], Coroutine[Any, Any, None]]
                  ) -> Callable[[asyncio.Event], Awaitable[None]]:
    """Adapt a coroutine that runs until cancelled to one that ends when ``stop`` is set."""
    async def runner(stop: asyncio.Event) -> None:
        task = asyncio.create_task(run())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for t in (task, stopper):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task  # re-raises a failure of the input itself
        stopper.cancel()
    return runner


def _listener(channel: PulseChannel | AlarmChannel) -> Callable[[MeterRuntime, str], None]:
    def listen(rt: MeterRuntime, kind: str) -> None:
        if rt.name == channel.meter:
            channel.on_meter(rt, kind)
    return listen


def link_for(bus: BusConfig) -> Link:
    if bus.transport == "rtu":
        assert bus.device is not None
        return SerialLink(bus.device, bus.baudrate, bus.parity, bus.stopbits)
    assert bus.host is not None
    return TcpLink(bus.host, bus.port, rtu=bus.transport == "rtu_over_tcp",
                   baudrate=bus.baudrate, parity=bus.parity, stopbits=bus.stopbits)


class Service:
    def __init__(self, config: Config, gpio_backend: GpioBackend | None = None) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.base_topic, config.mqtt.discovery_prefix)
        self.unique_prefix = f"series4000_{config.bridge_id}"
        self.hub = Hub()
        self.link = MqttLink(
            config.mqtt, config.client_id, self.topics.bridge_availability,
            subscriptions=[self.topics.ha_status, self.topics.set_wildcard,
                           # Our own retained pulse totals, a fallback for a lost state file.
                           *(self.topics.state(p.name) for p in config.pulse_inputs)],
            on_connect=self._on_connect, on_message=self._on_message)
        self.hub.publisher = self.link
        state_dir = Path(config.state_dir)
        self.announcer = Announcer(self.hub, self.topics, mode=config.mqtt.discovery_mode,
                                   enabled=config.mqtt.discovery,
                                   store=state_dir / "discovery.json")
        self.pollers: list[BusPoller] = []
        self.poller_of: dict[str, BusPoller] = {}
        for bus in config.buses:
            client = BusClient(link_for(bus), timeout=bus.timeout, retries=bus.retries,
                               name=bus.name)
            poller = BusPoller(bus, client, self.hub, self.topics, config.publish,
                               unique_prefix=self.unique_prefix)
            poller.on_components = lambda rt, p=poller: self._meter_components(p, rt)
            self.pollers.append(poller)
            for meter in bus.meters:
                self.poller_of[meter.name] = poller
        self.ha_births = 0
        self._provisional_devices()
        backend = gpio_backend
        if backend is None and (config.pulse_inputs or config.alarm_inputs):
            backend = make_backend()
        self.pulse_channels = [
            PulseChannel(p, backend, state_dir, self.hub, self.topics, self.announcer,
                         self.unique_prefix) for p in config.pulse_inputs if backend]
        self.alarm_channels = [
            AlarmChannel(a, backend, self.hub, self.topics, self.announcer, self.unique_prefix)
            for a in config.alarm_inputs if backend]
        self.channels: list[PulseChannel | AlarmChannel] = [*self.pulse_channels,
                                                             *self.alarm_channels]
        for channel in self.channels:
            if channel.meter is not None:
                self.poller_of[channel.meter].listeners.append(_listener(channel))
        self._unknown_logged: set[str] = set()
        #: Command topics whose retained message we are clearing (their echo is not a command).
        self._clearing: set[str] = set()

    # -- discovery ----------------------------------------------------------------------------

    def node_ids(self) -> list[str]:
        own = [p.name for p in self.config.pulse_inputs if p.meter is None]
        own += [a.name for a in self.config.alarm_inputs if a.meter is None]
        return [f"{self.unique_prefix}_{name}" for name in [*self.poller_of, *own]]

    def _provisional_devices(self) -> None:
        """Every meter's device exists from the start, so that inputs linked to a meter can
        be announced before the meter has been read (its firmware comes later)."""
        for poller in self.pollers:
            for rt in poller.meters.values():
                self.announcer.set_device(
                    device_info(rt),
                    [self.topics.bridge_availability, self.topics.availability(rt.name)],
                    self.topics.state(rt.name))

    def _meter_components(self, poller: BusPoller, rt: MeterRuntime) -> None:
        self.announcer.set_device(
            device_info(rt),
            [self.topics.bridge_availability, self.topics.availability(rt.name)],
            self.topics.state(rt.name))
        self.announcer.set_part(rt.node_id, "meter",
                                components(rt, self.unique_prefix, self.topics))
        self.announcer.announce(rt.node_id)

    # -- MQTT callbacks (never block, never touch a bus) -------------------------------------

    def _on_connect(self) -> None:
        self.hub.republish()
        loop = asyncio.get_running_loop()
        for channel in self.pulse_channels:
            loop.call_later(RETAINED_WINDOW_S, channel.retained_window_closed)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain and not topic.endswith("/availability"):
            for channel in self.pulse_channels:
                if topic == self.topics.state(channel.name):
                    channel.on_retained_state(payload)
                    return
        if topic == self.topics.ha_status:
            if payload.strip().lower() == b"online":
                # Home Assistant (re)started: it needs the states and availability again.
                self.ha_births += 1
                log.info("Home Assistant is online: republishing")
                self.hub.republish()
            return
        parsed = self.topics.parse_set(topic)
        if parsed is None:
            return
        name, setting = parsed
        if not payload and topic in self._clearing:
            self._clearing.discard(topic)  # the echo of our own clearing of a retained command
            return
        if name == BRIDGE:
            if setting == "resend_discovery":
                count = self.announcer.resend()
                log.info("discovery republished (%d messages)", count)
            return
        self.handle_command(name, setting, payload, retain)

    def handle_command(self, name: str, setting: str, payload: bytes, retain: bool) -> None:
        """Hand a command to the task that owns the meter's bus (never touches the bus)."""
        poller = self.poller_of.get(name)
        if poller is None:
            if name not in self._unknown_logged:
                self._unknown_logged.add(name)
                log.warning("command for unknown meter %r ignored", name[:64])
            return
        requested = payload[:64].decode("utf-8", "replace")
        if retain:
            # A retained command would be replayed at every restart of the bridge: refuse it
            # and clear it from the broker.
            topic = self.topics.set(name, setting)
            if len(self._clearing) < 1000:
                self._clearing.add(topic)
            self.hub.clear(topic)
            poller.publish_result(name, setting, requested, False, None,
                                  "retained commands are ignored; publish without retain")
            return
        if not poller.submit(CommandRequest(name, setting, payload)):
            poller.publish_result(name, setting, requested, False, None,
                                  "too many commands queued; try again")

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self.announcer.forget_others(self.node_ids())
        tasks = [asyncio.create_task(supervise(f"bus {p.cfg.name}", p.run, stop))
                 for p in self.pollers]
        for channel in self.channels:
            tasks.append(asyncio.create_task(
                supervise(f"input {channel.name}", until_stopped(channel.run), stop)))
        link_task = asyncio.create_task(self.link.run(stop), name="mqtt")
        try:
            await stop.wait()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            # The MQTT task ends last: it sends what is queued, then `offline`.
            await asyncio.wait_for(link_task, 10)

    def status(self) -> dict[str, Any]:
        return {
            "mqtt_connected": self.link.connected,
            "meters": {rt.name: rt.online for p in self.pollers for rt in p.meters.values()},
            "bridge": ONLINE if self.link.connected else "offline",
        }


def install_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
