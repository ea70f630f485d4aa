"""`python -m bridge run` as users start it: signals, exit code, retained availability, and a
short soak for memory and task growth."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.sim.broker import Broker, free_port
from tests.conftest import ROOT
from tests.mqtt_helpers import recorder
from tests.service_helpers import tcp_bus


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


# The bridge alone in a child process, traced from its start (tests/memory_child.py), sampled
# at fixed numbers of polls after warm-up: a machine slowed by load takes longer to reach them
# but allocates the same per poll. A leak is a slope in bytes per poll; which objects happen to
# be alive at a sample is noise of about +-10 kB around a flat line, which the median of all
# pairwise slopes (Theil-Sen) ignores where a least-squares line or a first-to-last difference
# would not. 16 B per poll is 14 MB a day for 10 meters polled every second.
MAX_GROWTH_B_PER_POLL = 16
WARMUP_POLLS, STEP_POLLS, SAMPLES = 500, 200, 20
INJECTED_LEAK_B = 32  # kept per poll by the child when asked; about 75 B traced with the object


def theil_sen_slope(xs: list[int], ys: list[int]) -> float:
    return statistics.median((ys[j] - ys[i]) / (xs[j] - xs[i])
                             for i in range(len(xs)) for j in range(i + 1, len(xs))
                             if xs[j] != xs[i])


@pytest.mark.parametrize(("xs", "ys", "slope"), [
    ([0, 1, 2, 3], [5, 5, 5, 5], 0.0),
    ([0, 1, 2, 3, 4], [0, 2, 4, 6, 8], 2.0),
    ([0, 1, 2, 3, 4], [0, 2, 400, 6, 8], 2.0),  # one outlier does not move it
])
def test_theil_sen_slope(xs: list[int], ys: list[int], slope: float) -> None:
    assert theil_sen_slope(xs, ys) == slope


async def bridge_memory_samples(broker: Broker, tmp_path: Path,
                                leak_b: int = 0) -> list[dict[str, int]]:
    port = free_port()
    sim = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "simulate", "--tcp", f"127.0.0.1:{port}",
        "--units", "1-10", cwd=str(ROOT), stdout=asyncio.subprocess.PIPE)
    try:
        assert sim.stdout is not None
        await asyncio.wait_for(sim.stdout.readline(), 30)
        meters = [{"name": f"m{u}", "unit": u, "poll_interval": 0} for u in range(1, 11)]
        config = {"mqtt": {"host": "127.0.0.1", "port": broker.port},
                  "buses": [tcp_bus(port, meters)], "state_dir": str(tmp_path / "state")}
        path = tmp_path / "config.yaml"
        path.write_text(yaml.safe_dump(config))
        env = {**os.environ, "MEMORY_TEST_LEAK_BYTES": str(leak_b)}
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.memory_child", str(path), str(WARMUP_POLLS),
            str(STEP_POLLS), str(SAMPLES), cwd=str(ROOT), env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(child.communicate(), 400)
        finally:
            if child.returncode is None:
                child.kill()
                await child.wait()
    finally:
        sim.terminate()
        await sim.wait()
    assert child.returncode == 0, err.decode()[-3000:]
    samples = [json.loads(line) for line in out.decode().splitlines()]
    assert len(samples) == SAMPLES, out.decode()
    return samples


def growth_b_per_poll(samples: list[dict[str, int]]) -> float:
    return theil_sen_slope([s["cycles"] for s in samples], [s["traced_b"] for s in samples])


@pytest.mark.timeout(480)
async def test_no_growth_of_memory_or_tasks(broker: Broker, tmp_path: Path) -> None:
    """A short version of the 30-minute run: 10 meters polled continuously, 4000 polls."""
    samples = await bridge_memory_samples(broker, tmp_path)
    growth = growth_b_per_poll(samples)
    print(f"\nbridge traced memory: {growth:+.2f} B per poll, samples "
          f"{[s['traced_b'] for s in samples]}")
    assert growth < MAX_GROWTH_B_PER_POLL, f"{growth:.1f} B per poll: {samples}"
    tasks = [s["tasks"] for s in samples]
    assert max(tasks[SAMPLES // 2:]) <= max(tasks[:SAMPLES // 2]) + 2, tasks


@pytest.mark.timeout(480)
async def test_memory_criterion_catches_a_small_leak(broker: Broker, tmp_path: Path) -> None:
    """The same run with a leak injected into the child: the criterion must see it."""
    samples = await bridge_memory_samples(broker, tmp_path, leak_b=INJECTED_LEAK_B)
    growth = growth_b_per_poll(samples)
    print(f"\nbridge traced memory with {INJECTED_LEAK_B} B kept per poll: "
          f"{growth:+.2f} B per poll")
    assert growth >= MAX_GROWTH_B_PER_POLL, f"{growth:.1f} B per poll: {samples}"
