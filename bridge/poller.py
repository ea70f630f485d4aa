"""One task per bus: commands first, then whichever read is due, one transaction at a time.

Per meter the poller keeps a schedule of four tasks: ``init`` (configuration block, identity,
a first full read that also settles the uncertain quantities), ``config`` (the configuration
block every ``config_interval``), ``full`` (every valid measurement every ``poll_interval``)
and, when configured, ``fast`` (a short read of ``fast_keys`` every ``fast_interval``). A meter
that fails ``offline_after`` cycles in a row goes offline and is probed again with exponential
back-off, one request without retries per probe, so it costs the other meters at most one
timeout per back-off period.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import codec
from .commands import Rejection, parse_command
from .config import BusConfig, MeterConfig, PublishConfig
from .discovery import Component, DeviceInfo, meter_components
from .errors import DecodeError, ModbusError, ModbusExceptionReply
from .hub import AVAILABILITY, STATE, Hub
from .meter_state import (
    CONFIG_COUNT,
    CONFIG_START,
    MeterSetup,
    Number,
    StateValue,
    decode_setup,
    measurement_plan,
    reported_uncertain,
    state_values,
    valid_state_keys,
)
from .meters import series4000 as s4k
from .modbus_io import BusClient
from .publishing import AvailabilityGate, should_publish
from .reader import Identity, read_identity
from .registers import ReadBlock, plan_reads
from .topics import OFFLINE, ONLINE, Topics
from .validity import sanitize

log = logging.getLogger(__name__)

#: Built-in deadbands for values the bridge itself measures.
DEFAULT_DEADBANDS = {"response_time_ms": 25.0}
#: Availability changes of one meter are published at most this often.
AVAILABILITY_MIN_INTERVAL_S = 10.0
ENERGY_KEYS = next(c.resets for c in s4k.COMMANDS if c.key == "reset_energy")


@dataclass
class MeterRuntime:
    cfg: MeterConfig
    node_id: str
    identity: Identity | None = None
    setup: MeterSetup | None = None
    reported: frozenset[str] = frozenset()
    probed: bool = False
    valid: frozenset[str] = frozenset()
    full_blocks: tuple[ReadBlock, ...] = ()
    fast_blocks: tuple[ReadBlock, ...] = ()
    values: dict[str, Number] = field(default_factory=dict)
    floors: dict[str, Number] = field(default_factory=dict)
    resets: set[str] = field(default_factory=set)
    due: dict[str, float] = field(default_factory=dict)
    failures: int = 0
    online: bool = False
    backoff: float = 5.0
    last_error: str | None = None
    errors: int = 0
    response_ms: float | None = None
    last_state: dict[str, StateValue] | None = None
    last_state_time: float = 0.0
    gate: AvailabilityGate = field(default_factory=AvailabilityGate)
    polls: int = 0
    #: Time each quantity was last read (for freshness figures).
    read_at: dict[str, float] = field(default_factory=dict)
    last_demand_command: float | None = None
    writes: int = 0

    @property
    def name(self) -> str:
        return self.cfg.name


@dataclass(frozen=True, slots=True)
class CommandRequest:
    meter: str
    key: str
    payload: bytes


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

    def wake(self) -> None:
        self._wake.set()

    def submit(self, request: CommandRequest) -> bool:
        """Queue a command for this bus's task (called from MQTT callbacks; never blocks)."""
        try:
            self.commands.put_nowait(request)
        except asyncio.QueueFull:
            return False
        self._wake.set()
        return True

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
                    await self._execute(self.commands.get_nowait())
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
                self._publish_availability(rt, value)
            return
        try:
            if task == "init":
                await self._init(rt)
            elif task == "config":
                rt.due["config"] = now + rt.cfg.config_interval
                await self._read_config(rt)
            elif task == "full":
                rt.due["full"] = now + rt.cfg.poll_interval
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
        self._apply_setup(rt, setup)
        await self._read(rt, rt.full_blocks, full=True)
        now = self.clock()
        rt.due.pop("init", None)
        rt.due["config"] = now + rt.cfg.config_interval
        rt.due["full"] = now + rt.cfg.poll_interval
        if rt.cfg.fast_interval is not None and rt.fast_blocks:
            rt.due["fast"] = now + rt.cfg.fast_interval
        rt.backoff = self.cfg.backoff_s
        self._set_online(rt, True)
        self._notify(rt, "config")

    async def _read_config(self, rt: MeterRuntime) -> None:
        words = await self.client.read_registers(rt.cfg.unit, CONFIG_START - 1, CONFIG_COUNT)
        self._apply_setup(rt, decode_setup(words))
        self._publish_state(rt)
        self._notify(rt, "config")

    def _notify(self, rt: MeterRuntime, kind: str) -> None:
        for listener in self.listeners:
            try:
                listener(rt, kind)
            except Exception:  # a listener bug must not stop the bus
                log.exception("%s: listener failed", rt.name)

    def _apply_setup(self, rt: MeterRuntime, setup: MeterSetup) -> None:
        old = rt.setup
        if old is not None:
            resets_before = old.status.get("energy_reset_count")
            resets_now = setup.status.get("energy_reset_count")
            if resets_before is not None and resets_now is not None and \
                    resets_now != resets_before:
                # Reset on the front panel or by another master: the drop is genuine.
                rt.resets |= set(ENERGY_KEYS)
                log.info("%s: energy accumulators were reset (register 147 %s -> %s)",
                         rt.name, resets_before, resets_now)
        rt.setup = setup
        if old is None or old.system_type != setup.system_type:
            if old is not None:
                log.warning("%s: system type changed %s -> %s", rt.name, old.system_type,
                            setup.system_type)
            rt.probed = False
            rt.reported = frozenset()
            self._replan(rt)

    def _replan(self, rt: MeterRuntime) -> None:
        assert rt.setup is not None
        st = rt.setup.system_type
        rt.valid = valid_state_keys(st, rt.reported)
        rt.full_blocks = measurement_plan(st, rt.reported, include_uncertain=not rt.probed)
        fast_rows = [r for b in rt.full_blocks for r in b.registers
                     if r.key in set(rt.cfg.fast_keys)]
        rt.fast_blocks = plan_reads(fast_rows) if fast_rows else ()
        rt.values = {k: v for k, v in rt.values.items() if k in rt.valid}
        self._announce(rt)

    def _announce(self, rt: MeterRuntime) -> None:
        if rt.setup is None:
            return
        if self.on_components is not None:
            self.on_components(rt)

    def device_info(self, rt: MeterRuntime) -> DeviceInfo:
        name = rt.cfg.display_name or rt.name.replace("_", " ").capitalize()
        fw = rt.identity.firmware if rt.identity else None
        return DeviceInfo(rt.node_id, name, sw_version=fw)

    def components(self, rt: MeterRuntime) -> dict[str, Component]:
        assert rt.setup is not None
        return dict(meter_components(rt.name, self.unique_prefix, rt.valid,
                                     rt.setup.system_type, rt.cfg.allow_writes, self.topics))

    async def _read(self, rt: MeterRuntime, blocks: tuple[ReadBlock, ...], full: bool) -> None:
        assert rt.setup is not None
        started = self.clock()
        decoded: dict[str, Number | None] = {}
        for block in blocks:
            words = await self.client.read_registers(rt.cfg.unit, block.address, block.count)
            for key, value in state_values(codec.decode_block(block, words,
                                                              rt.setup.scales)).items():
                decoded.setdefault(key, value)
        now = self.clock()
        rt.response_ms = (now - started) * 1000.0 / max(len(blocks), 1)
        rt.polls += 1
        if full and not rt.probed:
            rt.probed = True
            rt.reported = reported_uncertain(decoded, rt.setup.system_type)
            self._replan(rt)
        clean, rt.floors, dropped = sanitize(decoded, rt.valid, rt.floors, rt.resets)
        for drop in dropped:
            log.warning("%s: %s read %s, lower than the last published %s; not published",
                        rt.name, drop.key, drop.value, drop.floor)
        rt.resets -= clean.keys()
        for key, value in decoded.items():
            if key in clean:
                rt.values[key] = clean[key]
                rt.read_at[key] = now
            elif value is None or key not in rt.valid:
                rt.values.pop(key, None)  # QNAN now: not available
        self._publish_state(rt)
        if full:
            self._notify(rt, "full")

    # -- publishing ---------------------------------------------------------------------------

    def state_of(self, rt: MeterRuntime) -> dict[str, StateValue]:
        state: dict[str, StateValue] = dict(rt.values)
        if rt.setup is not None:
            state.update(rt.setup.settings)
            state.update(rt.setup.status)
            state["alarms"] = rt.setup.alarms
        state["read_errors"] = rt.errors
        if rt.response_ms is not None:
            state["response_time_ms"] = round(rt.response_ms, 1)
        return state

    def _publish_state(self, rt: MeterRuntime, force: bool = False) -> None:
        if rt.setup is None:
            return
        state = self.state_of(rt)
        now = self.clock()
        if not force and not should_publish(rt.last_state, rt.last_state_time, state, now,
                                            self.publish_cfg.heartbeat_s, self.deadbands):
            return
        rt.last_state, rt.last_state_time = state, now
        self.hub.retain(STATE, self.topics.state(rt.name), json.dumps(state, sort_keys=True))

    def _publish_availability(self, rt: MeterRuntime, online: bool) -> None:
        self.hub.retain(AVAILABILITY, self.topics.availability(rt.name),
                        ONLINE if online else OFFLINE)

    def _set_online(self, rt: MeterRuntime, online: bool) -> None:
        if not online and rt.gate.published is None:
            log.warning("%s (unit %d) does not answer: %s; retrying every %.0f s or so",
                        rt.name, rt.cfg.unit, rt.last_error, rt.backoff)
        elif online != rt.online:
            if online:
                log.info("%s (unit %d) is online", rt.name, rt.cfg.unit)
            else:
                log.warning("%s (unit %d) is offline: %s; retrying every %.0f s or so",
                            rt.name, rt.cfg.unit, rt.last_error, rt.backoff)
        rt.online = online
        rt.gate, value = rt.gate.update(online, self.clock(), AVAILABILITY_MIN_INTERVAL_S)
        if value is not None:
            self._publish_availability(rt, value)

    def _failed(self, rt: MeterRuntime, task: str, exc: Exception) -> None:
        rt.failures += 1
        rt.errors += 1
        rt.last_error = str(exc)
        now = self.clock()
        log.debug("%s: %s failed (%d in a row): %s", rt.name, task, rt.failures, exc)
        if rt.failures < self.cfg.offline_after and rt.online:
            self._publish_state(rt)
            return
        # Offline (or never came up): stop the regular reads and probe with back-off.
        for key in ("config", "full", "fast"):
            rt.due.pop(key, None)
        rt.due["init"] = now + rt.backoff
        if rt.online or rt.gate.published is None:
            self._set_online(rt, False)
        rt.backoff = min(rt.backoff * 2, self.cfg.backoff_max_s)

    # -- commands -----------------------------------------------------------------------------

    def publish_result(self, name: str, setting: str, requested: str, ok: bool,
                       value: object, error: str | None) -> None:
        payload = {"setting": setting, "requested": requested, "ok": ok, "value": value,
                   "error": error}
        self.hub.send(self.topics.result(name), json.dumps(payload))
        if ok:
            log.info("%s: %s set to %s", name, setting, value)
        else:
            log.warning("%s: %s %r rejected: %s", name, setting, requested, error)

    async def _execute(self, req: CommandRequest) -> None:
        rt = self.meters[req.meter]
        now = self.clock()
        current = rt.setup.settings.get(req.key) if rt.setup else None
        if not rt.cfg.allow_writes:
            self.publish_result(rt.name, req.key, req.payload[:64].decode("utf-8", "replace"),
                                False, current, "writes are disabled for this meter (set "
                                "allow_writes: true in its configuration)")
            return
        parsed = parse_command(req.key, req.payload, rt.setup, now, rt.last_demand_command)
        if isinstance(parsed, Rejection):
            self.publish_result(rt.name, parsed.setting, parsed.requested, False, current,
                                parsed.error)
            return
        error: str | None = None
        before = rt.setup
        try:
            # No retry: a write is read back instead, so it is never sent twice.
            await self.client.write_register(rt.cfg.unit, parsed.reg - 1, parsed.value,
                                             retries=0)
            rt.writes += 1
        except ModbusExceptionReply as exc:
            error = f"the meter refused {parsed.requested}: {exc}"
        except ModbusError as exc:
            error = f"no confirmation from the meter ({exc})"
        if parsed.is_button and error is None:
            command = s4k.COMMANDS_BY_KEY[parsed.setting]
            if command.min_interval_s:
                rt.last_demand_command = now
            rt.resets |= set(command.resets)
        try:
            words = await self.client.read_registers(rt.cfg.unit, CONFIG_START - 1,
                                                     CONFIG_COUNT)
            setup = decode_setup(words)
        except (ModbusError, DecodeError) as exc:
            self.publish_result(rt.name, parsed.setting, parsed.requested, False, None,
                                error or f"written, but the read-back failed: {exc}")
            return
        self._apply_setup(rt, setup)
        value: object = None
        if parsed.is_button:
            if error is None and parsed.setting == "reset_energy" and before is not None and \
                    setup.status.get("energy_reset_count") == \
                    before.status.get("energy_reset_count"):
                error = "the meter did not count a reset (register 147 unchanged)"
        else:
            value = setup.settings.get(parsed.setting)
            if error is None and setup.setting_raw(parsed.setting) != parsed.value:
                error = f"the meter did not take {parsed.requested}; it holds {value}"
        self.publish_result(rt.name, parsed.setting, parsed.requested, error is None, value,
                            error)
        # Show the new set-up now, and read the measurements under it soon.
        self._publish_state(rt, force=True)
        if "full" in rt.due:
            rt.due["full"] = min(rt.due["full"], self.clock())
