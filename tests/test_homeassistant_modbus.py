"""Home Assistant's own Modbus integration reads a meter through the bridge's Modbus server.

A real Home Assistant 2025.4.4 (`make test-ha`) with a `modbus:` hub pointing at the bridge: its
sensors must show the total power and energy the bridge publishes on MQTT, and reading them
must not add a request to the meter's bus while the bridge's cache is fresh.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.broker import Broker
from tests.mqtt_helpers import Recorder, recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_homeassistant import CONFIGURATION, HA_PYTHON, mqtt_entry
from tests.test_modbus_server import free_port

# Home Assistant's first start in a fresh config directory takes minutes on a loaded machine.
pytestmark = [pytest.mark.homeassistant, pytest.mark.timeout(600)]

#: The hub as a user writes it (the README shows the same): float32 high word first, the
#: Series 4000's float block at registers 257 (energy, kWh) and 261 (power, kW).
MODBUS_YAML = """\
modbus:
  - name: series4000_bridge
    type: tcp
    host: 127.0.0.1
    port: {port}
    sensors:
      - name: Panel energy
        slave: 1
        address: 256
        input_type: holding
        data_type: float32
        unit_of_measurement: kWh
        device_class: energy
        state_class: total_increasing
        precision: 3
        scan_interval: 1
      - name: Panel power
        slave: 1
        address: 260
        input_type: holding
        data_type: float32
        scale: 1000
        unit_of_measurement: W
        device_class: power
        state_class: measurement
        precision: 2
        scan_interval: 1
"""


def ha_state(rec: Recorder, entity: str) -> str | None:
    message = rec.last(f"hass_states/{entity.replace('.', '/')}/state")
    return None if message is None else message.payload


def number(text: str | None) -> float | None:
    try:
        return None if text is None else float(text)
    except ValueError:
        return None  # "unavailable" or "unknown"


async def test_home_assistant_modbus_reads_through_the_bridge(broker: Broker, sim_factory: Any,
                                                              tmp_path: Path) -> None:
    if not HA_PYTHON.exists():
        pytest.fail(f"Home Assistant is not installed at {HA_PYTHON}: run `make test-ha`")
    server_port = free_port()
    config_dir = tmp_path / "ha"
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "configuration.yaml").write_text(
        CONFIGURATION + MODBUS_YAML.format(port=server_port))
    (config_dir / ".storage" / "core.config_entries").write_text(
        json.dumps(mqtt_entry(broker.port)))
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    meters = [{"name": "panel", "unit": 1, "poll_interval": 1, "config_interval": 30}]
    # max_age_s well above the poll interval: every read is a cached one, even when a loaded
    # machine delays a poll.
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path / "state",
                        modbus_server={"port": server_port, "max_age_s": 10.0})
    ha: subprocess.Popen[bytes] | None = None
    try:
        async with recorder(broker.port) as rec, running(cfg) as service:
            await rec.wait_message("series4000/panel/state", 20)
            # Home Assistant starts once the server listens (it logs an error otherwise).
            ha = subprocess.Popen([str(HA_PYTHON), "-m", "homeassistant", "-c",
                                   str(config_dir)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT, start_new_session=True)
            await rec.wait_for(
                lambda r: number(ha_state(r, "sensor.panel_power")) is not None and
                number(ha_state(r, "sensor.panel_energy")) is not None, 300,
                "Home Assistant's Modbus sensors")
            assert service.share is not None
            hits = service.share.cache_hits
            await rec.wait_for(lambda r: service.share is not None and
                               service.share.cache_hits >= hits + 4, 30, "more reads")
            state = rec.last_json("series4000/panel/state")
            assert number(ha_state(rec, "sensor.panel_power")) == \
                pytest.approx(state["power_w"], abs=0.01)
            assert number(ha_state(rec, "sensor.panel_energy")) == \
                pytest.approx(state["energy_kwh"], abs=0.001)
            # Everything Home Assistant read came from the cache.
            assert service.share.bus_reads == 0
    finally:
        if ha is not None:
            os.killpg(ha.pid, signal.SIGTERM)
            ha.wait(timeout=60)
    log = (config_dir / "home-assistant.log").read_text()
    errors = [line for line in log.splitlines() if "ERROR" in line and "modbus" in line.lower()]
    assert not errors, errors
