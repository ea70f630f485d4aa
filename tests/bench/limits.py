"""What a meter that refuses long reads costs: the same bus with meters that take the whole
float block in one read, and with meters that take at most 60 registers per read.

Runs the service in-process on an emulated RS-485 line, so that each meter's poll count and
what it learnt can be read from the poller, and the simulator counts requests and refusals.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.app.service import Service
from bridge.config import parse_config
from bridge.sim.broker import Broker
from bridge.sim.quirks import Quirks
from bridge.sim.server import Simulator
from tests.bench.emulator import BusEmulator
from tests.bench.harness import bus_config, counters_delta, ideal_s

Result = dict[str, Any]


async def read_cost(broker: Broker, window_s: float, quirks: Quirks, meters: int = 10,
                    baud: int = 19200, warmup_polls: int = 12) -> Result:
    """Polls per second and requests per poll, after every meter has been polled
    ``warmup_polls`` times (what it refuses is learnt in the first polls)."""
    sim = Simulator.build(range(1, meters + 1), 40)
    for meter in sim.meters.values():
        meter.quirks = quirks
    bus = await BusEmulator.for_simulator(sim, f"{baud} 8N1", turnaround_s=0.0)
    host, port = await bus.serve_tcp()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = bus_config(host, port, baud, [{"name": f"m{u}", "unit": u, "poll_interval": 0}
                                                for u in range(1, meters + 1)],
                             broker.port, Path(tmp) / "state")
            service = Service(parse_config(cfg, env={}))
            stop = asyncio.Event()
            task = asyncio.create_task(service.run(stop))
            try:
                runtimes = list(service.pollers[0].meters.values())
                t_start = time.monotonic()
                while min(rt.polls for rt in runtimes) < warmup_polls:
                    if time.monotonic() - t_start > 120:
                        raise RuntimeError("warm-up did not finish")
                    await asyncio.sleep(0.1)
                learning = {"requests": sim.requests, "refused": sim.refused_reads,
                            "polls": sum(rt.polls for rt in runtimes)}
                polls0, requests0, refused0 = learning["polls"], sim.requests, sim.refused_reads
                c0 = bus.counters.__class__(**vars(bus.counters))
                t0 = time.monotonic()
                await asyncio.sleep(window_s)
                elapsed = time.monotonic() - t0
                polls = sum(rt.polls for rt in runtimes) - polls0
                requests, refused = sim.requests - requests0, sim.refused_reads - refused0
                wire_s = ideal_s(bus, counters_delta(c0, bus.counters))
                blocks = [b.count for b in runtimes[0].full_blocks]
            finally:
                stop.set()
                await asyncio.wait_for(task, 15)
    finally:
        await bus.stop()
        await sim.stop()
    return {
        "max_read_registers": quirks.max_read_registers, "meters": meters, "baud": baud,
        "window_s": round(elapsed, 2), "polls_per_s": round(polls / elapsed, 2),
        "requests_per_poll": round(requests / polls, 3) if polls else None,
        # Line time per poll at the baud rate (frames and silences): what the extra requests
        # cost whatever the machine's load.
        "wire_ms_per_poll": round(1000 * wire_s / polls, 2) if polls else None,
        "refused_after_warmup": refused, "plan_registers": blocks,
        "learning": {"polls": learning["polls"], "requests": learning["requests"],
                     "refused": learning["refused"]},
    }


async def limited_reads(broker: Broker, window_s: float) -> Result:
    whole = await read_cost(broker, window_s, Quirks())
    limited = await read_cost(broker, window_s, Quirks(max_read_registers=60))
    return {"whole": whole, "max_60": limited,
            "wire_time_ratio": round(limited["wire_ms_per_poll"] / whole["wire_ms_per_poll"], 3)}
