"""The floor for CPU cost: the least any bridge must do per poll, written as plainly as it goes.

    python -m tests.bench.floor --port PORT [--broker BROKER_PORT] [--units 10] [--baud 115200]

Each unit's set-up is read once; then, unit after unit, the blocks of its measurement plan are
read with the client class and framer the bridge uses (RTU over TCP), t3.5 of silence is kept
before every request (a master on an RS-485 line must), the answers are decoded with the bridge's
compiled decode plan and serialised as one JSON state; with ``--broker`` the state is published
at QoS 0 with aiomqtt after every poll. Nothing else: no scheduler, no validity or never-lower
rules, no deadbands, no availability, no status. Against the bare loop (``tests/bench/bare.py``)
it says what that work costs; against the bridge, what the bridge adds to it. Prints the number
of reads when stopped (SIGTERM) or after ``--seconds``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from contextlib import AsyncExitStack

import aiomqtt

from bridge.meters.series4000 import PROFILE
from bridge.modbus.links import silence_s
from bridge.model.decode_plan import compile_plan
from tests.bench.bare import connect

TOPIC = "floor"


async def loop(port: int, broker_port: int | None, units: int, seconds: float,
               baud: int) -> int:
    client, stop = await connect(port)
    silence = silence_s(baud)
    last_rx = 0.0

    async def read(unit: int, address: int, count: int) -> list[int]:
        nonlocal last_rx
        delay = last_rx + silence - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        answer = await client.read_holding_registers(address, count=count, device_id=unit)
        last_rx = time.monotonic()
        return list(answer.registers)

    plans = []
    for unit in range(1, units + 1):
        block = PROFILE.config_block
        setup = PROFILE.decode_setup(await read(unit, block.address, block.count))
        blocks = PROFILE.measurement_plan(setup.system_type)
        plans.append((unit, blocks, compile_plan(blocks, setup.scales)))
    reads = 0
    deadline = time.monotonic() + seconds
    async with AsyncExitStack() as stack:
        mqtt = None if broker_port is None else await stack.enter_async_context(
            aiomqtt.Client("127.0.0.1", broker_port))
        while not stop.is_set() and time.monotonic() < deadline:
            for unit, blocks, decoder in plans:
                answers = [(b, await read(unit, b.address, b.count)) for b in blocks]
                reads += len(blocks)
                state = json.dumps(decoder.decode(answers))
                if mqtt is not None:
                    await mqtt.publish(f"{TOPIC}/{unit}/state", state, qos=0, retain=True)
    client.close()
    return reads


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--broker", type=int, help="publish each state to this local broker")
    parser.add_argument("--units", type=int, default=10)
    parser.add_argument("--baud", type=int, default=115200, help="the line's speed, for t3.5")
    parser.add_argument("--seconds", type=float, default=3600)
    args = parser.parse_args()
    reads = asyncio.run(loop(args.port, args.broker, args.units, args.seconds, args.baud))
    print(reads, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
