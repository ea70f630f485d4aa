"""Run one set-up command on the bus task: validate, write once, read back, report.

The poller calls :func:`execute` ahead of every pending read, so a command never waits behind a
sweep and never runs concurrently with another transaction on the bus. What the executor needs
from the bus task is the small :class:`BusTask` interface, so this module does not depend on the
poller.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

from bridge.core.runtime import MeterRuntime
from bridge.errors import DecodeError, ModbusError, ModbusExceptionReply
from bridge.meters.profile import MeterSetup, Rejection
from bridge.modbus.client import BusClient
from bridge.modbus.reader import read_setup
from bridge.model.topics import Topics
from bridge.mqtt.hub import Hub

log = logging.getLogger(__name__)

WRITES_DISABLED = ("writes are disabled for this meter (set allow_writes: true in its "
                   "configuration)")
RESETS_DISABLED = ("resets are disabled for this meter (set allow_resets: true in its "
                   "configuration)")


class Outcome(Enum):
    """How a command ended (the result message says it in words)."""

    DONE = "done"
    WRITES_DISABLED = "writes_disabled"
    #: Refused by validation: nothing reached the meter.
    INVALID = "invalid"
    #: Sent, but the meter refused it, did not confirm it, or does not hold the value.
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CommandRequest:
    meter: str
    key: str
    payload: bytes
    #: Set to the outcome when the command has run (for a sender that waits for it).
    reply: asyncio.Future[Outcome] | None = field(default=None, compare=False)


class BusTask(Protocol):
    """The bus task as a command sees it."""

    client: BusClient
    hub: Hub
    topics: Topics

    def clock(self) -> float: ...

    def take_setup(self, rt: MeterRuntime, setup: MeterSetup) -> None: ...

    def publish_state(self, rt: MeterRuntime, force: bool = False) -> None: ...


def publish_result(hub: Hub, topics: Topics, name: str, setting: str, requested: str, ok: bool,
                   value: object, error: str | None, note: str | None = None) -> None:
    """``<base>/<meter>/result``, and one log line."""
    payload: dict[str, object] = {"setting": setting, "requested": requested, "ok": ok,
                                  "value": value, "error": error}
    if note:
        # Only when there is something to do next (e.g. the system voltage after a PT ratio).
        payload["note"] = note
    hub.send(topics.result(name), json.dumps(payload))
    if ok:
        log.info("%s: %s set to %s%s", name, setting, value, f" ({note})" if note else "")
    else:
        log.warning("%s: %s %r rejected: %s", name, setting, requested, error)


async def execute(bus: BusTask, rt: MeterRuntime, req: CommandRequest) -> Outcome:
    def report(setting: str, requested: str, ok: bool, value: object,
               error: str | None, note: str | None = None) -> None:
        publish_result(bus.hub, bus.topics, rt.name, setting, requested, ok, value, error, note)

    now = bus.clock()
    current = rt.setup.settings.get(req.key) if rt.setup else None
    if not rt.cfg.allow_writes:
        report(req.key, req.payload[:64].decode("utf-8", "replace"), False, current,
               WRITES_DISABLED)
        return Outcome.WRITES_DISABLED
    if any(c.key == req.key and c.guarded for c in rt.profile.commands) \
            and not rt.cfg.allow_resets:
        report(req.key, req.payload[:64].decode("utf-8", "replace"), False, None,
               RESETS_DISABLED)
        return Outcome.WRITES_DISABLED  # not allowed for this meter, like a write
    parsed = rt.profile.parse_command(req.key, req.payload, rt.setup, now,
                                      rt.last_demand_command)
    if isinstance(parsed, Rejection):
        report(parsed.setting, parsed.requested, False, current, parsed.error)
        return Outcome.INVALID
    error: str | None = None
    before = rt.setup
    try:
        # No retry: the write is read back instead, so it is never sent twice.
        await bus.client.write_register(rt.cfg.unit, parsed.reg - 1, parsed.value, retries=0)
    except ModbusExceptionReply as exc:
        error = f"the meter refused {parsed.requested}: {exc}"
    except ModbusError as exc:
        error = f"no confirmation from the meter ({exc})"
    if parsed.is_button and error is None:
        command = next(c for c in rt.profile.commands if c.key == parsed.setting)
        if command.min_interval_s:
            rt.last_demand_command = now
        rt.resets |= set(command.resets)
    try:
        setup = await read_setup(bus.client, rt.cfg.unit, rt.profile)
        if error is None and parsed.setting == "reset_energy" and before is not None:
            setup = await _wait_reset_counted(bus, rt, before, setup)
    except (ModbusError, DecodeError) as exc:
        report(parsed.setting, parsed.requested, False, None,
               error or f"written, but the read-back failed: {exc}")
        return Outcome.FAILED
    bus.take_setup(rt, setup)
    value: object = None
    hint = rt.profile.system_type_hint(before, setup) if before is not None else None
    if parsed.is_button:
        if error is None and parsed.setting == "reset_energy" and before is not None and \
                not rt.profile.released_by(before, setup):
            error = (f"the meter did not count a reset (register 147 unchanged after "
                     f"{rt.profile.reset_count_wait_s:g} s)")
    else:
        value = setup.settings.get(parsed.setting)
        if error is None and setup.setting_raw(parsed.setting) != parsed.value:
            error = f"the meter did not take {parsed.requested}; it holds {value}"
    # What to do next: from the command's checks, or a system type that changed what the
    # system voltage means.
    note = "; ".join(n for n in (parsed.note, hint) if n) if error is None else None
    report(parsed.setting, parsed.requested, error is None, value, error, note or None)
    # Show the new set-up now, and read the measurements under it soon.
    bus.publish_state(rt, force=True)
    if "init" not in rt.due:
        rt.due["full"] = bus.clock()  # in the meter's next slot
    return Outcome.DONE if error is None else Outcome.FAILED


#: How often the set-up is re-read while waiting for a reset to be counted.
RESET_RECHECK_S = 0.25


async def _wait_reset_counted(bus: BusTask, rt: MeterRuntime, before: MeterSetup,
                              setup: MeterSetup) -> MeterSetup:
    """Re-read the set-up until the meter counts the reset (it may act on a command only at
    the end of its calculation cycle), for up to the profile's ``reset_count_wait_s``."""
    deadline = bus.clock() + rt.profile.reset_count_wait_s
    while not rt.profile.released_by(before, setup) and bus.clock() < deadline:
        await asyncio.sleep(RESET_RECHECK_S)
        setup = await read_setup(bus.client, rt.cfg.unit, rt.profile)
    return setup
