"""`make demo` as a new user runs it, headless: states for every meter and the pulse input,
and nothing left running afterwards."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
from pathlib import Path

from tests.conftest import ROOT


def mosquitto_processes() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"mosquitto" in cmd and b"mosq-" in cmd:
                pids.add(int(entry.name))
    return pids


async def test_make_demo_headless(tmp_path: Path) -> None:
    before = mosquitto_processes()
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
    pulse = next(line for line in last.splitlines() if line.startswith("pulse input"))
    assert "(online)" in pulse and "vs meter: 0" in pulse, pulse
    port = int(re.search(r"broker 127\.0\.0\.1:(\d+)", text).group(1))  # type: ignore[union-attr]
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0, "the demo's broker is still running"
    assert mosquitto_processes() <= before
    assert "demo stopped" in text and "not every meter" not in text
