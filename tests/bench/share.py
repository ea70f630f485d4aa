"""The Modbus server's cost to the bus: the same bridge and line without and with clients.

Five meters at 19200 baud, everything read every second and total power every 0.5 s, the
Modbus server on with ``max_age_s: 2``. The second run adds two Modbus TCP clients (their own
process) reading meter 1's float block 50 times a second each, 100 reads per second in all.
From the emulator's record of every request: the bridge's own request rate, the float-block
reads of meter 1 (a read passed through would add to them), and the fast tier's read rate;
from MQTT, how old each meter's published power gets.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bridge.sim.broker import Broker, free_port
from bridge.sim.server import Simulator
from tests.bench.emulator import BusEmulator
from tests.bench.harness import (
    FRESH_POWER,
    ROOT,
    bridge_process,
    bus_config,
    mqtt_counter,
    wait_answered,
)

Result = dict[str, Any]

METERS, BAUD, FULL_S, FAST_S, MAX_AGE_S = 5, 19200, 1.0, 0.5, 2.0
CLIENTS, RATE_PER_CLIENT = 2, 50.0
#: Meter 1's float block (257-346) and one meter's total power (261-262), as request bytes.
FLOAT_BLOCK_UNIT1 = bytes([1, 3, 0x01, 0x00, 0x00, 90])


def power_request(unit: int) -> bytes:
    return bytes([unit, 3, 0x01, 0x04, 0x00, 2])


async def one_run(broker: Broker, window_s: float, clients: bool) -> Result:
    # Imported here: run.py imports this module, and the helpers live there.
    from tests.bench.run import max_gap, summary

    sim = Simulator.build(range(1, METERS + 1), 40)
    bus = await BusEmulator.for_simulator(sim, f"{BAUD} 8N1")
    host, port = await bus.serve_tcp()
    server_port = free_port()
    meters = [{"name": f"m{u}", "unit": u, "poll_interval": FULL_S, "fast_interval": FAST_S,
               "fast_keys": ["power_w"], "config_interval": 600} for u in range(1, METERS + 1)]
    peers: Result = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            # Every read published at once: the age measured is the bridge's, not a hold.
            config = bus_config(host, port, BAUD, meters, broker.port, Path(tmp) / "state",
                                publish={"min_interval_s": 0, **FRESH_POWER})
            config["modbus_server"] = {"port": server_port, "max_age_s": MAX_AGE_S}
            async with mqtt_counter(broker.port, record=True) as mqtt, \
                    bridge_process(config, Path(tmp)):
                await wait_answered(bus, 4 * METERS, 120)
                await asyncio.sleep(2 * FULL_S)  # every meter on its schedule
                proc = None
                if clients:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "tests.bench.share_clients", "--port",
                        str(server_port), "--clients", str(CLIENTS), "--rate",
                        str(RATE_PER_CLIENT), "--seconds", str(window_s + 1.0),
                        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
                    await asyncio.sleep(0.5)  # connected and reading
                answered0, requests0 = bus.counters.answered, bus.requests.copy()
                mqtt.states.clear()
                t0 = time.monotonic()
                await asyncio.sleep(window_s)
                elapsed = time.monotonic() - t0
                answered = bus.counters.answered - answered0
                requests = bus.requests - requests0
                states = dict(mqtt.states)
                if proc is not None:
                    out, _ = await proc.communicate()
                    peers = json.loads(out)
    finally:
        await bus.stop()
        await sim.stop()
    power_age = [max_gap(m, "power_w", t0, t0 + elapsed) for m in states.values()]
    fast_reads = sum(requests[power_request(u)] for u in range(1, METERS + 1))
    return {
        "clients": peers, "window_s": round(elapsed, 2),
        "bus_requests_per_s": round(answered / elapsed, 3),
        "float_block_reads_unit1": requests[FLOAT_BLOCK_UNIT1],
        "fast_reads_per_meter_per_s": round(fast_reads / METERS / elapsed, 3),
        "power_age_s": summary(power_age),
    }


def median_run(runs: list[Result]) -> Result:
    """The figures of several runs by their median (the machine is shared and noisy)."""
    out = dict(runs[0])
    for key in ("bus_requests_per_s", "float_block_reads_unit1", "fast_reads_per_meter_per_s"):
        out[key] = statistics.median(r[key] for r in runs)
    out["power_age_s"] = {k: statistics.median(r["power_age_s"][k] for r in runs)
                          for k in runs[0]["power_age_s"]}
    out["runs"] = runs
    return out


async def shared_bus(broker: Broker, window_s: float, pairs: int = 1) -> Result:
    """``pairs`` runs without and with clients, alternating, so that a change in the
    machine's load falls on both."""
    alone_runs, shared_runs = [], []
    for _ in range(pairs):
        alone_runs.append(await one_run(broker, window_s, clients=False))
        shared_runs.append(await one_run(broker, window_s, clients=True))
    alone, shared = median_run(alone_runs), median_run(shared_runs)
    return {
        "meters": METERS, "baud": BAUD, "full_interval_s": FULL_S, "fast_interval_s": FAST_S,
        "max_age_s": MAX_AGE_S, "without_clients": alone, "with_clients": shared,
        # The poller reads meter 1's float block once per FULL_S in both runs; a read passed
        # through for a client would be one more.
        "float_block_reads_added": shared["float_block_reads_unit1"]
        - alone["float_block_reads_unit1"],
        "poll_rate_ratio": round(shared["bus_requests_per_s"] / alone["bus_requests_per_s"], 4),
        "fast_rate_ratio": round(shared["fast_reads_per_meter_per_s"]
                                 / alone["fast_reads_per_meter_per_s"], 4),
        "power_age_median_ratio": round(shared["power_age_s"]["median"]
                                        / alone["power_age_s"]["median"], 4),
    }


def line(r: Result) -> str:
    a, s = r["without_clients"], r["with_clients"]
    peers = s["clients"]
    return (f"- sharing the bus ({r['meters']} meters at {r['baud']} baud, all every "
            f"{r['full_interval_s']} s, power every {r['fast_interval_s']} s, max_age_s "
            f"{r['max_age_s']}): {peers.get('clients')} clients read meter 1's float block "
            f"{peers.get('reads_per_s')} times a second ({peers.get('answers')}); float-block "
            f"reads on the bus {a['float_block_reads_unit1']} without clients, "
            f"{s['float_block_reads_unit1']} with them ({r['float_block_reads_added']:+d}); "
            f"the bridge's requests per second {a['bus_requests_per_s']} -> "
            f"{s['bus_requests_per_s']} (x{r['poll_rate_ratio']}), fast-tier reads per meter "
            f"and second {a['fast_reads_per_meter_per_s']} -> "
            f"{s['fast_reads_per_meter_per_s']} (x{r['fast_rate_ratio']}), published power "
            f"age median {a['power_age_s'].get('median')} -> "
            f"{s['power_age_s'].get('median')} s (x{r['power_age_median_ratio']}), max "
            f"{a['power_age_s'].get('max')} -> {s['power_age_s'].get('max')} s")
