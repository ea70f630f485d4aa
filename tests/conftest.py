"""Shared fixtures: a real Mosquitto broker and real simulated meters on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.broker import Broker
from bridge.sim.server import Simulator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Temporary folders the code under test makes (a broker's mosq-*, a demo's) go into one folder
# per session, inherited by child processes through TMPDIR: one a killed process leaves behind
# does not stay in /tmp, and one a clean stop leaves behind fails the session.
LEAK_PATTERNS = ("mosq-*",)


def pytest_configure(config: pytest.Config) -> None:
    # pytest's own tmp_path folders stay where pytest rotates them (kept for a failed test).
    os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
    session_tmp = tempfile.mkdtemp(prefix="s4k-tests-")
    config.stash[SESSION_TMP] = (os.environ.get("TMPDIR"), session_tmp)
    os.environ["TMPDIR"] = session_tmp
    tempfile.tempdir = None  # re-read TMPDIR


SESSION_TMP = pytest.StashKey[tuple[str | None, str]]()


@pytest.hookimpl(trylast=True)  # after every fixture, session-scoped ones included, ended
def pytest_sessionfinish(session: pytest.Session) -> None:
    previous, session_tmp = session.config.stash[SESSION_TMP]
    left = sorted(str(p) for pattern in LEAK_PATTERNS for p in Path(session_tmp).glob(pattern))
    if left:
        print(f"\ntemporary folders left behind by the code under test: {left}", file=sys.stderr)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    shutil.rmtree(session_tmp, ignore_errors=True)
    if previous is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = previous
    tempfile.tempdir = None


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


# ---------------------------------------------------------------------------------------------
# GPIO: a controllable clock, a waiting helper, and line rigs (the fake backend, and gpio-sim
# where the kernel module is available) with one interface for the shared tests.


class ManualClock:
    """CLOCK_MONOTONIC-like nanoseconds that move only when a test says so."""

    def __init__(self, start_ns: int = 1_000_000_000_000) -> None:
        self.now_ns = start_ns

    def __call__(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> int:
        self.now_ns += round(seconds * 1e9)
        return self.now_ns

    def set(self, now_ns: int) -> int:
        self.now_ns = max(self.now_ns, now_ns)
        return self.now_ns


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def _wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Let the loop run until ``predicate()`` holds; fail (not flake) only after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"{what} not reached within {timeout} s")
        await asyncio.sleep(0.002)


@pytest.fixture
def wait_until() -> Any:
    return _wait_until


class FakeRig:
    """A line of the fake backend, driven directly."""

    kind = "fake"

    def __init__(self) -> None:
        from bridge.gpio.fake import FakeGpioBackend

        self.backend = FakeGpioBackend()
        self.chip = "gpiochip0"
        self.line_name = "GPIO17"
        self.offset = 17
        self.line = self.backend.line("GPIO17")

    def pull(self, high: bool) -> None:
        self.line.set_level(high)

    def chatter(self, levels: list[bool]) -> None:
        """Level changes 1 µs apart (a bouncing contact), then stable at the last one."""
        start = self.line.last_ns + 1
        self.line.drive([(start + 1000 * k, level) for k, level in enumerate(levels)])

    def remove_chip(self) -> None:
        self.backend.remove_chip(self.chip)

    def restore_chip(self) -> None:
        self.backend.restore_chip(self.chip)

    def close(self) -> None:
        pass


GPIOSIM = Path("/sys/kernel/config/gpio-sim")


def gpiosim_unavailable() -> str | None:
    """Why gpio-sim cannot be used here, or None when it can."""
    import os
    import shutil
    import subprocess

    prefix = "gpio-sim cannot be used: "
    if os.geteuid() != 0:
        return prefix + "creating simulated chips through configfs needs root"
    if not GPIOSIM.is_dir() and shutil.which("modprobe"):
        subprocess.run(["modprobe", "gpio-sim"], capture_output=True, timeout=20, check=False)
    if not GPIOSIM.is_dir():
        return prefix + f"{GPIOSIM} is missing (needs CONFIG_GPIO_SIM and configfs mounted)"
    try:
        import gpiod  # noqa: F401
    except ImportError as exc:
        return prefix + f"the gpiod bindings cannot be imported ({exc})"
    return None


class GpioSimRig:
    """A gpio-sim chip made through configfs, driven through the simulated line's pull."""

    kind = "gpiosim"

    def __init__(self) -> None:
        import os

        from bridge.gpio.backend import RealGpioBackend

        self.backend = RealGpioBackend()
        self.offset = 1
        self.line_name = f"S4K_TEST_{os.getpid()}"
        self.dev = GPIOSIM / f"s4k-test-{os.getpid()}"
        self.bank = self.dev / "bank0"
        self.dev.mkdir()
        self.bank.mkdir()
        (self.bank / "num_lines").write_text("4")
        self.line_dir = self.bank / f"line{self.offset}"
        self.line_dir.mkdir()
        (self.line_dir / "name").write_text(self.line_name)
        self._live(True)

    def _live(self, on: bool) -> None:
        (self.dev / "live").write_text("1" if on else "0")
        if on:
            self.chip = (self.bank / "chip_name").read_text().strip()
            dev_name = (self.dev / "dev_name").read_text().strip()
            self.pull_file = (Path("/sys/devices/platform") / dev_name / self.chip
                              / f"sim_gpio{self.offset}" / "pull")

    def pull(self, high: bool) -> None:
        self.pull_file.write_text("pull-up" if high else "pull-down")

    def chatter(self, levels: list[bool]) -> None:
        for level in levels:
            self.pull(level)

    def remove_chip(self) -> None:
        self._live(False)

    def restore_chip(self) -> None:
        self._live(True)

    def close(self) -> None:
        import contextlib

        with contextlib.suppress(OSError):
            self._live(False)
        for d in (self.line_dir, self.bank, self.dev):
            with contextlib.suppress(OSError):
                d.rmdir()


@pytest.fixture(params=["fake", pytest.param("gpiosim", marks=pytest.mark.gpiosim)])
def line_rig(request: pytest.FixtureRequest) -> Iterator[Any]:
    """The same line interface on the fake backend and, where it exists, on gpio-sim."""
    if request.param == "gpiosim":
        reason = gpiosim_unavailable()
        if reason:
            pytest.skip(reason)
        rig: Any = GpioSimRig()
    else:
        rig = FakeRig()
    try:
        yield rig
    finally:
        rig.close()
