"""Our discovery against a real Home Assistant (2025.4.4), connected to the test broker.

Home Assistant runs in its own virtualenv (Python 3.13; `make test-ha` creates `.ha-venv`).
Its `mqtt_statestream` integration publishes every entity's state back to the broker, so the
test sees exactly the entities Home Assistant created from our discovery and the values it
shows, including the Wiring problem entity of a meter with a wiring fault and its attributes;
its entity registry says which entities it created and which it created disabled. After a
system-type change the registry must have dropped the phase B/C entities (removal markers work
in a real instance, not only in our reading of the docs). The default entity counts per wiring
are measured here and printed (`make test-ha` shows them; the README quotes them). Chromium lays
out the device page at 1400 px and every entity name on it must show whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge import __version__
from bridge.sim.broker import Broker, free_port
from bridge.sim.faults import apply_fault, parse_fault
from tests import ha_frontend
from tests.mqtt_helpers import Recorder, recorder
from tests.service_helpers import bridge_config, running, tcp_bus

pytestmark = pytest.mark.homeassistant

ROOT = Path(__file__).resolve().parent.parent
HA_PYTHON = Path(os.environ.get("HA_PYTHON", ROOT / ".ha-venv" / "bin" / "python"))
#: Set to keep the screenshots of a meter's device page (the README's are made with
#: ``HA_SCREENSHOT=docs/images/ha-device-page.png make test-ha``).
SCREENSHOT = os.environ.get("HA_SCREENSHOT")

CONFIGURATION = """\
homeassistant:
  name: Test
  unit_system: metric
  time_zone: UTC
  latitude: 0
  longitude: 0
  elevation: 0
  country: US
  currency: USD
mqtt_statestream:
  base_topic: hass_states
  publish_attributes: true
logger:
  default: warning
"""


def mqtt_entry(port: int) -> dict[str, Any]:
    stamp = "2026-01-01T00:00:00+00:00"
    return {"version": 1, "minor_version": 5, "key": "core.config_entries", "data": {
        "entries": [{
            "created_at": stamp, "modified_at": stamp, "data": {"broker": "127.0.0.1",
                                                                 "port": port},
            "options": {"discovery": True, "discovery_prefix": "homeassistant"},
            "discovery_keys": {}, "disabled_by": None, "domain": "mqtt",
            "entry_id": "01JTESTMQTTENTRY0000000000", "minor_version": 2,
            "pref_disable_new_entities": False, "pref_disable_polling": False,
            "source": "user", "subentries": [], "title": "test broker", "unique_id": None,
            "version": 1}]}}


#: The object id prefix of the bridge device's entities (its name, "Series 4000 bridge").
BRIDGE = "series_4000_bridge"


def number(states: dict[str, str], key: str) -> float:
    """A numeric state of the bridge's sensor ``key``; -1 while it has none."""
    try:
        return float(states.get(f"sensor.{BRIDGE}_{key}", ""))
    except ValueError:
        return -1.0


def ha_states(rec: Recorder, device: str) -> dict[str, str]:
    """entity_id -> state, from mqtt_statestream, for one of our devices."""
    out = {}
    for m in rec.messages:
        parts = m.topic.split("/")
        if len(parts) == 4 and parts[0] == "hass_states" and parts[3] == "state" \
                and parts[2].startswith(f"{device}_"):
            out[f"{parts[1]}.{parts[2]}"] = m.payload
    return out


def last_command(rec: Recorder, attribute: str) -> str:
    """An attribute of the wye meter's Last command entity as Home Assistant has it."""
    msg = rec.last(f"hass_states/sensor/wye_last_command/{attribute}")
    return "" if msg is None else str(json.loads(msg.payload))


#: One meter per wiring (read-only), one with an open voltage tap (a wiring finding), and a
#: wye meter with allow_writes.
METERS = [("single", 10), ("twowire", 11), ("split", 12), ("delta", 31), ("star", 40),
          ("faulty", 40), ("wye", 40)]


def registry_counts(registry: dict[str, Any], name: str) -> tuple[int, int]:
    """(enabled, disabled) entities of one of our meters in Home Assistant's entity registry."""
    prefix = f"series4000_main_{name}_"
    ours = [e for e in registry["data"]["entities"] if e["unique_id"].startswith(prefix)]
    disabled = [e for e in ours if e["disabled_by"] is not None]
    return len(ours) - len(disabled), len(disabled)


