"""Child process for the memory test: the bridge alone in a process, traced from its start.

Usage: python -m tests.memory_child CONFIG WARMUP_CYCLES STEP_CYCLES SAMPLES

Runs the service on CONFIG, and once the first bus has completed WARMUP_CYCLES full reads
prints one JSON line per STEP_CYCLES more: cycles, traced bytes (after a full collection) and
the number of asyncio tasks; then stops. ``MEMORY_TEST_LEAK_BYTES=N`` keeps N more bytes per
full read for as long as the process lives: the leak the test must catch.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import sys
import tracemalloc
from typing import Any

from bridge.app.service import Service
from bridge.config import load_config
from bridge.core.poller import BusPoller


def inject_leak(poller: BusPoller, size: int) -> None:
    kept: list[bytes] = []
    read = poller._read

    async def leaking_read(rt: Any, blocks: Any, full: bool) -> None:
        if full:
            kept.append(os.urandom(size))
        await read(rt, blocks, full)

    poller._read = leaking_read  # type: ignore[method-assign]


async def main(config_path: str, warmup: int, step: int, samples: int) -> None:
    service = Service(load_config(config_path))
    poller = service.pollers[0]
    leak = int(os.environ.get("MEMORY_TEST_LEAK_BYTES", "0"))
    if leak:
        inject_leak(poller, leak)
    stop = asyncio.Event()
    task = asyncio.create_task(service.run(stop))
    try:
        for k in range(samples + 1):
            target = warmup + k * step
            while poller.cycles < target:
                if task.done():
                    task.result()  # the service ended: show why
                    raise RuntimeError("the service stopped")
                await asyncio.sleep(0.05)
            if k == 0:
                continue
            gc.collect()
            print(json.dumps({"cycles": poller.cycles,
                              "traced_b": tracemalloc.get_traced_memory()[0],
                              "tasks": len(asyncio.all_tasks())}), flush=True)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


if __name__ == "__main__":
    tracemalloc.start()
    asyncio.run(main(sys.argv[1], *(int(a) for a in sys.argv[2:5])))
