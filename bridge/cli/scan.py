"""``python -m bridge scan``: find Series 4000 meters on a bus, with a progress bar."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TextIO

from bridge.cli.tables import table
from bridge.errors import BusUnavailable
from bridge.meters.profile import Identity
from bridge.meters.series4000 import PROFILE
from bridge.modbus.client import BusClient
from bridge.modbus.links import Link
from bridge.modbus.reader import probe


def progress_bar(done: int, total: int, found: int, width: int = 30) -> str:
    filled = width * done // total if total else width
    return f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} units, {found} found"


async def scan(link: Link, units: Sequence[int], timeout: float, out: TextIO) -> int:
    """Probe each unit; print a table of what answered. Exit 1 if nothing answered."""
    bus = BusClient(link, timeout=timeout, retries=0)
    found: list[tuple[int, Identity]] = []
    tty = out.isatty()
    try:
        for i, unit in enumerate(units, 1):
            identity = await probe(bus, unit, PROFILE)
            if identity is not None:
                found.append((unit, identity))
            if tty:
                out.write(progress_bar(i, len(units), len(found)))
                out.flush()
    except BusUnavailable as exc:
        print(f"\nerror: {exc}", file=out)
        return 1
    finally:
        bus.close()
    if tty:
        out.write("\n")
    if not found:
        print(f"no meter answered on {link.describe()} (units {units[0]}..{units[-1]})",
              file=out)
        return 1
    rows = [(str(u), i.vendor or "?", i.product or "?", i.firmware or "?") for u, i in found]
    print(table(rows, ("unit", "vendor", "product", "firmware")), file=out)
    return 0