def enabled_components(disc: dict[str, Any]) -> set[str]:
    return {k for k, c in disc["components"].items() if c.get("enabled_by_default", True)}


async def test_home_assistant_creates_our_entities(broker: Broker, sim_factory: Any,
                                                   tmp_path: Path) -> None:
    if not HA_PYTHON.exists():
        pytest.fail(f"Home Assistant is not installed at {HA_PYTHON}: run `make test-ha`")
    config_dir = tmp_path / "ha"
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(CONFIGURATION)
    (config_dir / ".storage" / "core.config_entries").write_text(
        json.dumps(mqtt_entry(broker.port)))
    units = list(range(1, len(METERS) + 1))
    sim = sim_factory(units, [st for _, st in METERS], frozen=True)
    faulty_unit = units[[name for name, _ in METERS].index("faulty")]
    apply_fault(sim.meters[faulty_unit], parse_fault("voltage_missing:c"))
    _, port = await sim.serve_tcp()
    meters = [{"name": name, "unit": unit, "poll_interval": 1, "config_interval": 2}
              for unit, (name, _) in zip(units, METERS, strict=True)]
    meters[-1]["allow_writes"] = True
    meters[-1]["area"] = "Garage"
    # A second bus, RTU frames through a gateway, whose line use the bridge measures.
    shed = sim_factory([1], 12, frozen=True)
    _, shed_port = await shed.serve_rtu_over_tcp()
    shed_bus = tcp_bus(shed_port, [{"name": "shedmeter", "unit": 1, "poll_interval": 1}],
                       name="shed", transport="rtu_over_tcp")
    web_port = free_port("127.0.0.1")
    cfg = bridge_config(broker.port, [tcp_bus(port, meters), shed_bus], tmp_path / "state",
                        web={"host": "127.0.0.1", "port": web_port})
    base = ha_frontend.prepare(config_dir, free_port("127.0.0.1"))
    ha = subprocess.Popen([str(HA_PYTHON), "-m", "homeassistant", "-c", str(config_dir)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          start_new_session=True)
    wye_unit = units[-1]
    try:
        async with recorder(broker.port) as rec, running(cfg) as service:
            wye_state = (await rec.wait_message("series4000/wye/state", 20)).json()
            discs = {name: json.loads(service.hub.get(
                "discovery", f"homeassistant/device/series4000_main_{name}/config") or "{}")
                for name, _ in METERS}
            # Home Assistant starts, reads our retained discovery, creates the entities; the
            # enabled ones get a state.
            for name, _ in METERS:
                await rec.wait_for(
                    lambda r, n=name: len(ha_states(r, n)) >= len(enabled_components(discs[n])),
                    240, f"Home Assistant entities of {name}")
            await asyncio.sleep(3)
            wye = ha_states(rec, "wye")
            single = ha_states(rec, "single")
            # Exactly the enabled components have a state: the others were created disabled.
            assert len(wye) == len(enabled_components(discs["wye"])), sorted(wye)
            assert len(single) == len(enabled_components(discs["single"])), sorted(single)
            assert wye["sensor.wye_voltage_c_n"] == str(wye_state["voltage_cn_v"])
            assert wye["sensor.wye_power"] == str(wye_state["power_w"])
            assert wye["sensor.wye_average_current"] == str(wye_state["current_a"])
            assert wye["select.wye_system_type"] == "3-phase wye 4-wire (40)"
            assert wye["number.wye_ct_primary"] == "100"
            assert wye["binary_sensor.wye_phase_loss_c"] == "off"
            assert wye["binary_sensor.wye_problem"] == "off"
            assert "button.wye_new_demand_interval" in wye
            assert "button.wye_reset_energy" not in wye  # allow_resets is off
            # The wiring check: off for the clean meters, on for the one with an open C tap,
            # with the finding and its fix as an attribute.
            assert wye["binary_sensor.wye_wiring_problem"] == "off"
            assert single["binary_sensor.single_wiring_problem"] == "off"
            await rec.wait_for(
                lambda r: ha_states(r, "faulty").get("binary_sensor.faulty_wiring_problem")
                == "on", 60, "the faulty meter's Wiring problem entity on")
            findings = json.loads(rec.last(
                "hass_states/binary_sensor/faulty_wiring_problem/findings").payload)
            assert findings[0].startswith("voltage_missing_cn: Voltage CN reads 0 V"), findings
            assert "Fix: Check the voltage lead of phase C" in findings[0]
            # The meter's one Problem entity is on for a wiring finding too.
            assert ha_states(rec, "faulty")["binary_sensor.faulty_problem"] == "on"
            # A single-phase meter: no B/C entities, no phase-A copies, no set-up controls.
            assert not [e for e in single if e.endswith(("_b", "_c", "_b_n", "_c_n"))]
            assert "sensor.single_power_a" not in single and "sensor.single_power" in single
            assert not [e for e in single if e.startswith(("select.", "number.", "button."))]
            # No entity is unavailable or unknown except the buttons and the last command
            # (no command yet).
            bad = {e: st for e, st in {**wye, **single}.items()
                   if st in ("unavailable", "unknown") and not e.startswith("button.")
                   and not e.endswith("_last_command")}
            assert not bad, bad
            # A lost phase: the Problem entity turns on and lists the alarm.
            sim.meters[wye_unit].lose_phase("c")
            await rec.wait_for(lambda r: ha_states(r, "wye").get("binary_sensor.wye_problem")
                               == "on", 30, "Problem on")
            alarms = await rec.wait_for(
                lambda r: (m := r.last("hass_states/binary_sensor/wye_problem/alarms"))
                and "phase_loss_c" in m.payload and m.payload, 30, "the Problem's alarms")
            assert "phase_loss_c" in json.loads(alarms)
            sim.meters[wye_unit].lose_phase("c", lost=False)
            # A write the bridge refuses: Home Assistant shows why.
            await rec.publish("series4000/wye/set/system_voltage_v", "32000")
            await rec.wait_for(
                lambda r: ha_states(r, "wye").get("sensor.wye_last_command") == "refused"
                and last_command(r, "command") == "system_voltage_v 32000"
                and last_command(r, "reason"), 30,
                "the refused write in Home Assistant")
            assert last_command(rec, "reason").startswith(
                "system voltage / PT ratio = 32000.0 V"), last_command(rec, "reason")
            # The device page as a user sees it at 1400 px: where the meter is, Problem; then
            # the settings with their names whole, and Last command with the refusal.
            tokens = await ha_frontend.login(base)
            device_id = await ha_frontend.render(base, tokens,
                                                 "{{ device_id('binary_sensor.wye_problem') }}")
            shots = [(tmp_path / "device.png", "Device info"),
                     (tmp_path / "settings.png", "Last command")]
            names = await ha_frontend.device_page(
                base, tokens, f"/config/devices/device/{device_id}", shots,
                ["bus panel, unit", "Problem", "refused"],
                more_info=(tmp_path / "last-command.png", "Last command"))
            for shot, _ in shots:
                assert shot.stat().st_size > 20_000
            # Every entity's name shows whole, the disabled ones' too (the browser's layout).
            texts = {n.text for n in names}
            assert {"Problem", "CT primary", "System type", "Last command",
                    "Front-panel units"} <= texts, sorted(texts)
            cut = [n for n in names if not n.whole]
            assert not cut, cut
            if SCREENSHOT:
                kept = Path(SCREENSHOT)
                for shot, suffix in ((tmp_path / "device.png", ""),
                                     (tmp_path / "settings.png", "-settings"),
                                     (tmp_path / "last-command.png", "-last-command")):
                    kept.with_stem(kept.stem + suffix).write_bytes(shot.read_bytes())
            # The bridge's device: its figures per bus, from its state message.
            bridge = await rec.wait_for(
                lambda r: (st := ha_states(r, BRIDGE))
                .get(f"sensor.{BRIDGE}_panel_meters_online") == str(len(METERS))
                and st.get(f"sensor.{BRIDGE}_shed_meters_online") == "1" and st, 60,
                "every meter online on the bridge's device")
            assert bridge[f"binary_sensor.{BRIDGE}_mqtt_connection"] == "on"
            assert json.loads(rec.last(f"hass_states/sensor/{BRIDGE}_panel_meters_online/"
                                       "configured").payload) == len(METERS)
            assert int(bridge[f"sensor.{BRIDGE}_panel_requests"]) > 0
            assert int(bridge[f"sensor.{BRIDGE}_panel_read_errors"]) >= 0
            assert f"sensor.{BRIDGE}_panel_line_use" not in bridge  # Modbus TCP: no line
            started = datetime.fromisoformat(bridge[f"sensor.{BRIDGE}_started"])
            assert abs((datetime.now(UTC) - started).total_seconds()) < 600
            # Rewire the wye meter as single phase from Home Assistant's select: the entities
            # of B and C go, and the last command says which system voltage fits now.
            await rec.publish("series4000/wye/set/system_type", "1-phase L-N 2-wire (10)")
            await rec.wait_for(
                lambda r: ha_states(r, "wye").get("sensor.wye_last_command") == "ok"
                and last_command(r, "command").startswith("system_type")
                and last_command(r, "note"), 30,
                "the system-type result")
            assert last_command(rec, "note").endswith("set system_voltage_v to 230 next"), \
                last_command(rec, "note")
            await rec.wait_for(
                lambda r: r.last_json("series4000/wye/state")["system_type"] == 10, 20,
                "the new system type")
            # The state 30 s after the start (the first ones come with the start's burst of
            # reads): messages sent, the line's use over those 30 s, in Home Assistant; then the
            # bridge's device page.
            settled = (await rec.wait_for(
                lambda r: (m := r.last("series4000/bridge/state")) and m.json()["uptime_s"] >= 30
                and m, 45, "the bridge state after 30 s")).json()
            assert settled["mqtt"]["published"] > 0
            assert settled["buses"]["shed"]["line_use_pct"] > 0
            await rec.wait_for(
                lambda r: number(st := ha_states(r, BRIDGE), "mqtt_messages")
                == settled["mqtt"]["published"]
                and number(st, "shed_line_use") == settled["buses"]["shed"]["line_use_pct"],
                20, "the settled figures in Home Assistant")
            bridge_device = await ha_frontend.render(
                base, tokens, f"{{{{ device_id('binary_sensor.{BRIDGE}_mqtt_connection') }}}}")
            bridge_shot = tmp_path / "bridge.png"
            bridge_names = await ha_frontend.device_page(
                base, tokens, f"/config/devices/device/{bridge_device}",
                [(bridge_shot, "Device info")], ["Panel meters online", "Shed line use"])
            assert {"Panel requests", "Shed read errors", "MQTT messages", "Started"} \
                <= {n.text for n in bridge_names}
            assert not [n for n in bridge_names if not n.whole], bridge_names
            if SCREENSHOT:
                kept = Path(SCREENSHOT)
                kept.with_stem("ha-bridge-device").write_bytes(bridge_shot.read_bytes())
            await asyncio.sleep(8)
    finally:
        os.killpg(ha.pid, signal.SIGTERM)
        ha.wait(timeout=60)
    registry = json.loads((config_dir / ".storage" / "core.entity_registry").read_text())
    counts = {name: registry_counts(registry, name) for name, _ in METERS[:-1]}
    print("\nentities per meter in Home Assistant (enabled, disabled by default):")
    for name, st in METERS[:-2]:  # one per wiring
        print(f"  system type {st} ({name}, read-only): {counts[name]}")
    for name, _ in METERS[:-1]:
        assert counts[name] == (len(enabled_components(discs[name])),
                                len(discs[name]["components"])
                                - len(enabled_components(discs[name]))), name
    assert counts["single"][0] <= 18 and counts["star"][0] <= 42, counts
    entities = {e["entity_id"]: e for e in registry["data"]["entities"]
                if e["entity_id"].split(".")[1].startswith("wye_")}
    for gone in ("sensor.wye_voltage_c_n", "sensor.wye_current_b", "sensor.wye_power_c",
                 "binary_sensor.wye_phase_loss_c"):
        assert gone not in entities, gone
    assert "sensor.wye_voltage_a_n" in entities
    assert entities["binary_sensor.wye_low_power_factor_a"]["disabled_by"] == "integration"
    devices = json.loads((config_dir / ".storage" / "core.device_registry").read_text())
    by_name = {d["name"]: d for d in devices["data"]["devices"]}
    bridge = by_name["Series 4000 bridge"]
    assert bridge["sw_version"] == __version__
    assert bridge["configuration_url"] == f"http://127.0.0.1:{web_port}/"
    assert by_name["Wye"]["via_device_id"] == bridge["id"]
    assert by_name["Wye"]["hw_version"] == f"bus panel, unit {wye_unit}"
    log = (config_dir / "home-assistant.log").read_text()
    errors = [line for line in log.splitlines()
              if "ERROR" in line and ("mqtt" in line.lower() or "series4000" in line)]
    assert not errors, errors
