"""The bridge end to end: real Mosquitto, simulated meters over Modbus TCP, the real service."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bridge.core.publishing import DEFAULT_DEADBANDS
from bridge.meters.series4000 import PROFILE
from bridge.model.quantities import published_decimals, quantity
from bridge.sim.broker import Broker
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_validity import EXPECTED

GOLDEN = Path(__file__).parent / "golden"
DEVICE_TOPIC = "homeassistant/device/series4000_main_{}/config"
SETTINGS_KEYS = {"system_type", "ct_primary_a", "ct_output", "pt_ratio", "system_voltage_v",
                 "pulse_wh", "demand_subintervals", "demand_subinterval_s",
                 "phase_loss_voltage_pct", "phase_loss_imbalance_pct", "display_units"}
STATUS_KEYS = {"max_power_w", "pulse_closure_ms", "energy_reset_count", "power_up_count",
               "alarms", "read_errors", "response_time_ms", "wiring", "wiring_findings"}


def normalise(payload: dict[str, Any]) -> dict[str, Any]:
    """Drop what changes with the release, not with the meter."""
    out = json.loads(json.dumps(payload))
    out["origin"].pop("sw", None)
    out["device"].pop("sw_version", None)
    return out


def check_golden(name: str, payload: dict[str, Any]) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1" or not path.exists():
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        if os.environ.get("UPDATE_GOLDEN") != "1":
            pytest.fail(f"golden file {path} was missing; written now, review and commit it")
    assert payload == json.loads(path.read_text())


def meter(name: str, unit: int, **extra: Any) -> dict[str, Any]:
    return {"name": name, "unit": unit, "poll_interval": 0.2, "config_interval": 5, **extra}


@pytest.mark.parametrize("system_type", [40, 10])
async def test_states_availability_and_discovery(system_type: int, broker: Broker,
                                                 sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], system_type, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter("main_panel", 1)])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        state = (await rec.wait_message("series4000/main_panel/state")).json()
        avail = await rec.wait_message("series4000/main_panel/availability")
        bridge = await rec.wait_message("series4000/bridge/availability")
        disc = (await rec.wait_message(DEVICE_TOPIC.format("main_panel"))).json()
        # A subscriber that comes later gets all of it from the broker's retained store.
        async with recorder(broker.port) as late:
            for topic in ("series4000/main_panel/state", "series4000/main_panel/availability",
                          "series4000/bridge/availability", DEVICE_TOPIC.format("main_panel")):
                assert (await late.wait_message(topic)).retain, topic
    assert avail.payload == "online"
    assert bridge.payload == "online"
    measured = set(state) - SETTINGS_KEYS - STATUS_KEYS
    assert measured == EXPECTED[system_type]
    truth = sim.meters[1].state()
    for key in measured:  # published at one digit past the display precision
        step = 10.0 ** -published_decimals(quantity(key))
        assert state[key] == pytest.approx(truth[key], rel=1e-6, abs=step), key
    assert state["system_type"] == system_type
    assert state["alarms"] == []
    assert state["wiring"] == []  # a clean simulated meter
    # Every published measurement has an entity, and no entity points at an invalid key.
    sensors = {k for k, c in disc["components"].items() if c["platform"] == "sensor"}
    assert measured - PROFILE.repeated_keys(system_type) <= sensors
    assert not (sensors & {"voltage_bn_v", "current_c_a", "power_c_w"}) or system_type == 40
    check_golden(f"discovery_type{system_type}.json", normalise(disc))


async def test_broker_restart_restores_everything(broker: Broker, sim_factory: Any,
                                                  tmp_path: Path, wait_until: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter("main_panel", 1)])], tmp_path)
    async with running(cfg) as service:
        async with recorder(broker.port) as rec:
            await rec.wait_message("series4000/main_panel/state")
        broker.stop()
        await wait_until(lambda: not service.link.connected, 10, "the bridge sees the broker go")
        broker.start()  # same port, no persistence: every retained message is gone
        started = asyncio.get_running_loop().time()
        async with recorder(broker.port) as rec:
            await rec.wait_for(
                lambda r: r.last("series4000/main_panel/state")
                and r.last(DEVICE_TOPIC.format("main_panel"))
                and getattr(r.last("series4000/main_panel/availability"), "payload", "")
                == "online"
                and getattr(r.last("series4000/bridge/availability"), "payload", "") == "online",
                timeout=10, what="discovery, availability and state after the broker restart")
        assert asyncio.get_running_loop().time() - started < 10
        assert service.link.connects >= 2


async def test_dead_meter_goes_offline_and_comes_back(broker: Broker, sim_factory: Any,
                                                      tmp_path: Path) -> None:
    sim = sim_factory([1, 2, 3], [40, 12, 10])
    _, port = await sim.serve_tcp()
    meters = [meter("m1", 1), meter("m2", 2), meter("m3", 3)]
    # Every reading published (no deadbands), so the messages show that the others are read.
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path,
                        publish={"deadband": {group: 0 for group in DEFAULT_DEADBANDS}})
    async with recorder(broker.port) as rec, running(cfg):
        for name in ("m1", "m2", "m3"):
            await rec.wait_message(f"series4000/{name}/availability")
        sim.meters[2].alive = False
        await rec.wait_for(lambda r: getattr(r.last("series4000/m2/availability"), "payload",
                                             "") == "offline", 10, "m2 offline")
        t0 = asyncio.get_running_loop().time()
        await asyncio.sleep(2.0)
        # The others kept publishing while m2 was dead.
        for name in ("m1", "m3"):
            fresh = [m for m in rec.on(f"series4000/{name}/state") if m.at >= t0]
            assert len(fresh) >= 3, name
        sim.meters[2].alive = True
        await rec.wait_for(lambda r: getattr(r.last("series4000/m2/availability"), "payload",
                                             "") == "online", 10, "m2 back online")
        t1 = asyncio.get_running_loop().time()
        await rec.wait_message("series4000/m2/state", after=t1)


async def test_home_assistant_birth_resends_states(broker: Broker, sim_factory: Any,
                                                   tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter("main_panel", 1)])], tmp_path,
                        publish={"heartbeat_s": 3600})
    async with recorder(broker.port) as rec, running(cfg) as service:
        await rec.wait_message("series4000/main_panel/state")
        await asyncio.sleep(1.0)
        t0 = asyncio.get_running_loop().time()
        # Frozen meter, long heartbeat: nothing would be published without the birth message.
        assert not [m for m in rec.on("series4000/main_panel/state") if m.at >= t0]
        await rec.publish("homeassistant/status", "online")
        await rec.wait_message("series4000/main_panel/state", after=t0)
        await rec.wait_message("series4000/main_panel/availability", after=t0)
        assert service.ha_births == 1


async def test_system_type_change_removes_phase_entities(broker: Broker, sim_factory: Any,
                                                         tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter("main_panel", 1)])], tmp_path)
    topic = DEVICE_TOPIC.format("main_panel")
    async with recorder(broker.port) as rec, running(cfg):
        first = (await rec.wait_message(topic)).json()["components"]
        assert first["voltage_bn_v"]["platform"] == "sensor"
        t0 = asyncio.get_running_loop().time()
        # Changed on the meter's front panel: the bridge notices at its next configuration read.
        assert sim.meters[1].write(130, [10]) is None
        changed = (await rec.wait_message(topic, timeout=15, after=t0)).json()["components"]
        state = await rec.wait_for(
            lambda r: next((m.json() for m in reversed(r.on("series4000/main_panel/state"))
                            if m.at >= t0 and m.json()["system_type"] == 10), None),
            what="a state with system type 10")
    for key in ("voltage_bn_v", "voltage_cn_v", "current_b_a", "current_c_a", "power_b_w",
                "power_c_w", "energy_c_kwh", "voltage_ab_v", "voltage_ll_v"):
        assert changed[key] == {"platform": "sensor"}, key  # removal marker
        assert key not in state
    for key in ("voltage_an_v", "current_a", "power_w", "energy_kwh"):
        assert changed[key]["platform"] == "sensor" and "unique_id" in changed[key], key
    # On one CT the phase-A copies repeat the totals: their entities go, their values stay.
    for key in ("current_a_a", "power_a_w", "energy_a_kwh", "voltage_ln_v"):
        assert changed[key] == {"platform": "sensor"}, key
        assert key in state, key
    assert "phase_loss_b" not in changed or changed["phase_loss_b"] == {
        "platform": "binary_sensor"}
    assert state["system_type"] == 10
