"""Child process for the SIGKILL test: counts fake pulses at a steady rate and saves them.

Usage: python tests/pulse_child.py STORE_PATH RATE_PER_S

Prints ``start N`` once restored, then one line ``PULSES CLOCK_NS`` per published state, where
CLOCK_NS is the clock the pulse input uses for its save decisions.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from bridge.gpio.fake import FakeGpioBackend
from bridge.gpio.pulse_input import PulseInput, PulseInputSettings


def on_state(message: dict[str, float | int | None]) -> None:
    sys.stdout.write(f"{message['pulses']} {time.monotonic_ns()}\n")
    sys.stdout.flush()


async def main(store_path: Path, rate: float) -> None:
    backend = FakeGpioBackend()
    line = backend.line("GPIO17")
    settings = PulseInputSettings("kill_test", None, "GPIO17", 10, debounce_ms=2)
    pulse_input = PulseInput(settings, backend, store_path, on_state)
    start = pulse_input.restore()
    print(f"start {start.pulses}", flush=True)
    counting = asyncio.create_task(pulse_input.run())
    while not backend.requests:
        await asyncio.sleep(0.001)
    loop = asyncio.get_running_loop()
    period = 1 / rate
    next_at = loop.time()
    while not counting.done():
        line.press(period / 2)
        # Never catch up after a stall: at most `rate` pulses in any second.
        next_at = max(next_at + period, loop.time())
        await asyncio.sleep(next_at - loop.time())
    await counting


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), float(sys.argv[2])))
