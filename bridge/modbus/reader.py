"""Read a meter: identity, set-up, measurements (async, over a :class:`BusClient`).

Used by ``bridge read`` and ``bridge scan`` and by the poller, so that a person checking a meter
by hand sees exactly what the service would publish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.errors import ModbusExceptionReply, ModbusTimeout
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import (
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
from bridge.meters.series4000.validity import is_number
from bridge.modbus.client import BusClient
from bridge.model import codec
from bridge.model.registers import ReadBlock


@dataclass(frozen=True, slots=True)
class Identity:
    vendor: str | None = None
    product: str | None = None
    firmware: str | None = None


async def read_identity(bus: BusClient, unit: int) -> Identity:
    """Function 0x2B (vendor, product, revision); register 7001 if the meter refuses 0x2B."""
    try:
        info = await bus.read_device_identification(unit)
        return Identity(info.get(0), info.get(1), info.get(2))
    except ModbusExceptionReply:
        pass
    words = await bus.read_registers(unit, s4k.REG_FIRMWARE - 1, 1)
    return Identity(s4k.MANUFACTURER, None, s4k.firmware_label(words[0]))


async def read_setup(bus: BusClient, unit: int) -> MeterSetup:
    words = await bus.read_registers(unit, CONFIG_START - 1, CONFIG_COUNT)
    return decode_setup(words)


async def read_blocks(bus: BusClient, unit: int, blocks: Sequence[ReadBlock],
                      scales: Mapping[int, int]) -> dict[str, Number | None]:
    values: dict[str, Number | None] = {}
    for block in blocks:
        words = await bus.read_registers(unit, block.address, block.count)
        for key, value in state_values(codec.decode_block(block, words, scales)).items():
            values.setdefault(key, value)
    return values


@dataclass(slots=True)
class Reading:
    unit: int
    identity: Identity
    setup: MeterSetup
    values: dict[str, Number | None]
    valid: frozenset[str]
    state: dict[str, StateValue] = field(default_factory=dict)


def build_state(setup: MeterSetup, values: Mapping[str, Number | None],
                valid: frozenset[str]) -> dict[str, StateValue]:
    """The state object: valid measurements that are numbers, settings, status, alarms."""
    state: dict[str, StateValue] = {k: v for k, v in values.items()
                                    if k in valid and v is not None and is_number(v)}
    state.update(setup.settings)
    state.update(setup.status)
    state["alarms"] = setup.alarms
    return state


async def read_once(bus: BusClient, unit: int) -> Reading:
    """One complete reading of one meter, as ``bridge read`` shows it."""
    identity = await read_identity(bus, unit)
    setup = await read_setup(bus, unit)
    blocks = measurement_plan(setup.system_type, include_uncertain=True)
    values = await read_blocks(bus, unit, blocks, setup.scales)
    valid = valid_state_keys(setup.system_type, reported_uncertain(values, setup.system_type))
    reading = Reading(unit, identity, setup, values, valid)
    reading.state = build_state(setup, values, valid)
    return reading


async def probe(bus: BusClient, unit: int) -> Identity | None:
    """Whether a Series 4000 answers at ``unit`` (for scanning); None if nobody answers."""
    try:
        identity = await read_identity(bus, unit)
    except ModbusTimeout:
        return None
    except ModbusExceptionReply:
        return Identity()
    # Plausibility: the float block must decode (a different device would answer otherwise).
    try:
        words = await bus.read_registers(unit, 256, 10)
    except (ModbusTimeout, ModbusExceptionReply):
        return identity
    energy = codec.decode_raw(s4k.FLOAT_BLOCK[0].dtype, words[0:2])
    if energy is not None and not 0 <= energy < 1e10:
        return Identity(identity.vendor, "not a Series 4000 float map", identity.firmware)
    return identity
