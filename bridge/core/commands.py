"""Run one set-up command on the bus task: validate, write once, read back, report.

Called by :class:`bridge.core.poller.BusPoller` ahead of every pending read, so a command never
waits behind a sweep and never runs concurrently with another transaction on the bus.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bridge.errors import DecodeError, ModbusError, ModbusExceptionReply
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.commands import Rejection, parse_command
from bridge.meters.series4000.setup import CONFIG_COUNT, CONFIG_START, decode_setup

if TYPE_CHECKING:
    from bridge.core.poller import BusPoller

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommandRequest:
    meter: str
    key: str
    payload: bytes


def publish_result(poller: BusPoller, name: str, setting: str, requested: str, ok: bool,
                   value: object, error: str | None) -> None:
    payload = {"setting": setting, "requested": requested, "ok": ok, "value": value,
               "error": error}
    poller.hub.send(poller.topics.result(name), json.dumps(payload))
    if ok:
        log.info("%s: %s set to %s", name, setting, value)
    else:
        log.warning("%s: %s %r rejected: %s", name, setting, requested, error)


async def execute(poller: BusPoller, req: CommandRequest) -> None:
    rt = poller.meters[req.meter]
    now = poller.clock()
    current = rt.setup.settings.get(req.key) if rt.setup else None
    if not rt.cfg.allow_writes:
        publish_result(poller, rt.name, req.key, req.payload[:64].decode("utf-8", "replace"),
                       False, current, "writes are disabled for this meter (set "
                       "allow_writes: true in its configuration)")
        return
    parsed = parse_command(req.key, req.payload, rt.setup, now, rt.last_demand_command)
    if isinstance(parsed, Rejection):
        publish_result(poller, rt.name, parsed.setting, parsed.requested, False, current,
                       parsed.error)
        return
    error: str | None = None
    before = rt.setup
    try:
        # No retry: the write is read back instead, so it is never sent twice.
        await poller.client.write_register(rt.cfg.unit, parsed.reg - 1, parsed.value,
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
        words = await poller.client.read_registers(rt.cfg.unit, CONFIG_START - 1,
                                                   CONFIG_COUNT)
        setup = decode_setup(words)
    except (ModbusError, DecodeError) as exc:
        publish_result(poller, rt.name, parsed.setting, parsed.requested, False, None,
                       error or f"written, but the read-back failed: {exc}")
        return
    poller.take_setup(rt, setup)
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
    publish_result(poller, rt.name, parsed.setting, parsed.requested, error is None, value,
                   error)
    # Show the new set-up now, and read the measurements under it soon.
    poller.publish_state(rt, force=True)
    if "full" in rt.due:
        rt.due["full"] = min(rt.due["full"], poller.clock())
