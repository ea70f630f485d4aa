"""Read a meter: identity, set-up, measurements (async, over a :class:`BusClient`).

The one place that turns Modbus reads into a meter's picture: ``read`` and ``scan`` use it
directly, the poller and the command path through :func:`read_setup` and :func:`decode_answers`,
so a person checking a meter by hand sees exactly what the service publishes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bridge.errors import ModbusExceptionReply, ModbusTimeout
from bridge.meters.identity import with_firmware
from bridge.meters.profile import Identity, MeterProfile, MeterSetup, meter_state
from bridge.modbus.client import BusClient
from bridge.model import codec
from bridge.model.read_limits import (
    ADAPTS_TO,
    NOTHING_REFUSED,
    ReadLimits,
    absent_keys,
    after_answer,
    after_refusal,
    plan,
)
from bridge.model.registers import DataType, ReadBlock, Register
from bridge.model.values import Number, StateValue


async def read_identity(bus: BusClient, unit: int, profile: MeterProfile) -> Identity:
    """Function 0x2B (vendor, product, revision; the profile reads them by content); the
    firmware register if the meter refuses 0x2B or its answer carries no revision."""
    objects: dict[int, str] | None
    try:
        objects = await bus.read_device_identification(unit)
    except ModbusExceptionReply:
        objects = None
    identity = profile.identity(objects) if objects is not None else Identity()
    if identity.firmware is not None:
        return identity
    try:
        words = await bus.read_registers(unit, profile.firmware_register - 1, 1)
    except ModbusExceptionReply:
        if objects is None:
            raise  # neither 0x2B nor the firmware register answers: not this meter
        return identity
    from_register = profile.identity_from_firmware(words[0])
    if objects is None:
        return from_register
    return with_firmware(identity, from_register.firmware)


async def read_setup(bus: BusClient, unit: int, profile: MeterProfile,
                     retries: int | None = None) -> MeterSetup:
    """The configuration block, decoded: the one read of a meter's set-up."""
    block = profile.config_block
    words = await bus.read_registers(unit, block.address, block.count, retries=retries)
    return profile.decode_setup(words)


def decode_answers(answers: Sequence[tuple[ReadBlock, Sequence[int]]],
                   scales: Mapping[int, int]) -> dict[str, Number | None]:
    """The words of several read blocks -> values by state key (the first block wins)."""
    values: dict[str, Number | None] = {}
    for block, words in answers:
        for key, value in codec.values_by_key(codec.decode_block(block, words, scales)).items():
            values.setdefault(key, value)
    return values


async def read_blocks(bus: BusClient, unit: int, blocks: Sequence[ReadBlock],
                      scales: Mapping[int, int]) -> dict[str, Number | None]:
    answers = [(block, await bus.read_registers(unit, block.address, block.count))
               for block in blocks]
    return decode_answers(answers, scales)


@dataclass(slots=True)
class Answers:
    """What a meter answered to an adaptive read of some rows."""

    #: Each request it answered, with the words.
    blocks: list[tuple[ReadBlock, list[int]]] = field(default_factory=list)
    #: Rows it refused when read alone, with the exception code.
    refused: dict[Register, int] = field(default_factory=dict)
    limits: ReadLimits = NOTHING_REFUSED


async def read_adaptive(bus: BusClient, unit: int, rows: Sequence[Register],
                        limits: ReadLimits = NOTHING_REFUSED, max_gap: int = 10) -> Answers:
    """Read ``rows`` in as few requests as the meter answers, adapting the plan to its
    refusals (exceptions 02 and 03, see :mod:`bridge.model.read_limits`)."""
    return await read_planned(bus, unit, plan(rows, limits, max_gap), limits)


async def read_planned(bus: BusClient, unit: int, blocks: Sequence[ReadBlock],
                       limits: ReadLimits = NOTHING_REFUSED) -> Answers:
    """Read ``blocks`` (planned with ``limits``); a block the meter refuses with 02 or 03 is
    replaced by what the refusal teaches. Other exceptions are raised."""
    answers = Answers(limits=limits)
    pending = list(blocks)
    while pending:
        block = pending.pop(0)
        try:
            words = await bus.read_registers(unit, block.address, block.count)
        except ModbusExceptionReply as exc:
            if exc.code not in ADAPTS_TO:
                raise
            answers.limits, instead = after_refusal(answers.limits, block, exc.code)
            if len(block.registers) == 1:
                answers.refused[block.registers[0]] = exc.code
            pending[0:0] = instead
            continue
        answers.limits = after_answer(answers.limits, block)
        answers.blocks.append((block, words))
    return answers


async def read_rows(bus: BusClient, unit: int, rows: Sequence[Register],
                    scales: Mapping[int, int], limits: ReadLimits = NOTHING_REFUSED,
                    ) -> tuple[dict[str, Number | None], ReadLimits]:
    """Values by state key of ``rows`` (rows the meter lacks have none), and what was learnt."""
    answers = await read_adaptive(bus, unit, rows, limits)
    return decode_answers(answers.blocks, scales), answers.limits


@dataclass(slots=True)
class Reading:
    unit: int
    identity: Identity
    setup: MeterSetup
    values: dict[str, Number | None]
    valid: frozenset[str]
    state: dict[str, StateValue] = field(default_factory=dict)
    #: What the meter refused while being read (registers it lacks, the longest read).
    limits: ReadLimits = NOTHING_REFUSED


async def read_once(bus: BusClient, unit: int, profile: MeterProfile) -> Reading:
    """One complete reading of one meter, as ``bridge read`` shows it."""
    identity = await read_identity(bus, unit, profile)
    setup = await read_setup(bus, unit, profile)
    blocks = profile.measurement_plan(setup.system_type, include_uncertain=True)
    rows = [row for block in blocks for row in block.registers]
    values, limits = await read_rows(bus, unit, rows, setup.scales)
    valid = profile.valid_keys(setup.system_type,
                               profile.reported_uncertain(values, setup.system_type))
    valid -= absent_keys(limits, rows)  # the meter does not have them: not published
    return Reading(unit, identity, setup, values, valid, meter_state(setup, values, valid),
                   limits)


#: Energy totals above this are not a meter's float map (a different device answered).
_PLAUSIBLE_ENERGY_KWH = 1e10


async def probe(bus: BusClient, unit: int, profile: MeterProfile) -> Identity | None:
    """Whether a meter of the profile answers at ``unit`` (for scanning); None if nobody
    answers."""
    try:
        identity = await read_identity(bus, unit, profile)
    except ModbusTimeout:
        return None
    except ModbusExceptionReply:
        return Identity()
    # Plausibility: the first float of the measurement plan must decode as an energy total.
    first = profile.measurement_plan(profile.system_types[0])[0]
    try:
        words = await bus.read_registers(unit, first.address, 2)
    except (ModbusTimeout, ModbusExceptionReply):
        return identity
    energy = codec.decode_raw(DataType.FLOAT32, words[0:2])
    if energy is not None and not 0 <= energy < _PLAUSIBLE_ENERGY_KWH:
        return Identity(identity.vendor, f"not a {profile.model} float map", identity.firmware)
    return identity
