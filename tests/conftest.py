"""Shared fixtures: a real Mosquitto broker and real simulated meters on loopback."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.broker import Broker
from bridge.simulator import Simulator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@pytest.fixture
def broker() -> Iterator[Broker]:
    """A private Mosquitto on a free loopback port (no persistence)."""
    b = Broker().start()
    try:
        yield b
    finally:
        b.stop()


@pytest.fixture
async def sim_factory() -> AsyncIterator[Any]:
    """Build simulators; every one is stopped at the end of the test."""
    made: list[Simulator] = []

    def make(units: list[int] | None = None, system_type: int | list[int] = 40,
             **kwargs: Any) -> Simulator:
        sim = Simulator.build(units or [1], system_type, **kwargs)
        made.append(sim)
        return sim

    yield make
    for sim in made:
        await sim.stop()


@pytest.fixture
async def emulator_factory() -> AsyncIterator[Any]:
    """Put simulators on line-rate emulated RS-485 buses; every bus is stopped at the end."""
    from tests.bench.emulator import BusEmulator

    made: list[BusEmulator] = []

    async def make(sim: Simulator, line: str = "115200 8N1", **kwargs: Any) -> BusEmulator:
        bus = await BusEmulator.for_simulator(sim, line, **kwargs)
        made.append(bus)
        return bus

    yield make
    for bus in made:
        await bus.stop()


async def run_cli(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    """Run ``python -m bridge ...`` as a child process (the event loop keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", *args, cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def loads(text: str) -> Any:
    return json.loads(text)
