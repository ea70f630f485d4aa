"""``read --raw``: every register of the map as one meter answers it (see
:mod:`bridge.model.dump` for the file)."""

from __future__ import annotations

from bridge.errors import ModbusExceptionReply
from bridge.meters.profile import MeterProfile
from bridge.modbus.client import BusClient
from bridge.modbus.reader import read_adaptive
from bridge.model.dump import Refused, RegisterDump, SlaveIdAnswer


async def read_dump(bus: BusClient, unit: int, profile: MeterProfile) -> RegisterDump:
    """Read the profile's whole map (only registers of the map, never across the gaps between
    its blocks), the 0x2B objects and the 0x11 answer; refusals are recorded, not raised."""
    answers = await read_adaptive(bus, unit, profile.register_map, max_gap=0)
    words = {block.start + i: word for block, block_words in answers.blocks
             for i, word in enumerate(block_words)}
    refused = tuple(Refused(row.reg, row.words, code)
                    for row, code in sorted(answers.refused.items(), key=lambda rc: rc[0].reg))
    identification: dict[int, str] | int
    try:
        identification = await bus.read_device_identification(unit)
    except ModbusExceptionReply as exc:
        identification = exc.code
    slave_id: SlaveIdAnswer | int
    try:
        answer = await bus.report_slave_id(unit)
        slave_id = SlaveIdAnswer(answer.slave_id, answer.running, answer.text)
    except ModbusExceptionReply as exc:
        slave_id = exc.code
    return RegisterDump(unit, words, refused, answers.limits.accepted, answers.limits.refused,
                        identification, slave_id)
