"""`make demo` as a new user runs it, headless: states for every meter and the pulse input,
the wiring finding of the faulty meter, the addresses to connect to on the last screen, and
nothing left running or on disk afterwards."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import socket
import sys
from pathlib import Path

import pytest

from bridge.cli.demo import PULSE_INPUT, LiveView, _port_free
from bridge.model.topics import Topics
from bridge.sim.broker import free_port
from tests.conftest import ROOT


def mosquitto_listening_on(port: int) -> list[int]:
    """Mosquitto processes whose configuration listens on ``port`` (other tests' brokers, on
    other ports, may come and go meanwhile)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not args or not args[0].endswith(b"mosquitto") or b"-c" not in args:
            continue
        try:
            conf = Path(args[args.index(b"-c") + 1].decode()).read_text()
        except (OSError, IndexError):
            continue
        if f"listener {port} " in conf:
            pids.append(int(entry.name))
    return pids


def demo_process(tmp_path: Path, *demo_args: str) -> tuple[list[str], dict[str, str]]:
    """`make demo` with its own temporary folder (TMPDIR), to see what it leaves there."""
    venv = Path(sys.executable).parent.parent
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TMPDIR": str(tmp)}
    args = " ".join(("--state-dir", str(tmp_path / "state"), *demo_args))
    return ["make", "-s", "demo", f"VENV={venv}", f"DEMO_ARGS={args}"], env


def leftovers(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / "tmp").iterdir())


def broker_line(screen: str) -> str:
    return next(line for line in screen.splitlines() if line.startswith("MQTT broker "))


async def test_make_demo_headless(tmp_path: Path) -> None:
    cmd, env = demo_process(tmp_path, "--seconds", "20")
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=str(ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    last = text.rsplit("Series 4000 bridge demo", 1)[-1]
    assert "127.0.0.1:" in broker_line(last), "the last screen lost the broker address"
    for meter in ("main_panel", "garage", "cabin"):
        row = next(line for line in last.splitlines() if line.startswith(meter))
        assert "online" in row and re.search(r"\d+\s+\d+\.\d", row), row
    # The garage meter's open B voltage tap, found by the wiring check.
    assert "garage: voltage_missing_bn: Voltage BN reads 0 V" in last, last
    # The addresses are part of every redraw, so they stay on screen.
    assert re.search(r"status page: http://127\.0\.0\.1:\d+/", last), last
    pulse = next(line for line in last.splitlines() if line.startswith("pulse input"))
    assert "(online)" in pulse and "vs meter: 0" in pulse, pulse
    port = int(re.search(r"broker 127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the demo's broker is still running"
    assert not mosquitto_listening_on(port), "the demo's broker process is still there"
    assert "demo stopped" in text and "not every meter" not in text
    assert "None" not in text
    assert not leftovers(tmp_path), "the demo left temporary files"


async def test_demo_stopped_with_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT to the terminal's process group) once every meter is on screen."""
    cmd, env = demo_process(tmp_path)
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=str(ROOT), env=env, start_new_session=True,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    seen: list[str] = []
    try:
        async with asyncio.timeout(90):
            while not (seen and "vs meter: 0" in seen[-1]):
                line = (await proc.stdout.readline()).decode()
                assert line, "".join(seen)[-3000:]
                seen.append(line)
        os.killpg(proc.pid, signal.SIGINT)
        rest, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
    text = "".join(seen) + rest.decode()
    # make itself ends by the SIGINT once the demo has stopped, as after Ctrl-C in a terminal.
    assert proc.returncode in (0, -signal.SIGINT), text[-3000:]
    assert text.rstrip().endswith("demo stopped"), text[-3000:]
    assert not leftovers(tmp_path), "the demo left temporary files"


def test_live_view_keeps_addresses_and_shows_no_none() -> None:
    view = LiveView(Topics(), io.StringIO(),
                    ["MQTT broker 127.0.0.1:1883 (connect here)"])
    # The pulse input's first state: no pulse counted yet, no power, nothing to compare.
    view.on_message(f"series4000/{PULSE_INPUT}/state",
                    b'{"pulses": 0, "energy_kwh": 0.0, "power_w": null, '
                    b'"meter_difference": null}')
    for _ in range(2):  # the first screen and every redraw
        screen = view.render()
        assert broker_line(screen) == "MQTT broker 127.0.0.1:1883 (connect here)"
        assert "None" not in screen
        assert "0 pulses, 0.0 kWh, - W, vs meter: -" in screen


def time_wait_on(port: int) -> None:
    """Leave a closed connection in TIME-WAIT on ``port``, as a stopped broker does."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Mosquitto does
        listener.bind(("127.0.0.1", port))
        listener.listen()
        with socket.create_connection(("127.0.0.1", port)) as client:
            served, _ = listener.accept()
            served.close()  # the server closes first: its side waits in TIME-WAIT
            assert client.recv(1) == b""


def test_port_free_ignores_time_wait_but_not_a_listener() -> None:
    port = free_port()
    time_wait_on(port)
    with socket.socket() as plain, pytest.raises(OSError):  # what the old check saw
        plain.bind(("127.0.0.1", port))
    assert _port_free(port)
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Mosquitto does
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not _port_free(port)
