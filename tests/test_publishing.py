"""Pure pieces of publishing: topics, change detection, availability gate, discovery, hub."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bridge.core.publishing import (
    DEFAULT_DEADBANDS,
    AvailabilityGate,
    changed,
    deadband_for,
    hold,
    should_publish,
)
from bridge.homeassistant.announce import Announcer
from bridge.homeassistant.discovery import (
    DeviceInfo,
    component_payloads,
    device_payload,
    removed_components,
)
from bridge.homeassistant.entities import (
    Component,
    MeterContext,
    MeterTopics,
    components,
    meter_entities,
)
from bridge.meters.series4000 import PROFILE
from bridge.model.naming import Naming
from bridge.model.topics import Topics
from bridge.mqtt.hub import AVAILABILITY, DISCOVERY, STATE, Hub

T = Topics()
ENTITIES = meter_entities(PROFILE)


def meter_components(name: str, bridge_id: str, system_type: int,
                     allow_writes: bool) -> dict[str, Component]:
    ctx = MeterContext(system_type, PROFILE.valid_keys(system_type), allow_writes)
    naming = Naming(bridge_id)
    return components(ENTITIES, ctx, lambda key: naming.unique_id(name, key),
                      MeterTopics(T.state(name), T.result(name), lambda key: T.set(name, key)))


@pytest.mark.parametrize(("topic", "expected"), [
    ("series4000/main/set/ct_primary_a", ("main", "ct_primary_a")),
    ("series4000/bridge/set/resend_discovery", ("bridge", "resend_discovery")),
    ("series4000/main/set/", None),
    ("series4000/main/set", None),
    ("series4000/main/state", None),
    ("series4000/main/set/a/b", None),
    ("other/main/set/x", None),
    ("series4000//set/x", None),
])
def test_parse_set(topic: str, expected: tuple[str, str] | None) -> None:
    assert T.parse_set(topic) == expected


@pytest.mark.parametrize(("key", "deadbands", "expected"), [
    ("power_w", {"W": 5}, 5), ("power_w", {"power_w": 10, "W": 5}, 10),
    ("voltage_an_v", {"W": 5}, 0.0), ("alarms", {"W": 5}, 0.0),
])
def test_deadband_for(key: str, deadbands: dict[str, float], expected: float) -> None:
    assert deadband_for(key, deadbands) == expected


@pytest.mark.parametrize(("key", "expected"), [
    ("power_w", 10.0), ("reactive_power_b_var", 10.0), ("voltage_an_v", 0.5),
    ("current_c_a", 0.05), ("power_factor", 0.01), ("frequency_hz", 0.05),
    ("energy_kwh", 0.01), ("reactive_energy_kvarh", 0.01), ("response_time_ms", 25.0),
    ("read_errors", 0.0), ("alarms", 0.0), ("system_type", 0.0),
])
def test_default_deadbands_by_device_class(key: str, expected: float) -> None:
    assert deadband_for(key, DEFAULT_DEADBANDS) == expected


def test_a_unit_or_key_overrides_the_device_class() -> None:
    assert deadband_for("power_w", {**DEFAULT_DEADBANDS, "W": 2}) == 2
    assert deadband_for("power_w", {**DEFAULT_DEADBANDS, "W": 2, "power_w": 0}) == 0


@pytest.mark.parametrize(("last", "new", "expected"), [
    (None, {"power_w": 100.0}, {"power_w": 100.0}),
    ({"power_w": 100.0}, {"power_w": 109.0}, {"power_w": 100.0}),
    ({"power_w": 100.0}, {"power_w": 111.0}, {"power_w": 111.0}),
    ({"energy_kwh": 5.0}, {"energy_kwh": 5.009}, {"energy_kwh": 5.0}),
    ({"energy_kwh": 5.0}, {"energy_kwh": 0.0}, {"energy_kwh": 0.0}),  # a reset goes out
    ({"alarms": []}, {"alarms": ["phase_loss_a"]}, {"alarms": ["phase_loss_a"]}),
    ({}, {"power_w": 1.0}, {"power_w": 1.0}),
])
def test_hold_keeps_small_moves_at_the_published_value(
        last: dict[str, object] | None, new: dict[str, object],
        expected: dict[str, object]) -> None:
    held = hold(last, new, DEFAULT_DEADBANDS)  # type: ignore[arg-type]
    assert held == expected
    # Nothing to publish when only small moves happened.
    if last is not None and held == last:
        assert not changed(last, held, DEFAULT_DEADBANDS)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ({"power_w": 100.0}, {"power_w": 104.0}, False),
    ({"power_w": 100.0}, {"power_w": 106.0}, True),
    ({"power_w": 100.0}, {"power_w": 100.0, "current_a": 1.0}, True),
    ({"alarms": []}, {"alarms": ["phase_loss_a"]}, True),
    ({"ct_output": "1V"}, {"ct_output": "0.333V"}, True),
    ({"energy_kwh": 1.0}, {"energy_kwh": 1.001}, True),
])
def test_changed(old: dict[str, object], new: dict[str, object], expected: bool) -> None:
    assert changed(old, new, {"W": 5}) is expected


def test_heartbeat() -> None:
    assert should_publish(None, 0, {"a": 1}, 0, 60, {})
    assert not should_publish({"power_w": 1.0}, 0, {"power_w": 1.0}, 59, 60, {})
    assert should_publish({"power_w": 1.0}, 0, {"power_w": 1.0}, 60, 60, {})


def test_availability_gate_rate_limits_flapping() -> None:
    gate = AvailabilityGate()
    gate, out = gate.update(True, 0.0, 10)
    assert out is True
    gate, out = gate.update(False, 1.0, 10)
    assert out is None and gate.pending is False  # held back
    gate, out = gate.update(True, 2.0, 10)
    assert out is None and gate.pending is None  # flapped back: nothing to send
    gate, out = gate.update(False, 3.0, 10)
    gate, out = gate.flush(5.0, 10)
    assert out is None
    gate, out = gate.flush(10.0, 10)
    assert out is False and gate.published is False


def test_meter_components_follow_validity_and_writes() -> None:
    assert "power_b_w" in meter_components("m", "p", 12, False)
    comps = meter_components("m", "p", 10, False)
    assert "power_w" in comps and "power_b_w" not in comps
    assert comps["phase_loss_a"].platform == "binary_sensor" and "phase_loss_b" not in comps
    assert comps["ct_primary_a"].platform == "sensor"
    assert not [c for c in comps.values() if c.platform in ("select", "number", "button")]
    writable = meter_components("m", "p", 10, True)
    assert writable["set_system_type"].platform == "select"
    assert writable["set_system_type"].config["options"][-1] == "3-phase wye 4-wire (40)"
    assert writable["set_ct_primary_a"].config["command_topic"] == "series4000/m/set/ct_primary_a"
    assert writable["new_demand_interval"].config["payload_press"] == "PRESS"
    assert "reset_energy" not in writable  # needs allow_resets
    assert "ct_primary_a" not in writable
    uids = [c.config["unique_id"] for c in writable.values()]
    assert len(uids) == len(set(uids))


def test_device_payload_carries_removal_markers() -> None:
    device = DeviceInfo("node", "Node", "Series 4000-K", "Leviton")
    comps = {"power_w": Component("power_w", "sensor", {"name": "Power"})}
    removed = removed_components({"power_w": "sensor", "power_b_w": "sensor"}, comps)
    assert removed == {"power_b_w": "sensor"}
    payload = device_payload(device, comps, removed, ["a", "b"], "st")
    assert payload["components"]["power_b_w"] == {"platform": "sensor"}
    assert payload["components"]["power_w"] == {"platform": "sensor", "name": "Power"}
    assert payload["availability_mode"] == "all"


def test_component_mode_payloads() -> None:
    device = DeviceInfo("node", "Node", "Series 4000-K", "Leviton")
    comps = {"power_w": Component("power_w", "sensor", {"name": "Power"}),
             "reset_energy": Component("reset_energy", "button", {"name": "Reset"})}
    out = component_payloads(device, comps, {"power_b_w": "sensor"}, ["a"], "st", T)
    sensor = json.loads(out["homeassistant/sensor/node/power_w/config"])
    assert sensor["state_topic"] == "st" and sensor["device"]["identifiers"] == ["node"]
    assert "state_topic" not in json.loads(out["homeassistant/button/node/reset_energy/config"])
    assert out["homeassistant/sensor/node/power_b_w/config"] == ""


def test_hub_republishes_in_order() -> None:
    sent: list[tuple[str, str, bool]] = []
    hub = Hub()
    hub.observers.append(lambda t, p, r: sent.append((t, p, r)))
    hub.retain(STATE, "s", "1")
    hub.retain(DISCOVERY, "d", "2")
    hub.retain(AVAILABILITY, "a", "online")
    hub.send("r", "result")
    sent.clear()
    assert hub.republish() == 3
    assert [t for t, _, _ in sent] == ["d", "a", "s"]
    hub.retain(DISCOVERY, "d", "")
    assert hub.get(DISCOVERY, "d") is None and hub.size() == 2


def test_announcer_remembers_across_restarts(tmp_path: Path) -> None:
    store = tmp_path / "discovery.json"
    hub = Hub()
    ann = Announcer(hub, T, store=store)
    device = DeviceInfo("node", "Node", "Series 4000-K", "Leviton")
    ann.set_device(device, ["a"], "st")
    ann.set_part("node", "meter", {"power_b_w": Component("power_b_w", "sensor", {})})
    assert ann.announce("node")
    assert not ann.announce("node")  # unchanged: not sent again
    # A new process, after the wiring changed: phase B must be removed in Home Assistant.
    hub2 = Hub()
    ann2 = Announcer(hub2, T, store=store)
    ann2.set_device(device, ["a"], "st")
    ann2.set_part("node", "meter", {"power_w": Component("power_w", "sensor", {})})
    ann2.announce("node")
    payload = json.loads(hub2.get(DISCOVERY, "homeassistant/device/node/config") or "")
    assert payload["components"]["power_b_w"] == {"platform": "sensor"}
    # A device that left the configuration is removed.
    assert ann2.forget_others([]) == ["node"]
    assert hub2.get(DISCOVERY, "homeassistant/device/node/config") is None
