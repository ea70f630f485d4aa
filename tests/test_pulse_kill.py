"""SIGKILL while counting: the store is always whole and loses at most a second of pulses.

A child process counts 50 pulses/s from the fake backend and saves them; the parent reads the
store file all along (it must always parse), kills the child with SIGKILL, and restarts from the
store. The bound is checked on the child's own clock, so a loaded machine cannot make it flaky:
every pulse it published after the last save was published less than a second after that save.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from bridge.gpio import store
from bridge.gpio.fake import FakeGpioBackend
from bridge.gpio.pulse_input import PulseInput, PulseInputSettings

ROOT = Path(__file__).resolve().parent.parent
CHILD = Path(__file__).resolve().parent / "pulse_child.py"
RATE = 50
S = 1_000_000_000


def check_whole(path: Path) -> int:
    """Parse the store file if it exists (decode raises on a half-written one); 1 if read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    store.decode(data)
    return 1


async def run_and_kill(path: Path, min_pulses: int) -> tuple[int, list[tuple[int, int]], int]:
    """Start the child, kill it once it has published ``min_pulses``; (start, lines, reads)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(CHILD), str(path), str(RATE), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    assert proc.stdout is not None
    lines: list[tuple[int, int]] = []
    start: list[int] = []

    async def read() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            text = raw.decode().split()
            if text[0] == "start":
                start.append(int(text[1]))
            else:
                lines.append((int(text[0]), int(text[1])))

    reader = asyncio.create_task(read())
    reads = 0
    try:
        async with asyncio.timeout(60):
            while not lines or lines[-1][0] < (start[0] if start else 0) + min_pulses:
                reads += check_whole(path)
                await asyncio.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await reader  # everything the child wrote before it died
    assert proc.returncode == -signal.SIGKILL
    return start[0], lines, reads


def lost_window_s(stored: int, lines: list[tuple[int, int]]) -> float:
    """Span of the child's clock over the states it published but did not save."""
    unsaved = [t for pulses, t in lines if pulses > stored]
    return (unsaved[-1] - unsaved[0]) / S if unsaved else 0.0


async def test_sigkill_loses_at_most_one_second(tmp_path: Path) -> None:
    path = tmp_path / "state" / "kill_test.json"

    start, lines, reads = await run_and_kill(path, min_pulses=2 * RATE)
    assert start == 0
    first = store.decode(path.read_bytes())
    assert reads > 10
    assert 0 < first.pulses <= lines[-1][0]
    assert lost_window_s(first.pulses, lines) < 1.0
    assert lines[-1][0] - first.pulses <= RATE + 2

    restarted = PulseInput(PulseInputSettings("kill_test", None, "GPIO17", 10),
                           FakeGpioBackend(), path, lambda _: None)
    begin = restarted.restore()
    assert (begin.pulses, begin.source) == (first.pulses, "store")

    start, lines, _ = await run_and_kill(path, min_pulses=RATE)
    assert start == first.pulses  # the second life starts where the store says
    second = store.decode(path.read_bytes())
    assert second.pulses > first.pulses
    assert lost_window_s(second.pulses, lines) < 1.0
    assert [p for p, _ in lines] == sorted(p for p, _ in lines)
    assert not any(name.endswith(".json") and name != "kill_test.json"
                   for name in os.listdir(path.parent))
