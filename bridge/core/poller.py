"""One task per bus: commands first, then the reads in their turn, one transaction at a time.

Per meter the poller runs four kinds of read: ``init`` (configuration block, identity,
a first full read that also settles the uncertain quantities), ``config`` (the configuration
block every ``config_interval``), ``full`` (every valid measurement, at least every
``poll_interval``) and, when configured, ``fast`` (a short read of ``fast_keys`` every
``fast_interval``). The first and set-up reads run when due; the full and fast reads take
their turns in fixed rotations (:mod:`bridge.core.schedule`), each tier spread evenly over its
period. A meter that fails ``offline_after`` cycles in a row goes offline and is probed again
with exponential back-off, one request without retries per probe, so it costs the other meters
at most one timeout per back-off period.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from bridge.config import BusConfig, PublishConfig
from bridge.core.availability import Availability
from bridge.core.budget import REFERENCE_TIMING, bus_plan, line_timing
from bridge.core.commands import CommandRequest, Outcome, execute
from bridge.core.publishing import DEFAULT_DEADBANDS, hold, per_key, should_publish
from bridge.core.refresh import note_read
from bridge.core.runtime import MeterRuntime, apply_setup, ingest, learn, state_of
from bridge.core.schedule import (
    Cursor,
    Rotation,
    Tiers,
    advance,
    catch_up,
    pick,
    rotations,
    slot_read,
)
from bridge.core.wiring import check_due, observe_wiring
from bridge.errors import DecodeError, ModbusError
from bridge.meters.profile import MeterProfile, MeterSetup
from bridge.modbus.client import BusClient
from bridge.modbus.reader import read_identity, read_planned, read_setup
from bridge.model.naming import Naming
from bridge.model.read_limits import ReadLimits
from bridge.model.registers import ReadBlock
from bridge.model.topics import OFFLINE, ONLINE, Topics
from bridge.model.values import Number
from bridge.mqtt.hub import AVAILABILITY, STATE, Hub

log = logging.getLogger(__name__)

#: Commands waiting for the bus task; more are refused with "try again".
MAX_QUEUED_COMMANDS = 100

__all__ = ["BusJob", "BusPoller", "CommandRequest", "MeterRuntime", "Outcome"]

#: A transaction queued like a command (a read passed through by the Modbus server).
BusJob = Callable[[], Awaitable[None]]


class BusPoller:
    def __init__(self, bus_cfg: BusConfig, client: BusClient, hub: Hub, topics: Topics,
                 publish_cfg: PublishConfig, *, profile: MeterProfile,
                 naming: Naming,
                 on_components: Callable[[MeterRuntime], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.cfg = bus_cfg
        self.client = client
        self.hub = hub
        self.topics = topics
        self.publish_cfg = publish_cfg
        self.deadbands = per_key({**DEFAULT_DEADBANDS, **publish_cfg.deadband})
        self.on_components = on_components
        self.clock = clock
        now = clock()
        timing = line_timing(bus_cfg) or REFERENCE_TIMING
        self.meters = {
            m.name: MeterRuntime(m, naming.node_id(m.name), profile, due={"init": now},
                                 backoff=bus_cfg.backoff_s, timing=timing)
            for m in bus_cfg.meters
        }
        plan = bus_plan(bus_cfg, profile)
        #: The bus's rotations and where each stands; a meter keeps its place for good.
        self.rotations: tuple[Rotation, ...] = rotations(
            [Tiers(m.name, m.poll_interval, m.fast_interval) for m in bus_cfg.meters],
            1.0 if plan is None else plan.result.fast_stretch)
        self.cursors = [Cursor(0, 0, now) for _ in self.rotations]
        #: When each meter last read everything.
        self.full_at: dict[str, float] = {}
        self.availability = Availability(self._publish_availability)
        self._wake = asyncio.Event()
        self.commands: asyncio.Queue[CommandRequest | BusJob] = \
            asyncio.Queue(MAX_QUEUED_COMMANDS)
        self.cycles = 0
        #: Called after every successful read of a meter with "config" or "full".
        self.listeners: list[Callable[[MeterRuntime, str], None]] = []

    # -- schedule -----------------------------------------------------------------------------

    def submit(self, request: CommandRequest | BusJob) -> bool:
        """Queue a command or a job for this bus's task (never blocks)."""
        try:
            self.commands.put_nowait(request)
        except asyncio.QueueFull:
            return False
        self._wake.set()
        return True

    def _timed(self) -> Iterator[tuple[str, str, float]]:
        for name, rt in self.meters.items():
            for task, due in rt.due.items():
                yield name, task, due
            flush_at = self.availability.flush_due(rt)
            if flush_at is not None:
                yield name, "flush", flush_at

    async def run(self) -> None:
        """Poll until cancelled."""
        me = asyncio.current_task()
        try:
            while True:
                if me is not None and me.cancelling():
                    # Python 3.11's asyncio.wait_for (inside pymodbus) can swallow a
                    # cancellation that arrives as the answer does: stop all the same.
                    raise asyncio.CancelledError
                wait = await self.step()
                if wait is None or wait > 0:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(wait):
                            await self._wake.wait()
        finally:
            self.client.close()

    async def step(self) -> float | None:
        """Run the next thing if it is due: a queued command first, else the earliest task.

        Returns 0.0 when something ran, else the seconds until the next task is due (None:
        nothing is scheduled; a submitted command wakes the bus task).
        """
        if not self.commands.empty():
            # Commands go ahead of every pending read.
            request = self.commands.get_nowait()
            if isinstance(request, CommandRequest):
                outcome = await execute(self, self.meters[request.meter], request)
                if request.reply is not None and not request.reply.done():
                    request.reply.set_result(outcome)
            else:
                await request()
            return 0.0
        now = self.clock()
        self.cursors = [catch_up(r, c, now) for r, c in zip(self.rotations, self.cursors,
                                                             strict=True)]
        # A rotation none of whose meters is polled has nothing to do: its slots would pass
        # one after another (without a period, all at once and for ever) until a probe brings
        # a meter back.
        slots = [c.due_s(r) if any(self._polled(self.meters[m]) for m in r.meters) else math.inf
                 for r, c in zip(self.rotations, self.cursors, strict=True)]
        choice = pick(self._timed(), slots, now)
        if choice.rotation is not None:
            await self._run_slot(choice.rotation, now)
        elif choice.meter is not None:
            await self._run_task(self.meters[choice.meter], choice.task)
        else:
            return choice.wait_s
        return 0.0

    async def _run_slot(self, index: int, now: float) -> None:
        """The rotation's next slot: its meter's read, if it has one (else the slot passes)."""
        rotation, cursor = self.rotations[index], self.cursors[index]
        self.cursors[index] = advance(rotation, cursor)
        rt = self.meters[rotation.meters[cursor.position]]
        read = slot_read(rotation, cursor, polled=self._polled(rt),
                         has_fast=bool(rt.fast_blocks),
                         full_wanted="full" in rt.due,
                         full_age_s=now - self.full_at.get(rt.name, -math.inf))
        if read is not None:
            await self._run_task(rt, read)

    @staticmethod
    def _polled(rt: MeterRuntime) -> bool:
        """Whether the meter reads in its slots (set up, not waiting for a first read or a
        probe)."""
        return rt.setup is not None and "init" not in rt.due

    async def _run_task(self, rt: MeterRuntime, task: str) -> None:
        now = self.clock()
        if task == "flush":
            self.availability.flush(rt, now)
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
                rt.due.pop("full", None)  # a command's wish for one, if any, is served
                await self._read(rt, rt.full_blocks, full=True)
                self.full_at[rt.name] = self.clock()
            elif task == "fast":
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
        setup = await read_setup(self.client, rt.cfg.unit, rt.profile, retries=retries)
        if rt.identity is None:
            rt.identity = await read_identity(self.client, rt.cfg.unit, rt.profile)
        self.take_setup(rt, setup, announce=True)
        await self._read(rt, rt.full_blocks, full=True)
        now = self.clock()
        self.full_at[rt.name] = now
        # From now on the meter reads in its slots of the rotation.
        rt.due.pop("init", None)
        rt.due["config"] = now + rt.cfg.config_interval
        rt.backoff = self.cfg.backoff_s
        self.availability.set(rt, True, now)
        self._notify(rt, "config")

    async def _read_config(self, rt: MeterRuntime) -> None:
        self.take_setup(rt, await read_setup(self.client, rt.cfg.unit, rt.profile))
        self.publish_state(rt)
        self._notify(rt, "config")

    def take_setup(self, rt: MeterRuntime, setup: MeterSetup, announce: bool = False) -> None:
        """A fresh read of the set-up block: replan and re-announce if the wiring changed."""
        rt.words[rt.profile.config_block.start] = (setup.words, self.clock())
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
        """Read and decode the blocks (a reply that does not decode counts as a failed read),
        then fold the values in and publish on the event loop's next turn: when the next read
        is due, that is once its request is on the line, so the line never waits for the
        publishing; when a meter comes (back) online, after ``_init`` has published its
        availability."""
        assert rt.setup is not None
        started = self.clock()
        answers = await read_planned(self.client, rt.cfg.unit, blocks, rt.limits)
        now = self.clock()
        for block, words in answers.blocks:
            rt.words[block.start] = (tuple(words), now)
        rt.response_ms = (now - started) * 1000.0 / max(len(answers.blocks), 1)
        rt.last_read_at = now
        rt.polls += 1
        if answers.limits != rt.limits:
            self._learn(rt, answers.limits)
        decoded = rt.decoder.decode(answers.blocks)
        asyncio.get_running_loop().call_soon(self._process, rt, decoded, full)

    def _learn(self, rt: MeterRuntime, limits: ReadLimits) -> None:
        """The meter refused part of a read: read around it from now on."""
        valid = rt.valid
        news = learn(rt, limits)
        if news:
            log.warning("%s: the meter %s; reading around it", rt.name, news)
        if rt.valid != valid:
            self._announce(rt)

    def _process(self, rt: MeterRuntime, decoded: Mapping[str, Number | None],
                 full: bool) -> None:
        if rt.last_read_at is not None:  # the read that decoded, when it completed
            rt.read_gaps = note_read(rt.read_gaps, rt.last_read_at)
        try:
            self._fold_in(rt, decoded, full)
        except Exception:  # a publishing bug must not stop the bus, nor count as a failed read
            log.exception("%s: processing a read failed", rt.name)

    def _fold_in(self, rt: MeterRuntime, decoded: Mapping[str, Number | None],
                 full: bool) -> None:
        changed, dropped = ingest(rt, decoded, full)
        if changed:
            self._announce(rt)
        for drop in dropped:
            log.warning("%s: %s read %s, lower than the last published %s; not published",
                        rt.name, drop.key, drop.value, drop.floor)
        if full and rt.last_read_at is not None \
                and check_due(rt.wiring_checked_at, rt.last_read_at):
            rt.wiring_checked_at = rt.last_read_at
            observe_wiring(rt)
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
        if not force and now - rt.last_state_time < self.publish_cfg.heartbeat_s:
            state = hold(rt.last_state, state, self.deadbands)
        if not force and not should_publish(rt.last_state, rt.last_state_time, state, now,
                                            self.publish_cfg.heartbeat_s, self.deadbands):
            return
        rt.last_state, rt.last_state_time = state, now
        # The key order is stable (state_of builds it the same way every time): no sorting.
        self.hub.retain(STATE, self.topics.state(rt.name), json.dumps(state))

    def _publish_availability(self, rt: MeterRuntime, online: bool) -> None:
        self.hub.retain(AVAILABILITY, self.topics.availability(rt.name),
                        ONLINE if online else OFFLINE)

    def _failed(self, rt: MeterRuntime, task: str, exc: Exception) -> None:
        rt.failures += 1
        rt.errors += 1
        rt.last_error = str(exc)
        log.debug("%s: %s failed (%d in a row): %s", rt.name, task, rt.failures, exc)
        if rt.failures < self.cfg.offline_after and rt.online:
            self.publish_state(rt)
            return
        # Offline (or never came up): out of the rotation (its slots pass free) until a probe
        # with back-off brings it back.
        for key in ("config", "full"):
            rt.due.pop(key, None)
        rt.due["init"] = self.clock() + rt.backoff
        if rt.online or rt.gate.published is None:
            self.availability.set(rt, False, self.clock())
        rt.backoff = min(rt.backoff * 2, self.cfg.backoff_max_s)
