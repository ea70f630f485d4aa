"""A gateway restart and an unplugged serial adapter: the bridge recovers by itself, within two
back-off periods, without a restart."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from bridge.sim.broker import Broker
from bridge.sim.server import Simulator
from tests.mqtt_helpers import Recorder, recorder
from tests.service_helpers import bridge_config, running, tcp_bus

BACKOFF_S = 1.0


def availability(rec: Recorder, name: str) -> str:
    msg = rec.last(f"series4000/{name}/availability")
    return msg.payload if msg else ""


async def test_gateway_restart(broker: Broker, tmp_path: Path) -> None:
    sim = Simulator.build([1, 2], 40)
    host, port = await sim.serve_rtu_over_tcp()
    bus = tcp_bus(port, [{"name": "a", "unit": 1, "poll_interval": 0.2},
                         {"name": "b", "unit": 2, "poll_interval": 0.2}],
                  transport="rtu_over_tcp", backoff_s=BACKOFF_S, backoff_max_s=BACKOFF_S * 2)
    cfg = bridge_config(broker.port, [bus], tmp_path)
    try:
        async with recorder(broker.port) as rec, running(cfg) as service:
            await rec.wait_for(lambda r: availability(r, "a") == "online"
                               and availability(r, "b") == "online", 10, "both online")
            await sim.stop()  # the gateway reboots: connections drop, nothing listens
            await rec.wait_for(lambda r: availability(r, "a") == "offline", 15, "a offline")
            await asyncio.sleep(3)
            await sim.serve_rtu_over_tcp(host, port)
            back = asyncio.get_running_loop().time()
            await rec.wait_message("series4000/a/state", 15, after=back)
            data = asyncio.get_running_loop().time() - back
            # Values flow again within two back-off periods (the longest wait, doubled).
            assert data < 2 * 2 * BACKOFF_S, data
            await rec.wait_for(lambda r: availability(r, "a") == "online"
                               and availability(r, "b") == "online", 15, "both back")
            # Availability follows, no sooner than 10 s after it went offline (flap limit).
            online = asyncio.get_running_loop().time() - back
            print(f"gateway restart: values after {data:.1f} s, online after {online:.1f} s")
            assert service.pollers[0].client.stats.reconnects >= 2
    finally:
        await sim.stop()


async def test_serial_adapter_unplugged_and_back(broker: Broker, tmp_path: Path) -> None:
    """The configured device is a stable name (like /dev/serial/by-id/...) pointing at a pty;
    the adapter is pulled (the pty closes and the name disappears) and plugged back (a new
    pty behind the same name)."""
    sim = Simulator.build([1], 40)
    device = tmp_path / "usb-FTDI_FT232R_USB_UART-if00-port0"
    os.symlink(await sim.serve_pty(), device)
    bus = {"name": "rs485", "transport": "rtu", "device": str(device), "timeout": 0.3,
           "offline_after": 2, "backoff_s": BACKOFF_S, "backoff_max_s": BACKOFF_S * 2,
           "meters": [{"name": "m", "unit": 1, "poll_interval": 0.2}]}
    cfg = bridge_config(broker.port, [bus], tmp_path / "state")
    try:
        async with recorder(broker.port) as rec, running(cfg):
            await rec.wait_for(lambda r: availability(r, "m") == "online", 10, "online")
            await sim.stop()
            device.unlink()
            await rec.wait_for(lambda r: availability(r, "m") == "offline", 15, "offline")
            await asyncio.sleep(3)
            os.symlink(await sim.serve_pty(), device)
            back = asyncio.get_running_loop().time()
            await rec.wait_message("series4000/m/state", 15, after=back)
            data = asyncio.get_running_loop().time() - back
            assert data < 2 * 2 * BACKOFF_S, data
            await rec.wait_for(lambda r: availability(r, "m") == "online", 20, "back online")
            online = asyncio.get_running_loop().time() - back
            print(f"serial adapter: values after {data:.1f} s, online after {online:.1f} s")
    finally:
        await sim.stop()
