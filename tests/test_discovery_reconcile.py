"""Stale entities are removed from what the broker holds, with or without a local record.

A real Mosquitto holds retained discovery messages a bridge left behind (a meter since removed
from the configuration, a phase the wiring no longer has); the bridge reads them back after
connecting and clears them. The state directory is made unusable (a file where the directory
should be: the suite runs as root, so permissions alone would not stop a write): the bridge keeps
running and publishing, says so once, and writes its record once the directory can be made.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from bridge.app import service as service_module
from bridge.sim.broker import Broker
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus

DEVICE = "homeassistant/device/series4000_main_{}/config"
AVAILABILITY = [{"topic": "series4000/bridge/availability"},
                {"topic": "series4000/{}/availability"}]


def left_behind(name: str, components: dict[str, Any]) -> str:
    """A device discovery message as an earlier run of the bridge left it on the broker."""
    return json.dumps({
        "device": {"identifiers": [f"series4000_main_{name}"], "name": name},
        "availability": [{"topic": a["topic"].format(name)} for a in AVAILABILITY],
        "state_topic": f"series4000/{name}/state", "components": components})


def meter(name: str, unit: int) -> dict[str, Any]:
    return {"name": name, "unit": unit, "poll_interval": 0.5, "config_interval": 5}


async def test_stale_devices_and_components_are_cleared_without_a_record(
        broker: Broker, sim_factory: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "RECORD_RETRY_S", 0.3)
    caplog.set_level(logging.INFO)
    sim = sim_factory([1], 10)  # single phase: no phase B; values move
    _, port = await sim.serve_tcp()
    blocked = tmp_path / "state"
    blocked.write_text("a file where the state directory should be")
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter("main_panel", 1)])], blocked)
    async with recorder(broker.port) as rec:
        # What an earlier run left: a meter since removed, and phase-B entities of this one.
        await rec.publish(DEVICE.format("old_meter"), left_behind(
            "old_meter", {"power_w": {"platform": "sensor", "name": "Power"}}), retain=True)
        await rec.publish(DEVICE.format("main_panel"), left_behind("main_panel", {
            "power_w": {"platform": "sensor", "name": "Power"},
            "power_b_w": {"platform": "sensor", "name": "Power B"}}), retain=True)
        # Someone else's device under the same prefix is not ours: it stays.
        await rec.publish("homeassistant/device/other_thing/config",
                          json.dumps({"components": {}}), retain=True)
        async with running(cfg):
            await rec.wait_for(lambda r: any(
                m.payload == "" for m in r.on(DEVICE.format("old_meter"))), 15,
                "the removed meter's device cleared")

            def marker_sent(r: Any) -> bool:
                return any(m.payload and json.loads(m.payload)["components"].get("power_b_w")
                           == {"platform": "sensor"} for m in r.on(DEVICE.format("main_panel")))
            await rec.wait_for(marker_sent, 15, "phase B removed from the current meter")
            await rec.wait_message("series4000/main_panel/state", 10)
            failures = [r for r in caplog.records if "cannot write" in r.getMessage()]
            assert len(failures) == 1, [r.getMessage() for r in failures]
            # The directory becomes usable: the record is written at the next retry.
            blocked.unlink()
            record = blocked / "discovery.json"
            await rec.wait_for(lambda r: record.exists(), 10, "the discovery record written")
            assert "series4000_main_main_panel" in json.loads(record.read_text())
            states_before = len(rec.on("series4000/main_panel/state"))
            await rec.wait_for(lambda r: len(r.on("series4000/main_panel/state"))
                               > states_before, 10, "states still published")
        assert not [m for m in rec.on("homeassistant/device/other_thing/config")
                    if m.payload == ""]
        # The removal marker went out once (the other message naming phase B is the one the
        # test left on the broker), not in every later discovery message.
        naming_b = [m for m in rec.on(DEVICE.format("main_panel"))
                    if m.payload and "power_b_w" in m.json()["components"]]
        assert len(naming_b) == 2, [m.payload[:80] for m in naming_b]
