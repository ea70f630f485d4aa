"""Our discovery against a real Home Assistant (2025.4.4), connected to the test broker.

Home Assistant runs in its own virtualenv (Python 3.13; `make test-ha` creates `.ha-venv`).
Its `mqtt_statestream` integration publishes every entity's state back to the broker, so the
test sees exactly the entities Home Assistant created from our discovery and the values it
shows, including the Wiring problem entity of a meter with a wiring fault and its attributes.
After a system-type change the entity registry must have dropped the phase B/C entities
(removal markers work in a real instance, not only in our reading of the docs).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.broker import Broker
from bridge.sim.faults import apply_fault, parse_fault
from tests.mqtt_helpers import Recorder, recorder
from tests.service_helpers import bridge_config, running, tcp_bus

pytestmark = pytest.mark.homeassistant

ROOT = Path(__file__).resolve().parent.parent
HA_PYTHON = Path(os.environ.get("HA_PYTHON", ROOT / ".ha-venv" / "bin" / "python"))

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


def ha_states(rec: Recorder, device: str) -> dict[str, str]:
    """entity_id -> state, from mqtt_statestream, for one of our devices."""
    out = {}
    for m in rec.messages:
        parts = m.topic.split("/")
        if len(parts) == 4 and parts[0] == "hass_states" and parts[3] == "state" \
                and parts[2].startswith(f"{device}_"):
            out[f"{parts[1]}.{parts[2]}"] = m.payload
    return out


async def test_home_assistant_creates_our_entities(broker: Broker, sim_factory: Any,
                                                   tmp_path: Path) -> None:
    if not HA_PYTHON.exists():
        pytest.fail(f"Home Assistant is not installed at {HA_PYTHON}: run `make test-ha`")
    config_dir = tmp_path / "ha"
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(CONFIGURATION)
    (config_dir / ".storage" / "core.config_entries").write_text(
        json.dumps(mqtt_entry(broker.port)))
    sim = sim_factory([1, 2, 3], [40, 10, 40], frozen=True)
    apply_fault(sim.meters[3], parse_fault("voltage_missing:c"))
    _, port = await sim.serve_tcp()
    meters = [{"name": "wye", "unit": 1, "poll_interval": 1, "config_interval": 5,
               "allow_writes": True},
              {"name": "single", "unit": 2, "poll_interval": 1, "config_interval": 5},
              {"name": "faulty", "unit": 3, "poll_interval": 1, "config_interval": 5}]
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path / "state")
    ha = subprocess.Popen([str(HA_PYTHON), "-m", "homeassistant", "-c", str(config_dir)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                          start_new_session=True)
    try:
        async with recorder(broker.port) as rec, running(cfg) as service:
            wye_state = (await rec.wait_message("series4000/wye/state", 20)).json()
            # Home Assistant starts, reads our retained discovery, creates the entities.
            await rec.wait_for(lambda r: len(ha_states(r, "wye")) >= 60, 240,
                               "Home Assistant entities of the wye meter")
            await asyncio.sleep(5)
            wye = ha_states(rec, "wye")
            single = ha_states(rec, "single")
            disc = json.loads(service.hub.get(
                "discovery", "homeassistant/device/series4000_main_wye/config") or "{}")
            # One Home Assistant entity per component we announced.
            assert len(wye) == len(disc["components"]), sorted(wye)
            assert wye["sensor.wye_voltage_cn"] == str(wye_state["voltage_cn_v"])
            assert wye["sensor.wye_power"] == str(wye_state["power_w"])
            assert wye["select.wye_system_type"] == "3-phase wye 4-wire (40)"
            assert wye["number.wye_ct_primary_current"] == "100"
            assert wye["binary_sensor.wye_phase_loss_c"] == "off"
            assert "button.wye_reset_energy" in wye
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
            # A single-phase meter: no B/C entities, settings read-only.
            assert not [e for e in single if e.endswith(("_b", "_c", "_bn", "_cn"))]
            assert single["sensor.single_system_type"] == "1-phase L-N 2-wire (10)"
            assert not [e for e in single if e.startswith(("select.", "number.", "button."))]
            # No entity is unavailable or unknown except the buttons.
            bad = {e: s for e, s in {**wye, **single}.items()
                   if s in ("unavailable", "unknown") and not e.startswith("button.")}
            assert not bad, bad
            # Rewire the wye meter as single phase: Home Assistant must drop B and C.
            assert sim.meters[1].write(130, [10]) is None
            await rec.wait_for(
                lambda r: r.last_json("series4000/wye/state")["system_type"] == 10, 20,
                "the new system type")
            await asyncio.sleep(8)
    finally:
        os.killpg(ha.pid, signal.SIGTERM)
        ha.wait(timeout=60)
    registry = json.loads((config_dir / ".storage" / "core.entity_registry").read_text())
    entities = {e["entity_id"] for e in registry["data"]["entities"]
                if e["entity_id"].split(".")[1].startswith("wye_")}
    for gone in ("sensor.wye_voltage_cn", "sensor.wye_current_b", "sensor.wye_power_c",
                 "binary_sensor.wye_phase_loss_c"):
        assert gone not in entities, gone
    assert "sensor.wye_voltage_an" in entities
    log = (config_dir / "home-assistant.log").read_text()
    errors = [line for line in log.splitlines()
              if "ERROR" in line and ("mqtt" in line.lower() or "series4000" in line)]
    assert not errors, errors
