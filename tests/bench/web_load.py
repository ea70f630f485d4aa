"""What a browser costs the bus: the status page's clients against the same run without them.

One bridge process on a line-rate emulated bus with a fast tier that asks for more than the line
can carry (so the line is saturated and any time the bridge loses shows: in utilisation and in
how old the fast tier's values get); two windows of the same length in the same run, each a
whole number of full-read periods, first without any web client, then with one client that polls
``/api/status`` twice a second and ``/metrics`` every few seconds (a scraper) while holding
``/api/events`` open (an open page). Utilisation (ideal wire time / elapsed) and the fast tier's
freshness (how old each meter's power got) are compared between the two windows.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from bridge.sim.broker import Broker, free_port
from bridge.sim.server import Simulator
from tests.bench.emulator import BusEmulator
from tests.bench.harness import (
    FRESH_POWER,
    bridge_process,
    bus_config,
    counters_delta,
    cpu_s,
    ideal_s,
    mqtt_counter,
    wait_answered,
)

Result = dict[str, Any]
#: The client: /api/status this often, /metrics every ``METRICS_EVERY`` polls.
STATUS_EVERY_S = 0.5
METRICS_EVERY = 10


@dataclass
class ClientCount:
    status: int = 0
    metrics: int = 0
    events: int = 0
    event_bytes: int = 0


@contextlib.asynccontextmanager
async def web_client(url: str) -> AsyncIterator[ClientCount]:
    """An open page (the event stream read as it comes) and a polling client, until exit."""
    count = ClientCount()

    async def stream(session: aiohttp.ClientSession) -> None:
        async with session.get(url + "api/events") as response:
            async for line in response.content:
                count.event_bytes += len(line)
                count.events += line.startswith(b"event: ")

    async def poll(session: aiohttp.ClientSession) -> None:
        while True:
            async with session.get(url + "api/status") as response:
                await response.read()
            count.status += 1
            if count.status % METRICS_EVERY == 0:
                async with session.get(url + "metrics") as response:
                    await response.read()
                count.metrics += 1
            await asyncio.sleep(STATUS_EVERY_S)

    async with aiohttp.ClientSession() as session:
        tasks = [asyncio.create_task(stream(session)), asyncio.create_task(poll(session))]
        try:
            yield count
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


async def _listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the status page did not open port {port}") from None
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


async def web_cost(broker: Broker, window_s: float, meters: int = 63, baud: int = 19200,
                   full_s: float = 29.0, fast_s: float = 1.0) -> Result:
    from tests.bench.run import max_gap, meters_cfg, summary

    sim = Simulator.build(range(1, meters + 1), 40)
    bus = await BusEmulator.for_simulator(sim, f"{baud} 8N1", turnaround_s=0.0)
    host, port = await bus.serve_tcp()
    web_port = free_port()
    cfg = meters_cfg(meters, poll_interval=full_s, fast_interval=fast_s, fast_keys=["power_w"],
                     config_interval=600)
    windows: dict[str, Result] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = bus_config(host, port, baud, cfg, broker.port, Path(tmp) / "state",
                                publish=FRESH_POWER, web={"host": "127.0.0.1", "port": web_port})
            async with mqtt_counter(broker.port, record=True) as mqtt, \
                    bridge_process(config, Path(tmp)) as pid:
                await wait_answered(bus, 3 * meters, 120)
                await _listening(web_port)
                await asyncio.sleep(min(full_s, window_s))  # past the first full cycle
                for name in ("without_client", "with_client", "without_client_again"):
                    client = (web_client(f"http://127.0.0.1:{web_port}/")
                              if name == "with_client" else contextlib.nullcontext(None))
                    async with client as count:
                        c0, t0, cpu0 = (bus.counters.__class__(**vars(bus.counters)),
                                        time.monotonic(), cpu_s(pid))
                        mqtt.states.clear()
                        await asyncio.sleep(window_s)
                        d, elapsed = counters_delta(c0, bus.counters), time.monotonic() - t0
                        cpu = cpu_s(pid) - cpu0
                        states = dict(mqtt.states)
                    ages = [max_gap(m, "power_w", t0, t0 + elapsed) for m in states.values()]
                    windows[name] = {
                        "window_s": round(elapsed, 1),
                        "utilisation": round(ideal_s(bus, d) / elapsed, 4),
                        "silence_violations": d.silence_violations,
                        "power_age_s": summary(ages),
                                                "bridge_cpu_share": round(cpu / elapsed, 4),
                        "client": None if count is None else vars(count).copy(),
                    }
    finally:
        await bus.stop()
        await sim.stop()
    # The windows without a client before and after say how much the shared machine alone
    # moves the figures.
    off, on, again = (windows[k] for k in ("without_client", "with_client",
                                            "without_client_again"))
    off_utilisation = (off["utilisation"] + again["utilisation"]) / 2
    off_age = (off["power_age_s"]["max"] + again["power_age_s"]["max"]) / 2
    return {"meters": meters, "baud": baud, "fast_interval_s": fast_s,
            "full_interval_s": full_s, **windows,
            "utilisation_ratio": round(on["utilisation"] / off_utilisation, 4),
            "power_age_max_ratio": round(on["power_age_s"]["max"] / off_age, 3)}


def line(r: Result) -> str:
    off, on, again = r["without_client"], r["with_client"], r["without_client_again"]
    client = on["client"]

    def three(key: str, fmt: str) -> str:
        return " / ".join(format(w[key], fmt) for w in (off, on, again))

    def ages(stat: str) -> str:
        return " / ".join(f"{w['power_age_s'][stat]}" for w in (off, on, again))

    return (f"- the status page's cost, {r['meters']} meters at {r['baud']} (power every "
            f"{r['fast_interval_s']} s), three {off['window_s']:.0f} s windows of one run, "
            f"without a client / with one polling /api/status every {STATUS_EVERY_S} s and "
            f"holding /api/events open ({client['status']} status, {client['metrics']} "
            f"metrics answers, {client['events']} events) / without again: utilisation "
            f"{three('utilisation', '.3f')} (ratio {r['utilisation_ratio']}); power age max "
            f"{ages('max')} s, median {ages('median')} s; t3.5 violations "
            f"{three('silence_violations', 'd')}; the bridge's CPU "
            f"{three('bridge_cpu_share', '.1%')} of a core")
