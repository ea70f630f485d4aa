"""Pieces of the benchmarks: the bridge as a child process, its CPU and memory from /proc, an
MQTT counter, and the line arithmetic of the emulator's counters.

The bridge runs in its own process (``python -m bridge run``) so that the emulator's timing in
this process and the bridge's CPU time are measured independently; Mosquitto is the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiomqtt
import yaml

from bridge.model.topics import Topics
from tests.bench.emulator import BusCounters, BusEmulator

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def counters_delta(a: BusCounters, b: BusCounters) -> BusCounters:
    return BusCounters(**{k: getattr(b, k) - getattr(a, k) for k in vars(a)})


def ideal_s(bus: BusEmulator, d: BusCounters) -> float:
    """Line time a perfect master needs for what went over the line: every byte at the baud
    rate, before each answer the meter's turnaround (at least t3.5), after it t3.5; after an
    unanswered request one t3.5 (the master's timeout is its own choice)."""
    line = bus.line
    gap = max(bus.turnaround_s, line.t35_s)
    return (line.wire_s(d.bytes_to_meters + d.bytes_to_master)
            + d.answered * (gap + line.t35_s) + d.unanswered * line.t35_s)


@dataclass
class MqttCount:
    messages: int = 0
    bytes: int = 0
    #: topic -> list of (time, payload) for the meters' state topics (not the bridge's own,
    #: which carries no meter's values), when recording.
    states: dict[str, list[tuple[float, bytes]]] = field(default_factory=dict)
    record: bool = False

    def snapshot(self) -> MqttCount:
        return replace(self, states={})


@contextlib.asynccontextmanager
async def mqtt_counter(port: int | None, record: bool = False) -> AsyncIterator[MqttCount]:
    """Counts what the bridge publishes (nothing to count when ``port`` is None)."""
    count = MqttCount(record=record)
    if port is None:
        yield count
        return

    bridge_topic = Topics().bridge_state

    async def pump() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier=f"bench-{os.getpid()}") as c:
            await c.subscribe("series4000/#")
            async for m in c.messages:
                payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
                count.messages += 1
                count.bytes += len(payload)
                topic = str(m.topic)
                if count.record and topic.endswith("/state") and topic != bridge_topic:
                    count.states.setdefault(topic, []).append((time.monotonic(), payload))

    task = asyncio.create_task(pump())
    await asyncio.sleep(0.3)
    try:
        yield count
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await task


@contextlib.asynccontextmanager
async def bridge_process(config: dict[str, Any], workdir: Path) -> AsyncIterator[int]:
    """``python -m bridge run`` with ``config``; yields its pid."""
    path = workdir / "bench-config.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "run", "--config", str(path), cwd=str(ROOT),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        yield proc.pid
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 15)
        except TimeoutError:
            proc.kill()
            await proc.wait()


#: Publishing for the benches that measure how old the published power gets: no deadband on
#: power. The built-in 10 W deadband would hold the simulator's power, which moves a few watts a
#: second, for seconds at a time, and the age measured would be the deadband's, not the bridge's.
FRESH_POWER: dict[str, Any] = {"deadband": {"power_w": 0}}


def bus_config(host: str, port: int, baud: int, meters: list[dict[str, Any]],
               broker_port: int, state_dir: Path, timeout: float = 1.0,
               publish: dict[str, Any] | None = None,
               web: dict[str, Any] | None = None) -> dict[str, Any]:
    """The bench's bridge; no status page unless ``web`` says where (runs follow each other
    and other programs may hold the default port)."""
    return {
        "mqtt": {"host": "127.0.0.1", "port": broker_port},
        "buses": [{"name": "bench", "transport": "rtu_over_tcp", "host": host, "port": port,
                   "baudrate": baud, "timeout": timeout, "meters": meters}],
        "publish": publish or {},
        "state_dir": str(state_dir), "log_level": "warning", "web": web,
    }


async def wait_answered(bus: BusEmulator, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while bus.counters.answered < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"warm-up: {bus.counters.answered} answers after {timeout} s, "
                               f"expected {count}")
        await asyncio.sleep(0.1)
