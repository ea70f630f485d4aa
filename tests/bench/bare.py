"""The reference for CPU cost: a bare pymodbus loop reading the float block, nothing else.

    python -m tests.bench.bare --port PORT --units 10 --seconds 20

Reads 90 registers from 257 of each unit in turn, as fast as the line allows, with the same
client class and framer the bridge uses (RTU over TCP), without decoding or publishing. Prints
the number of reads when stopped (SIGTERM) or after ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType


async def connect(port: int) -> tuple[AsyncModbusTcpClient, asyncio.Event]:
    """The reference loops' client (the bridge's client class and framer), connected, and the
    event SIGTERM sets."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port, framer=FramerType.RTU, timeout=2,
                                  retries=0)
    if not await client.connect():
        raise SystemExit(f"no Modbus server answers at 127.0.0.1:{port}")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    return client, stop


async def loop(port: int, units: int, seconds: float) -> int:
    client, stop = await connect(port)
    reads = 0
    deadline = time.monotonic() + seconds
    while not stop.is_set() and time.monotonic() < deadline:
        for unit in range(1, units + 1):
            await client.read_holding_registers(256, count=90, device_id=unit)
            reads += 1
    client.close()
    return reads


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=3600)
    args = parser.parse_args()
    print(asyncio.run(loop(args.port, args.units, args.seconds)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
