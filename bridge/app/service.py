"""The composition root: builds the bridge from a validated configuration and runs it.

One task per bus (:class:`BusPoller`), one MQTT connection (:class:`MqttLink`), GPIO inputs,
all in one task group: stopping the service cancels them, and the MQTT task ends last (it sends
what is queued, then ``offline``). MQTT callbacks never touch a bus, they hand commands to the
bus's task through its queue.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from bridge.app.bridge_report import BridgeReport
from bridge.app.inputs import AlarmChannel, PulseChannel, make_backend
from bridge.app.status_board import InputInfo, StatusBoard
from bridge.config import BusConfig, Config
from bridge.core.budget import planned_report
from bridge.core.commands import publish_result
from bridge.core.poller import BusPoller, CommandRequest, MeterRuntime
from bridge.core.share import MeterShare
from bridge.gpio.backend import GpioBackend
from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.meters import MeterDevices, meter_context
from bridge.meters.profile import MeterProfile
from bridge.meters.series4000 import PROFILE
from bridge.modbus.client import BusClient
from bridge.modbus.links import link_for
from bridge.modbus.server import ServerLimits, ShareServer
from bridge.model.naming import Naming
from bridge.model.topics import BRIDGE, ONLINE, Topics
from bridge.mqtt.hub import Hub
from bridge.mqtt.link import MqttLink
from bridge.web.server import WebServer

log = logging.getLogger(__name__)

#: After subscribing, the broker sends retained messages at once; this is ample for loopback
#: and LAN brokers.
RETAINED_WINDOW_S = 2.0
#: A failed task (a bug, not a meter's error: those are handled inside) starts again after this.
RESTART_DELAY_S = 5.0
#: How long after each connection the retained discovery messages are read back.
DISCOVERY_READ_BACK_S = 5.0
#: How often a discovery record that could not be written is tried again.
RECORD_RETRY_S = 60.0


async def supervise(name: str, run: Callable[[], Awaitable[None]],
                    restart_delay_s: float = RESTART_DELAY_S) -> None:
    """Run ``run()`` until cancelled; if it fails, log it and start it again (a bug in one bus
    must not silently end the polling of that bus)."""
    while True:
        try:
            await run()
        except Exception:
            log.exception("%s failed; restarting in %.0f s", name, restart_delay_s)
            await asyncio.sleep(restart_delay_s)


def log_budgets(buses: Sequence[BusConfig], profile: MeterProfile) -> None:
    """Each serial or RTU-over-TCP bus's budget as ``check-config`` prints it: a warning when
    the configuration needs more of the line than it can carry."""
    for bus in buses:
        report = planned_report(bus, profile)
        if report is not None:
            log.log(logging.WARNING if report.over_limit else logging.INFO, "%s", report.text)


def _listener(channel: PulseChannel | AlarmChannel) -> Callable[[MeterRuntime, str], None]:
    def listen(rt: MeterRuntime, kind: str) -> None:
        if rt.name == channel.meter:
            channel.on_meter(rt, kind)
    return listen


class Service:
    def __init__(self, config: Config, gpio_backend: GpioBackend | None = None,
                 profile: MeterProfile = PROFILE) -> None:
        self.config = config
        self.profile = profile
        self.topics = Topics(config.mqtt.base_topic, config.mqtt.discovery_prefix)
        self.naming = Naming(config.bridge_id)
        self.hub = Hub()
        discovery_topics = ([self.topics.device_config("+")]
                            if config.mqtt.discovery_mode == "device"
                            else [self.topics.component_config("+", "+", "+")])
        self.link = MqttLink(
            config.mqtt, config.client_id, self.topics.bridge_availability,
            subscriptions=[self.topics.ha_status, self.topics.set_wildcard,
                           # Our own retained pulse totals, a fallback for a lost state file.
                           *(self.topics.state(p.name) for p in config.pulse_inputs)],
            on_connect=self._on_connect, on_message=self._on_message,
            read_back=discovery_topics if config.mqtt.discovery else (),
            read_back_s=DISCOVERY_READ_BACK_S)
        self.hub.publisher = self.link
        state_dir = Path(config.state_dir)
        self.announcer = Announcer(self.hub, self.topics, mode=config.mqtt.discovery_mode,
                                   enabled=config.mqtt.discovery,
                                   store=state_dir / "discovery.json",
                                   own_prefix=self.naming.unique_prefix + "_",
                                   ha_version=config.mqtt.ha_version)
        self.meter_devices = MeterDevices(self.announcer, self.topics, self.naming, profile)
        self.pollers: list[BusPoller] = []
        self.poller_of: dict[str, BusPoller] = {}
        for bus in config.buses:
            client = BusClient(link_for(bus), timeout=bus.timeout, retries=bus.retries,
                               name=bus.name)
            poller = BusPoller(bus, client, self.hub, self.topics, config.publish,
                               profile=profile, naming=self.naming,
                               on_components=self._meter_components)
            self.pollers.append(poller)
            for meter in bus.meters:
                self.poller_of[meter.name] = poller
        self.ha_births = 0
        self.meter_devices.announce_bridge(config.buses, config.web)
        self._provisional_devices()
        backend = gpio_backend
        if backend is None and (config.pulse_inputs or config.alarm_inputs):
            backend = make_backend()
        self.pulse_channels = [
            PulseChannel(p, backend, state_dir, self.hub, self.topics, self.announcer,
                         self.naming, profile.manufacturer)
            for p in config.pulse_inputs if backend]
        self.alarm_channels = [
            AlarmChannel(a, backend, self.hub, self.topics, self.announcer, self.naming,
                         profile.manufacturer)
            for a in config.alarm_inputs if backend]
        self.channels: list[PulseChannel | AlarmChannel] = [*self.pulse_channels,
                                                             *self.alarm_channels]
        for channel in self.channels:
            if channel.meter is not None:
                self.poller_of[channel.meter].listeners.append(_listener(channel))
        self.share: MeterShare | None = None
        self.modbus_server: ShareServer | None = None
        if config.modbus_server is not None:
            server_cfg = config.modbus_server
            self.share = MeterShare(self.pollers, server_cfg.max_age_s)
            self.modbus_server = ShareServer(
                self.share, server_cfg.host, server_cfg.port,
                ServerLimits(server_cfg.max_connections, server_cfg.passthrough_reads_per_s,
                             server_cfg.idle_timeout_s))
        # The status board serves the page and the bridge's own state message alike.
        self.board = self._build_board(config)
        self.report = BridgeReport(self.board, self.hub, self.topics,
                                   lambda: self.link.published)
        self.web: WebServer | None = None
        if config.web is not None and config.web.enabled:
            self.web = WebServer(config.web, self.board)
        self._unknown_logged: set[str] = set()
        #: Command topics whose retained message we are clearing (their echo is not a command).
        self._clearing: set[str] = set()

    def _build_board(self, config: Config) -> StatusBoard:
        inputs = [*(InputInfo(p.name, "pulse", p.meter) for p in config.pulse_inputs),
                  *(InputInfo(a.name, "alarm", a.meter) for a in config.alarm_inputs)]
        return StatusBoard(self.pollers, self.hub, self.topics, lambda: self.link.connected,
                           f"{config.mqtt.host}:{config.mqtt.effective_port}", inputs,
                           profile=self.profile, modbus_server=lambda: self.modbus_server)

    # -- discovery ----------------------------------------------------------------------------

    def node_ids(self) -> list[str]:
        own = [p.name for p in self.config.pulse_inputs if p.meter is None]
        own += [a.name for a in self.config.alarm_inputs if a.meter is None]
        return [self.meter_devices.bridge_node_id,
                *(self.naming.node_id(name) for name in [*self.poller_of, *own])]

    def _provisional_devices(self) -> None:
        """Every meter's device exists from the start, so that inputs linked to a meter can
        be announced before the meter has been read (its firmware comes later)."""
        for poller in self.pollers:
            for rt in poller.meters.values():
                self.meter_devices.set_device(rt.cfg, poller.cfg.name)

    def _meter_components(self, rt: MeterRuntime) -> None:
        assert rt.setup is not None
        self.meter_devices.set_device(rt.cfg, self.poller_of[rt.name].cfg.name,
                                      rt.identity.firmware if rt.identity else None)
        pulse_linked = any(p.meter == rt.name for p in self.config.pulse_inputs)
        self.meter_devices.announce(rt.name, meter_context(rt.cfg, rt.setup.system_type,
                                                           rt.valid, pulse_linked))

    # -- MQTT callbacks (never block, never touch a bus) -------------------------------------

    def _on_connect(self) -> None:
        self.hub.republish()
        loop = asyncio.get_running_loop()
        for channel in self.pulse_channels:
            loop.call_later(RETAINED_WINDOW_S, channel.retained_window_closed)

    def _on_message(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain and topic.startswith(self.topics.prefix + "/") and topic.endswith("/config"):
            self.announcer.reconcile(topic, payload)
            return
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
            publish_result(self.hub, self.topics, name, setting, requested, False, None,
                           "retained commands are ignored; publish without retain")
            return
        if not poller.submit(CommandRequest(name, setting, payload)):
            publish_result(self.hub, self.topics, name, setting, requested, False, None,
                           "too many commands queued; try again")

    # -- running ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; then stop the buses and inputs, and MQTT last."""
        self.announcer.forget_others(self.node_ids())
        mqtt_done = asyncio.Event()
        async with asyncio.TaskGroup() as service:
            service.create_task(self.link.run(mqtt_done), name="mqtt")
            async with asyncio.TaskGroup() as workers:
                tasks = [workers.create_task(supervise(f"bus {p.cfg.name}", p.run),
                                             name=f"bus {p.cfg.name}") for p in self.pollers]
                tasks += [workers.create_task(supervise(f"input {c.name}", c.run),
                                              name=f"input {c.name}") for c in self.channels]
                tasks.append(workers.create_task(self._retry_record(), name="record"))
                tasks.append(workers.create_task(supervise("bridge state", self.report.run),
                                                 name="bridge state"))
                if self.web is not None:
                    logging.getLogger().addHandler(self.board.log_ring)
                    tasks.append(workers.create_task(supervise("status page", self.web.run),
                                                     name="status page"))
                log_budgets(self.config.buses, self.profile)
                await self._start_modbus_server()
                try:
                    await stop.wait()
                finally:
                    await self._stop_modbus_server()
                    for task in tasks:
                        task.cancel()
                    if self.web is not None:
                        logging.getLogger().removeHandler(self.board.log_ring)
            mqtt_done.set()

    async def _start_modbus_server(self) -> None:
        if self.modbus_server is None:
            return
        try:
            await self.modbus_server.start()
        except (OSError, RuntimeError) as exc:
            # The bridge's own work goes on without the server; the log says why.
            cfg = self.config.modbus_server
            assert cfg is not None
            log.error("Modbus server: cannot listen on %s:%d (%s); running without it",
                      cfg.host, cfg.port, exc)
            self.modbus_server = None

    async def _stop_modbus_server(self) -> None:
        if self.modbus_server is not None:
            await self.modbus_server.stop()
        if self.share is not None:
            self.share.close()

    async def _retry_record(self) -> None:
        while True:
            await asyncio.sleep(RECORD_RETRY_S)
            self.announcer.retry_record()

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
