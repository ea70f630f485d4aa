"""A dead meter must not stall its bus; a flapping one must not flood MQTT or the log."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.core.availability import AVAILABILITY_MIN_INTERVAL_S
from bridge.sim.broker import Broker
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus, total_polls

UNITS = list(range(1, 11))
DEAD = 5
TIMEOUT_S = 0.2
BACKOFF_MAX_S = 4.0
WINDOW_S = 10.0


async def test_one_dead_meter_of_ten_costs_the_others_little(broker: Broker, sim_factory: Any,
                                                            tmp_path: Path) -> None:
    sim = sim_factory(UNITS, 40)
    _, port = await sim.serve_tcp()
    meters = [{"name": f"m{u}", "unit": u, "poll_interval": 0} for u in UNITS]
    bus = tcp_bus(port, meters, timeout=TIMEOUT_S, offline_after=2, backoff_s=1.0,
                  backoff_max_s=BACKOFF_MAX_S)
    cfg = bridge_config(broker.port, [bus], tmp_path)
    loop = asyncio.get_running_loop()
    async with recorder(broker.port) as rec, running(cfg) as service:
        for u in UNITS:
            await rec.wait_message(f"series4000/m{u}/state")
        # All ten alive: the reference rate of the nine that stay alive.
        before, t0 = total_polls(service, DEAD), loop.time()
        await asyncio.sleep(WINDOW_S / 2)
        rate_alive = (total_polls(service, DEAD) - before) / (loop.time() - t0)
        sim.meters[DEAD].alive = False
        await rec.wait_for(lambda r: getattr(r.last(f"series4000/m{DEAD}/availability"),
                                             "payload", "") == "offline", 15, "dead offline")
        # Let the back-off reach its ceiling, then measure.
        await asyncio.sleep(2 * BACKOFF_MAX_S)
        dead = service.pollers[0].meters[f"m{DEAD}"]
        before, failures_before, t1 = total_polls(service, DEAD), dead.errors, loop.time()
        await asyncio.sleep(WINDOW_S)
        elapsed = loop.time() - t1
        rate_dead = (total_polls(service, DEAD) - before) / elapsed
        probes = dead.errors - failures_before
        others_online = all(rt.online for rt in service.pollers[0].meters.values()
                            if rt.cfg.unit != DEAD)
    lost_s = probes * TIMEOUT_S
    print(f"\ndead meter: {probes} probes in {elapsed:.1f} s ({lost_s / elapsed:.1%} of the bus); "
          f"the nine others at {rate_dead / rate_alive:.0%} of their rate with all ten alive")
    # One request without retries per back-off period: the bus loses at most that much time.
    assert 1 <= probes <= elapsed / BACKOFF_MAX_S + 1
    assert lost_s / elapsed <= 0.10
    assert others_online


async def test_a_flapping_meter_is_rate_limited_and_logged_once(
        broker: Broker, sim_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge.core.availability")
    sim = sim_factory([1, 2], 40)
    _, port = await sim.serve_tcp()
    meters = [{"name": f"m{u}", "unit": u, "poll_interval": 0.2} for u in (1, 2)]
    bus = tcp_bus(port, meters, timeout=0.1, offline_after=1, backoff_s=0.2, backoff_max_s=1.0)
    cfg = bridge_config(broker.port, [bus], tmp_path)
    loop = asyncio.get_running_loop()
    async with recorder(broker.port) as rec, running(cfg) as service:
        await rec.wait_message("series4000/m2/state")
        t0 = loop.time()
        flips = 0
        while loop.time() - t0 < 14:  # dead 1.5 s, alive 1.5 s, ...
            sim.meters[2].alive = not sim.meters[2].alive
            flips += 1
            await asyncio.sleep(1.5)
        sim.meters[2].alive = True
        changes = [m for m in rec.on("series4000/m2/availability") if m.at >= t0]
        rt = service.pollers[0].meters["m2"]
        # Settled: the last held-back change goes out within one interval.
        await rec.wait_for(lambda r: r.last("series4000/m2/availability").payload == "online"
                           and rt.online, AVAILABILITY_MIN_INTERVAL_S + 5, "m2 back online")
        m1_changes = [m for m in rec.on("series4000/m1/availability") if m.at >= t0]
    transitions = [r for r in caplog.records if r.name == "bridge.core.availability"
                   and r.levelno >= logging.INFO and "m2" in r.getMessage()]
    flap_lines = [r for r in transitions if "keeps going online and offline" in r.getMessage()]
    print(f"\nflapping: {flips} flips in 14 s -> {len(changes)} availability messages, "
          f"{len(transitions)} log lines at INFO or above")
    assert flips >= 8
    assert 1 <= len(changes) <= 14 / AVAILABILITY_MIN_INTERVAL_S + 2, [m.payload for m in changes]
    assert len(flap_lines) == 1
    assert len(transitions) <= 3, [r.getMessage() for r in transitions]
    assert m1_changes == []  # the healthy neighbour never blinked
