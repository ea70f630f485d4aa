"""The composition root: builds the bridge from a validated configuration and runs it.

One task per bus (:class:`BusPoller`), one MQTT connection (:class:`MqttLink`), GPIO inputs;
MQTT callbacks never touch a bus, they hand commands to the bus's task through its queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .announce import Announcer
from .config import BusConfig, Config
from .hub import Hub
from .modbus_io import BusClient, Link, SerialLink, TcpLink
from .mqtt_io import MqttLink
from .poller import BusPoller, CommandRequest, MeterRuntime
from .topics import BRIDGE, ONLINE, Topics

log = logging.getLogger(__name__)


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


def link_for(bus: BusConfig) -> Link:
    if bus.transport == "rtu":
        assert bus.device is not None
        return SerialLink(bus.device, bus.baudrate, bus.parity, bus.stopbits)
    assert bus.host is not None
    return TcpLink(bus.host, bus.port, rtu=bus.transport == "rtu_over_tcp",
                   baudrate=bus.baudrate, parity=bus.parity, stopbits=bus.stopbits)


class Service:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.topics = Topics(config.mqtt.base_topic, config.mqtt.discovery_prefix)
        self.unique_prefix = f"series4000_{config.bridge_id}"
        self.hub = Hub()
        self.link = MqttLink(
            config.mqtt, config.client_id, self.topics.bridge_availability,
            subscriptions=[self.topics.ha_status, self.topics.set_wildcard],
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
        self._unknown_logged: set[str] = set()
        #: Command topics whose retained message we are clearing (their echo is not a command).
        self._clearing: set[str] = set()

    # -- discovery ----------------------------------------------------------------------------

    def node_ids(self) -> list[str]:
        return [f"{self.unique_prefix}_{name}" for name in self.poller_of]

    def _meter_components(self, poller: BusPoller, rt: MeterRuntime) -> None:
        self.announcer.set_device(
            poller.device_info(rt),
            [self.topics.bridge_availability, self.topics.availability(rt.name)],
            self.topics.state(rt.name))
        self.announcer.set_part(rt.node_id, "meter", poller.components(rt))  # type: ignore[arg-type]
        self.announcer.announce(rt.node_id)

    # -- MQTT callbacks (never block, never touch a bus) -------------------------------------

    def _on_connect(self) -> None:
        self.hub.republish()

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
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
