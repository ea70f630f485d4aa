"""`python -m bridge run` as users start it: signals, exit code, retained availability, and a
short soak for memory and task growth."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.sim.broker import Broker, free_port
from tests.conftest import ROOT
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_publishes_offline_and_exits_0(sig: signal.Signals, broker: Broker,
                                                    sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    config = {"mqtt": {"host": "127.0.0.1", "port": broker.port},
              "buses": [{"name": "panel", "transport": "tcp", "host": "127.0.0.1",
                         "port": port, "meters": [{"name": "main", "unit": 1,
                                                   "poll_interval": 0.5}]}],
              "state_dir": str(tmp_path / "state")}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "--config", str(path), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        async with recorder(broker.port) as rec:
            await rec.wait_message("series4000/main/state", timeout=20)
            assert rec.last("series4000/bridge/availability").payload == "online"
            proc.send_signal(sig)
            code = await asyncio.wait_for(proc.wait(), 20)
            await rec.wait_for(lambda r: r.last("series4000/bridge/availability").payload
                               == "offline", 5, "offline on the bridge availability")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0
    async with recorder(broker.port) as late:  # retained for whoever comes later
        msg = await late.wait_message("series4000/bridge/availability")
        assert msg.payload == "offline" and msg.retain


async def test_no_growth_of_memory_or_tasks(broker: Broker, tmp_path: Path) -> None:
    """A short version of the 30-minute run: 10 meters polled continuously.

    The simulator runs in its own process so that only the bridge's allocations are traced.
    A leak grows with the number of polls; the samples must stay within the noise of which
    objects happen to be alive when a sample is taken.
    """
    port = free_port()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "simulate", "--tcp", f"127.0.0.1:{port}",
        "--units", "1-10", cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
    try:
        assert sim.stdout is not None
        await asyncio.wait_for(sim.stdout.readline(), 20)
        meters = [{"name": f"m{u}", "unit": u, "poll_interval": 0} for u in range(1, 11)]
        cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path)
        async with running(cfg) as service:
            poller = service.pollers[0]
            while poller.cycles < 300:  # warm-up: every meter online, plans made
                await asyncio.sleep(0.1)
            tracemalloc.start()
            samples, tasks = [], []
            start = poller.cycles
            for k in range(1, 7):
                while poller.cycles < start + 250 * k:
                    await asyncio.sleep(0.05)
                gc.collect()
                samples.append(tracemalloc.get_traced_memory()[0])
                tasks.append(len(asyncio.all_tasks()))
            tracemalloc.stop()
    finally:
        sim.terminate()
        await sim.wait()
    growth = sum(samples[3:]) / 3 - sum(samples[:3]) / 3
    assert growth < 32 * 1024, f"traced memory grew {growth:.0f} B over 750 polls: {samples}"
    assert max(tasks[3:]) <= max(tasks[:3]) + 2, tasks
