"""One task per bus: commands first, then whichever read is due, one transaction at a time.

Per meter the poller keeps a schedule of four tasks: ``init`` (configuration block, identity,
a first full read that also settles the uncertain quantities), ``config`` (the configuration
block every ``config_interval``), ``full`` (every valid measurement every ``poll_interval``)
and, when configured, ``fast`` (a short read of ``fast_keys`` every ``fast_interval``). The task
with the earliest due time runs next, so on a saturated bus the meters take turns. A meter that
fails ``offline_after`` cycles in a row goes offline and is probed again with exponential
back-off, one request without retries per probe, so it costs the other meters at most one
timeout per back-off period.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping

from bridge.config import BusConfig, PublishConfig
from bridge.core.commands import CommandRequest, execute, publish_result
from bridge.core.publishing import should_publish
from bridge.core.runtime import MeterRuntime, apply_setup, ingest, state_of
from bridge.errors import DecodeError, ModbusError
from bridge.meters.series4000.setup import (
    CONFIG_COUNT,
    CONFIG_START,
    MeterSetup,
    Number,
    decode_setup,
    state_values,
)
from bridge.modbus.client import BusClient
from bridge.modbus.reader import read_identity
from bridge.model import codec
from bridge.model.registers import ReadBlock
from bridge.model.topics import OFFLINE, ONLINE, Topics
from bridge.mqtt.hub import AVAILABILITY, STATE, Hub

log = logging.getLogger(__name__)

#: Built-in deadbands for values the bridge itself measures.
DEFAULT_DEADBANDS = {"response_time_ms": 25.0}
#: Availability changes of one meter are published at most this often.
AVAILABILITY_MIN_INTERVAL_S = 10.0
#: A flapping meter is reported in the log at most this often.
FLAP_WARNING_EVERY_S = 600.0

__all__ = ["BusPoller", "CommandRequest", "MeterRuntime"]


class BusPoller:
    def __init__(self, bus_cfg: BusConfig, client: BusClient, hub: Hub, topics: Topics,
                 publish_cfg: PublishConfig, *, unique_prefix: str,
                 on_components: Callable[[MeterRuntime], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = bus_cfg
        self.client = client
        self.hub = hub
        self.topics = topics
        self.publish_cfg = publish_cfg
        self.deadbands = {**DEFAULT_DEADBANDS, **publish_cfg.deadband}
        self.unique_prefix = unique_prefix
        self.on_components = on_components
        self.clock = clock
        now = clock()
        self.meters = {
            m.name: MeterRuntime(m, f"{unique_prefix}_{m.name}", due={"init": now},
                                 backoff=bus_cfg.backoff_s)
            for m in bus_cfg.meters
        }
        self._wake = asyncio.Event()
        self.commands: asyncio.Queue[CommandRequest] = asyncio.Queue(maxsize=100)
        self.cycles = 0
        #: Called after every successful read of a meter with "config" or "full".
        self.listeners: list[Callable[[MeterRuntime, str], None]] = []

    # -- schedule -----------------------------------------------------------------------------

    def submit(self, request: CommandRequest) -> bool:
        """Queue a command for this bus's task (called from MQTT callbacks; never blocks)."""
        try:
            self.commands.put_nowait(request)
        except asyncio.QueueFull:
            return False
        self._wake.set()
        return True

    def publish_result(self, name: str, setting: str, requested: str, ok: bool,
                       value: object, error: str | None) -> None:
        publish_result(self, name, setting, requested, ok, value, error)

    def _next_due(self) -> tuple[MeterRuntime | None, str, float]:
        best: tuple[MeterRuntime | None, str, float] = (None, "", float("inf"))
        for rt in self.meters.values():
            for task, due in rt.due.items():
                if due < best[2]:
                    best = (rt, task, due)
            if rt.gate.pending is not None:
                flush_at = rt.gate.published_at + AVAILABILITY_MIN_INTERVAL_S
                if flush_at < best[2]:
                    best = (rt, "flush", flush_at)
        return best

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if not self.commands.empty():
                    # Commands go ahead of every pending read.
                    await execute(self, self.commands.get_nowait())
                    continue
                rt, task, due = self._next_due()
                delay = due - self.clock()
                if delay > 0 or rt is None:
                    self._wake.clear()
                    waiter = asyncio.ensure_future(self._wake.wait())
                    stopper = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({waiter, stopper},
                                       timeout=None if rt is None else delay,
                                       return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
                    continue
                await self._run_task(rt, task)
        finally:
            self.client.close()

    async def _run_task(self, rt: MeterRuntime, task: str) -> None:
        now = self.clock()
        if task == "flush":
            rt.gate, value = rt.gate.flush(now, AVAILABILITY_MIN_INTERVAL_S)
            if value is not None:
                self._log_availability(rt, value, now)
                self._publish_availability(rt, value)
            return
        if task == "publish":
            rt.due.pop("publish", None)
            self.publish_state(rt)
            return
        try:
            if task == "init":
                await self._init(rt)
            elif task == "config":
                rt.due["config"] = now + rt.cfg.config_interval
                await self._read_config(rt)
            elif task == "full":
                rt.due["full"] = now + rt.cfg.poll_interval
                if "fast" in rt.due and rt.cfg.fast_interval is not None:
                    # The full read refreshes the fast keys too.
                    rt.due["fast"] = max(rt.due["fast"], now + rt.cfg.fast_interval)
                await self._read(rt, rt.full_blocks, full=True)
            elif task == "fast":
                assert rt.cfg.fast_interval is not None
                rt.due["fast"] = now + rt.cfg.fast_interval
                await self._read(rt, rt.fast_blocks, full=False)
        except (ModbusError, DecodeError) as exc:
            self._failed(rt, task, exc)
            return
        rt.failures = 0
        if task == "full":
            self.cycles += 1

    # -- reading ------------------------------------------------------------------------------

    async def _init(self, rt: MeterRuntime) -> None:
        # A probe of an offline meter is one request without retries: a dead meter costs the
        # others one timeout per back-off period.
        retries = 0 if rt.failures >= self.cfg.offline_after else None
        words = await self.client.read_registers(rt.cfg.unit, CONFIG_START - 1, CONFIG_COUNT,
                                                 retries=retries)
        setup = decode_setup(words)
        if rt.identity is None:
            rt.identity = await read_identity(self.client, rt.cfg.unit)
        self.take_setup(rt, setup, announce=True)
        await self._read(rt, rt.full_blocks, full=True)
        now = self.clock()
        rt.due.pop("init", None)
        rt.due["config"] = now + rt.cfg.config_interval
        # Spread the meters' full reads over the period: meters that start together would
        # otherwise all be due together, every period, and crowd out the fast tier.
        rt.due["full"] = now + rt.cfg.poll_interval * self._phase(rt)
        if rt.cfg.fast_interval is not None and rt.fast_blocks:
            rt.due["fast"] = now + rt.cfg.fast_interval
        rt.backoff = self.cfg.backoff_s
        self._set_online(rt, True)
        self._notify(rt, "config")

    async def _read_config(self, rt: MeterRuntime) -> None:
        words = await self.client.read_registers(rt.cfg.unit, CONFIG_START - 1, CONFIG_COUNT)
        self.take_setup(rt, decode_setup(words))
        self.publish_state(rt)
        self._notify(rt, "config")

    def _phase(self, rt: MeterRuntime) -> float:
        """(k + 1) / n for the k-th of n meters on the bus."""
        names = list(self.meters)
        return (names.index(rt.name) + 1) / len(names)

    def take_setup(self, rt: MeterRuntime, setup: MeterSetup, announce: bool = False) -> None:
        """A fresh read of the set-up block: replan and re-announce if the wiring changed."""
        if apply_setup(rt, setup) or announce:
            self._announce(rt)

    def _notify(self, rt: MeterRuntime, kind: str) -> None:
        for listener in self.listeners:
            try:
                listener(rt, kind)
            except Exception:  # a listener bug must not stop the bus
                log.exception("%s: listener failed", rt.name)

    def _announce(self, rt: MeterRuntime) -> None:
        if rt.setup is not None and self.on_components is not None:
            self.on_components(rt)

    async def _read(self, rt: MeterRuntime, blocks: tuple[ReadBlock, ...], full: bool) -> None:
        """Read the blocks; decoding and publishing run while the next request is on the
        wire (the bus task goes straight on to it), so the line does not wait for them."""
        assert rt.setup is not None
        scales = rt.setup.scales
        started = self.clock()
        answers = [(block, await self.client.read_registers(rt.cfg.unit, block.address,
                                                             block.count))
                   for block in blocks]
        now = self.clock()
        rt.response_ms = (now - started) * 1000.0 / max(len(blocks), 1)
        rt.polls += 1
        asyncio.get_running_loop().call_soon(self._process, rt, answers, scales, now, full)

    def _process(self, rt: MeterRuntime, answers: list[tuple[ReadBlock, list[int]]],
                 scales: Mapping[int, int], now: float, full: bool) -> None:
        decoded: dict[str, Number | None] = {}
        try:
            for block, words in answers:
                for key, value in state_values(codec.decode_block(block, words,
                                                                  scales)).items():
                    decoded.setdefault(key, value)
        except DecodeError as exc:
            self._failed(rt, "full" if full else "fast", exc)
            return
        changed, dropped = ingest(rt, decoded, now, full)
        if changed:
            self._announce(rt)
        for drop in dropped:
            log.warning("%s: %s read %s, lower than the last published %s; not published",
                        rt.name, drop.key, drop.value, drop.floor)
        self.publish_state(rt)
        if full:
            self._notify(rt, "full")

    # -- publishing ---------------------------------------------------------------------------

    def publish_state(self, rt: MeterRuntime, force: bool = False) -> None:
        if rt.setup is None:
            return
        now = self.clock()
        hold_until = rt.last_state_time + self.publish_cfg.min_interval_s
        if not force and rt.last_state is not None and now < hold_until:
            rt.due["publish"] = hold_until  # folded into one message at the end of the hold
            return
        rt.due.pop("publish", None)
        state = state_of(rt)
        if not force and not should_publish(rt.last_state, rt.last_state_time, state, now,
                                            self.publish_cfg.heartbeat_s, self.deadbands):
            return
        rt.last_state, rt.last_state_time = state, now
        # The key order is stable (state_of builds it the same way every time): no sorting.
        self.hub.retain(STATE, self.topics.state(rt.name), json.dumps(state))

    def _publish_availability(self, rt: MeterRuntime, online: bool) -> None:
        self.hub.retain(AVAILABILITY, self.topics.availability(rt.name),
                        ONLINE if online else OFFLINE)

    def _set_online(self, rt: MeterRuntime, online: bool) -> None:
        now = self.clock()
        rt.online = online
        rt.gate, value = rt.gate.update(online, now, AVAILABILITY_MIN_INTERVAL_S)
        if value is not None:
            self._log_availability(rt, value, now)
            self._publish_availability(rt, value)
        elif rt.gate.pending is not None and now - rt.flap_warned_at >= FLAP_WARNING_EVERY_S:
            # A change held back by the gate: the meter flaps. Say so once, not per change.
            rt.flap_warned_at = now
            log.warning("%s (unit %d) keeps going online and offline (last error: %s); its "
                        "availability is published at most every %.0f s", rt.name,
                        rt.cfg.unit, rt.last_error, AVAILABILITY_MIN_INTERVAL_S)

    def _log_availability(self, rt: MeterRuntime, online: bool, now: float) -> None:
        if now - rt.flap_warned_at < FLAP_WARNING_EVERY_S:
            level = logging.DEBUG  # already reported as flapping
        else:
            level = logging.INFO if online else logging.WARNING
        if online:
            log.log(level, "%s (unit %d) is online", rt.name, rt.cfg.unit)
        elif rt.polls == 0:
            log.log(level, "%s (unit %d) does not answer: %s; retrying every %.0f s or so",
                    rt.name, rt.cfg.unit, rt.last_error, rt.backoff)
        else:
            log.log(level, "%s (unit %d) is offline: %s; retrying every %.0f s or so",
                    rt.name, rt.cfg.unit, rt.last_error, rt.backoff)

    def _failed(self, rt: MeterRuntime, task: str, exc: Exception) -> None:
        rt.failures += 1
        rt.errors += 1
        rt.last_error = str(exc)
        log.debug("%s: %s failed (%d in a row): %s", rt.name, task, rt.failures, exc)
        if rt.failures < self.cfg.offline_after and rt.online:
            self.publish_state(rt)
            return
        # Offline (or never came up): stop the regular reads and probe with back-off.
        for key in ("config", "full", "fast"):
            rt.due.pop(key, None)
        rt.due["init"] = self.clock() + rt.backoff
        if rt.online or rt.gate.published is None:
            self._set_online(rt, False)
        rt.backoff = min(rt.backoff * 2, self.cfg.backoff_max_s)
