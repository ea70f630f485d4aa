"""Start the real bridge service in-process against a real broker and simulated meters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bridge.app.service import Service
from bridge.config import Config, parse_config


def bridge_config(broker_port: int, buses: list[dict[str, Any]], state_dir: Path,
                  **extra: Any) -> Config:
    data: dict[str, Any] = {
        "mqtt": {"host": "127.0.0.1", "port": broker_port, "keepalive": 5},
        "buses": buses,
        "state_dir": str(state_dir),
        # Tests run side by side: a status page only where a test asks for one (on a free port).
        "web": None,
    }
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data, env={})


def tcp_bus(port: int, meters: list[dict[str, Any]], name: str = "panel",
            transport: str = "tcp", **extra: Any) -> dict[str, Any]:
    bus = {"name": name, "transport": transport, "host": "127.0.0.1", "port": port,
           "timeout": 0.3, "offline_after": 2, "backoff_s": 0.5, "backoff_max_s": 2.0,
           "meters": meters}
    bus.update(extra)
    return bus


def total_polls(service: Service, skip_unit: int | None = None) -> int:
    """Measurement reads completed on the first bus, over all meters but ``skip_unit``."""
    return sum(rt.polls for rt in service.pollers[0].meters.values()
               if rt.cfg.unit != skip_unit)


@contextlib.asynccontextmanager
async def running(config: Config) -> AsyncIterator[Service]:
    service = Service(config)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        yield service
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
