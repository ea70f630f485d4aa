"""``python -m bridge check-wiring``: the commissioning check against one meter.

Reads the meter a few times over ``--seconds`` and reports the findings present in every
reading, so a passing load change does not raise one. Exit 0 when nothing needs attention,
3 when there is an error or a warning.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from bridge.cli.tables import table
from bridge.meters.findings import Finding, blocking, persistent
from bridge.meters.profile import MeterProfile
from bridge.modbus.client import BusClient
from bridge.modbus.reader import read_once

#: One reading per second over the check (at least one, at most this many).
READ_EVERY_S = 1.0
MAX_READS = 30


def read_times(seconds: float) -> list[float]:
    """When to read, in seconds from the start: evenly over ``seconds``, both ends included."""
    reads = max(1, min(MAX_READS, 1 + int(seconds / READ_EVERY_S)))
    if reads == 1:
        return [0.0]
    return [seconds * k / (reads - 1) for k in range(reads)]


async def check_once(bus: BusClient, unit: int,
                     profile: MeterProfile) -> tuple[int, tuple[Finding, ...]]:
    """One reading, as ``read`` shows it: its system type and its findings."""
    reading = await read_once(bus, unit, profile)
    values = {k: v for k, v in reading.state.items()
              if k in reading.valid and isinstance(v, (int, float))}
    return reading.setup.system_type, profile.check_wiring(reading.setup, values)


async def check_meter(bus: BusClient, unit: int, seconds: float,
                      profile: MeterProfile) -> tuple[int, tuple[Finding, ...]]:
    """The last reading's system type and the findings that held in every reading."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    found: list[tuple[Finding, ...]] = []
    system_type = 0
    for at in read_times(seconds):
        await asyncio.sleep(max(0.0, start + at - loop.time()))
        system_type, findings = await check_once(bus, unit, profile)
        found.append(findings)
    return system_type, persistent(found)


def as_json(system_type: int, findings: Sequence[Finding]) -> str:
    return json.dumps({"system_type": system_type,
                       "findings": [f.as_dict() for f in findings]})


def as_text(head: str, findings: Sequence[Finding]) -> str:
    if not findings:
        return f"{head}\nNo findings: the wiring looks right."
    rows = [(f.severity.value, f.code, f.phase or "-", f.message) for f in findings]
    fixes = [f"{k}. {f.code}{f' ({f.phase})' if f.phase else ''}: {f.fix}"
             for k, f in enumerate(findings, 1)]
    return "\n".join([head, "", table(rows, ("severity", "code", "phase", "finding")), "",
                      "What to do:", *fixes])


async def run_check(bus: BusClient, unit: int, seconds: float, as_json_out: bool,
                    profile: MeterProfile) -> bool:
    """Print the check's result; True when a finding is an error or a warning."""
    try:
        system_type, findings = await check_meter(bus, unit, seconds, profile)
    finally:
        bus.close()
    if as_json_out:
        print(as_json(system_type, findings))
    else:
        head = (f"Unit {unit}: {profile.system_type_label(system_type)}; "
                f"{len(read_times(seconds))} reading(s) over {seconds:g} s")
        print(as_text(head, findings))
    return blocking(findings)
