"""The web server's view of the running bridge (implements :class:`bridge.web.source.StatusSource`).

It watches what the bridge publishes (the hub's observers: cheap, on the bus tasks' thread) to
know when something changed, to keep the last command results and a short power history, and
keeps the log ring. Everything else is read when a snapshot is asked for, by the pure functions
of :mod:`bridge.core.status`; nothing here touches a bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bridge import __version__
from bridge.core import status
from bridge.core.budget import BusPlan, LiveBudget, bus_plan, coarsest_known, repriced
from bridge.core.poller import BusPoller
from bridge.meters.profile import MeterProfile
from bridge.modbus.server import ShareServer
from bridge.model.topics import Topics
from bridge.mqtt.hub import AVAILABILITY, STATE, Hub

#: Log records kept for the page.
LOG_CAPACITY = 200
#: Command results kept for the page and the API.
COMMANDS_KEPT = 50
#: The power chart: one point per meter this often, over this long.
HISTORY_STEP_S = 5.0
HISTORY_SPAN_S = 15 * 60.0
#: Bus rates (line busy, transactions per second) are averaged over about this long.
RATE_WINDOW_S = 10.0


def _iso(unix_s: float) -> str:
    return datetime.fromtimestamp(unix_s, UTC).isoformat(timespec="milliseconds")


class LogRing(logging.Handler):
    """The last records at INFO and above, numbered, for the page's log view."""

    def __init__(self, on_record: Callable[[], None], capacity: int = LOG_CAPACITY) -> None:
        super().__init__(logging.INFO)
        self._records: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._seq = 0
        self._lock_records = threading.Lock()
        self._on_record = on_record

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not break logging
            message = str(record.msg)
        with self._lock_records:
            self._seq += 1
            self._records.append({"seq": self._seq, "time": _iso(record.created),
                                  "level": record.levelname, "logger": record.name,
                                  "message": message})
        self._on_record()

    def records(self, after: int = 0) -> list[dict[str, Any]]:
        with self._lock_records:
            return [r for r in self._records if r["seq"] > after]


@dataclass(frozen=True, slots=True)
class InputInfo:
    name: str
    kind: str  # "pulse" or "alarm"
    meter: str | None


class StatusBoard:
    def __init__(self, pollers: Sequence[BusPoller], hub: Hub, topics: Topics,
                 mqtt_connected: Callable[[], bool], broker: str,
                 inputs: Sequence[InputInfo] = (), *, profile: MeterProfile,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 modbus_server: Callable[[], ShareServer | None] = lambda: None) -> None:
        self.pollers = list(pollers)
        self.modbus_server = modbus_server
        self.hub = hub
        self.topics = topics
        self.mqtt_connected = mqtt_connected
        self.broker = broker
        self.inputs = list(inputs)
        self.profile = profile
        self.clock = clock
        self.wall = wall
        self.started = clock()
        self.log_ring = LogRing(self._changed)
        self.commands: deque[dict[str, Any]] = deque(maxlen=COMMANDS_KEPT)
        names = [name for p in self.pollers for name in p.meters]
        self._result_topics = {topics.result(name): name for name in names}
        self._state_topics = {topics.state(name): name for name in names}
        points = int(HISTORY_SPAN_S / HISTORY_STEP_S)
        self._history: dict[str, deque[list[float]]] = {
            name: deque(maxlen=points) for name in names}
        self._samples = {p.cfg.name: deque([status.sample(p.client.stats, self.started)])
                         for p in self.pollers}
        #: Each bus's plan and the scales it was planned with (planned again when they change).
        self._plans: dict[str, tuple[object, BusPlan | None]] = {}
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        hub.observers.append(self._observe)

    # -- what is published ----------------------------------------------------------------

    def _observe(self, topic: str, payload: str, retain: bool) -> None:
        if not retain and topic in self._result_topics:
            with contextlib.suppress(ValueError, TypeError):
                result = json.loads(payload)
                if isinstance(result, dict):
                    self.commands.appendleft({"meter": self._result_topics[topic],
                                              "time": _iso(self.wall()), **result})
        elif retain and topic in self._state_topics:
            self._record_power(self._state_topics[topic], payload)
        self._changed()

    def _record_power(self, meter: str, payload: str) -> None:
        history = self._history[meter]
        now = self.wall()
        if history and now - history[-1][0] < HISTORY_STEP_S:
            return
        with contextlib.suppress(ValueError, TypeError):
            power = json.loads(payload).get("power_w")
            if isinstance(power, int | float):
                history.append([round(now, 1), float(power)])

    # -- change notification --------------------------------------------------------------

    def _changed(self) -> None:
        loop = self._loop
        if loop is None or not self._waiters:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake()
        else:  # a record logged from another thread
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    async def wait_changed(self, timeout: float) -> bool:
        self._loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._waiters.add(waiter)
        try:
            async with asyncio.timeout(timeout):
                await waiter
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)
        return True

    # -- the StatusSource interface -------------------------------------------------------

    def _bus_rates(self, poller: BusPoller, now: float) -> status.BusRates:
        samples = self._samples[poller.cfg.name]
        current = status.sample(poller.client.stats, now)
        if now - samples[-1].at >= 1.0:
            samples.append(current)
        while len(samples) > 2 and now - samples[1].at >= RATE_WINDOW_S:
            samples.popleft()
        return status.rates(poller.cfg, samples[0], current)

    def _live_budget(self, poller: BusPoller) -> LiveBudget | None:
        """The bus's budget with its meters' measured reaction and known scales; the read plans
        it prices are made again only when the scales change."""
        scales = coarsest_known([rt.setup.scales if rt.setup is not None else None
                                 for rt in poller.meters.values()])
        key = None if scales is None else tuple(sorted(scales.items()))
        cached = self._plans.get(poller.cfg.name)
        if cached is None or cached[0] != key:
            cached = (key, bus_plan(poller.cfg, self.profile, scales))
            self._plans[poller.cfg.name] = cached
        plan = cached[1]
        reaction_ms = poller.client.stats.reaction_ms
        return None if plan is None else repriced(
            plan, None if reaction_ms is None else reaction_ms / 1000.0)

    def snapshot(self) -> dict[str, Any]:
        now, wall = self.clock(), self.wall()
        buses = [status.bus_status(p.cfg, p.client.stats, p.client.connected,
                                   self._bus_rates(p, now), self._live_budget(p))
                 for p in self.pollers]
        meters = [status.meter_status(rt, p.cfg.name, now, wall)
                  for p in self.pollers for rt in p.meters.values()]
        inputs = [status.input_status(i.name, i.kind, i.meter,
                                      self.hub.get(STATE, self.topics.state(i.name)),
                                      self.hub.get(AVAILABILITY,
                                                   self.topics.availability(i.name)))
                  for i in self.inputs]
        bridge = status.bridge_status(__version__, now - self.started, self.mqtt_connected(),
                                      self.broker)
        return status.snapshot(bridge, buses, meters, inputs, list(self.commands),
                               self._modbus_server(now))

    def _modbus_server(self, now: float) -> dict[str, Any] | None:
        server = self.modbus_server()
        if server is None:
            return None
        clients = [status.modbus_client_status(c.peer, now - c.connected_at, c.requests,
                                               c.passthrough_reads, c.refused)
                   for c in list(server.clients.values())]
        return {"listen": server.address, "clients": clients}

    def log_records(self, after: int = 0) -> list[dict[str, Any]]:
        return self.log_ring.records(after)

    def power_history(self) -> dict[str, list[list[float]]]:
        return {name: list(points) for name, points in self._history.items()}
