"""Modbus TCP clients reading one block at a fixed rate, in their own process (so their load
does not disturb the emulator's timing in the benchmark's process).

    python -m tests.bench.share_clients --port 5020 --unit 1 --address 256 --count 90 \
        --clients 2 --rate 50 --seconds 20

Prints one JSON object: reads answered, exceptions by code, and the achieved rate.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse


async def client(args: argparse.Namespace, answers: Counter[str]) -> None:
    modbus = AsyncModbusTcpClient("127.0.0.1", port=args.port, timeout=5, retries=0)
    if not await modbus.connect():
        raise SystemExit(f"cannot connect to 127.0.0.1:{args.port}")
    period_s = 1.0 / args.rate
    start = time.monotonic()
    n = 0
    try:
        while time.monotonic() - start < args.seconds:
            reply = await modbus.read_holding_registers(args.address, count=args.count,
                                                        device_id=args.unit)
            if isinstance(reply, ExceptionResponse):
                answers[f"exception_{reply.exception_code:02d}"] += 1
            else:
                answers["words_ok" if len(reply.registers) == args.count else "short"] += 1
            n += 1
            # A fixed schedule, not a fixed pause: the rate holds whatever an answer costs.
            await asyncio.sleep(max(0.0, start + n * period_s - time.monotonic()))
    finally:
        modbus.close()


async def main(args: argparse.Namespace) -> dict[str, object]:
    answers: Counter[str] = Counter()
    started = time.monotonic()
    await asyncio.gather(*(client(args, answers) for _ in range(args.clients)))
    elapsed = time.monotonic() - started
    total = sum(answers.values())
    return {"clients": args.clients, "reads": total, "answers": dict(answers),
            "reads_per_s": round(total / elapsed, 1)}


def cli() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--unit", type=int, default=1)
    parser.add_argument("--address", type=int, default=256)
    parser.add_argument("--count", type=int, default=90)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--rate", type=float, default=50.0, help="reads per second per client")
    parser.add_argument("--seconds", type=float, default=20.0)
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
    return 0


if __name__ == "__main__":
    sys.exit(cli())
