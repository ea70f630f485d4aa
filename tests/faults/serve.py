"""Simulated meters behind the fault-injection proxy, as a process (for the soak run).

    python -m tests.faults.serve --port 5020 --units 1-63 --fault-rate 0.05

Prints one line when it listens, then serves until stopped; at the end it prints the faults it
injected by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from bridge.cli.args import parse_units
from bridge.sim.server import Simulator
from tests.faults.proxy import FaultPlan, FaultProxy


async def serve(port: int, units: list[int], rate: float, seed: int) -> None:
    sim = Simulator.build(units, 40)
    upstream = await sim.serve_rtu_over_tcp()
    proxy = FaultProxy(upstream, FaultPlan.uniform(rate), seed=seed)
    proxy.port = port
    await proxy.start()
    sim.start_clock()
    print(f"rtu-over-tcp 127.0.0.1:{port} with {rate:.0%} damaged frames", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await proxy.stop()
    await sim.stop()
    print({k.value: v for k, v in proxy.counts.items()}, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--units", default="1")
    parser.add_argument("--fault-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(serve(args.port, parse_units(args.units), args.fault_rate, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
