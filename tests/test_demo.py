"""`make demo` as a new user runs it, headless: states for every meter and the pulse input,
the wiring finding of the faulty meter, and nothing left running afterwards."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

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


async def test_make_demo_headless(tmp_path: Path) -> None:
    venv = Path(sys.executable).parent.parent
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await asyncio.create_subprocess_exec(
        "make", "-s", "demo", f"VENV={venv}",
        f"DEMO_ARGS=--seconds 20 --state-dir {tmp_path / 'state'}", cwd=str(ROOT), env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    last = text.rsplit("Series 4000 bridge demo", 1)[-1]
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
