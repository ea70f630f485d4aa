"""SIGKILL of the bridge during a command: the restart never replays the write, and the
published energy total never goes down."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import yaml

from bridge.sim.broker import Broker
from tests.conftest import ROOT
from tests.mqtt_helpers import recorder


async def start_bridge(config: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "--config", str(config), cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)


async def test_kill_during_a_command_never_replays_it(broker: Broker, sim_factory: Any,
                                                      tmp_path: Path) -> None:
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "mqtt": {"host": "127.0.0.1", "port": broker.port},
        "buses": [{"name": "b", "transport": "tcp", "host": "127.0.0.1", "port": port,
                   "meters": [{"name": "main", "unit": 1, "poll_interval": 0.2,
                               "allow_writes": True}]}],
        "state_dir": str(tmp_path / "state")}))
    energies: list[float] = []
    async with recorder(broker.port) as rec:
        for attempt, delay in enumerate((0.0, 0.003, 0.02, 0.1)):
            proc = await start_bridge(config)
            await rec.wait_for(lambda r, n=attempt: len(
                [m for m in r.on("series4000/bridge/availability") if m.payload == "online"])
                > n, 20, "the bridge online")
            await asyncio.sleep(0.5)
            await rec.publish("series4000/main/set/ct_primary_a", str(200 + attempt))
            await asyncio.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        # A last start: it must not write anything by itself.
        writes_before = len(sim.write_log)
        proc = await start_bridge(config)
        try:
            await rec.wait_for(lambda r: len(
                [m for m in r.on("series4000/bridge/availability") if m.payload == "online"])
                > 4, 20, "the bridge online")
            await asyncio.sleep(3)
        finally:
            proc.terminate()
            await proc.wait()
        energies = [m.json()["energy_kwh"] for m in rec.on("series4000/main/state")
                    if "energy_kwh" in m.json()]
    writes = [w for w in sim.write_log if w.reg == 131]
    # Each command was written at most once, and nothing was written after the restarts.
    assert len(writes) <= 4
    assert len({w.values[0] for w in writes}) == len(writes)
    assert len(sim.write_log) == writes_before
    assert energies == sorted(energies), "an energy total went down across restarts"
