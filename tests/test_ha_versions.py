"""The reactive_energy device class, used only when Home Assistant is 2025.6 or newer: the
release from the service's configuration or, in the add-on, from the Supervisor."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.config import parse_config
from bridge.errors import ConfigError
from bridge.homeassistant.entities import Component
from bridge.homeassistant.versions import for_version
from bridge.model.ha_release import HaVersion, parse_version
from bridge.sim.broker import Broker
from tests.addon_support import MOSQUITTO, TWO_BUSES, FakeSupervisor, fake_supervisor
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_addon import run_entry

KVARH = Component("reactive_energy_kvarh", "sensor", {"unit_of_measurement": "kvarh",
                                                     "state_class": "total_increasing"})
KWH = Component("energy_kwh", "sensor", {"device_class": "energy"})


@pytest.mark.parametrize(("text", "version"), [
    ("2025.6", (2025, 6)), ("2025.6.1", (2025, 6)), ("2025.12.0", (2025, 12)),
    ("2025.7.0b3", (2025, 7)), ("2026.1.0.dev20251201", (2026, 1)), (" 2025.4.4 ", (2025, 4)),
    ("2025", None), ("2025.13", None), ("25.6", None), ("latest", None), ("", None),
])
def test_parse_version(text: str, version: HaVersion | None) -> None:
    assert parse_version(text) == version


@pytest.mark.parametrize(("version", "device_class"), [
    (None, None),  # unknown: what every release accepts
    ((2025, 4), None),
    ((2025, 5), None),
    ((2025, 6), "reactive_energy"),
    ((2026, 2), "reactive_energy"),
])
def test_reactive_energy_from_2025_6(version: HaVersion | None, device_class: str | None) -> None:
    out = for_version({KVARH.key: KVARH, KWH.key: KWH}, version)
    assert out[KVARH.key].config.get("device_class") == device_class
    assert out[KWH.key] == KWH  # nothing else changes
    assert "device_class" not in KVARH.config  # the input is not modified


def test_config_option_is_checked() -> None:
    base: dict[str, Any] = {"buses": []}
    assert parse_config({**base, "mqtt": {"homeassistant_version": "2025.6"}}).mqtt.ha_version \
        == (2025, 6)
    assert parse_config(base).mqtt.ha_version is None
    with pytest.raises(ConfigError, match=re.escape("mqtt.homeassistant_version: must be a "
                                                    "Home Assistant release like 2025.6")):
        parse_config({**base, "mqtt": {"homeassistant_version": "six"}})


@pytest.mark.parametrize(("version", "device_class"), [(None, None),
                                                      ("2025.6", "reactive_energy")])
async def test_service_discovery_follows_the_option(version: str | None,
                                                    device_class: str | None, broker: Broker,
                                                    sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    mqtt = {"homeassistant_version": version} if version else {}
    cfg = bridge_config(broker.port, [tcp_bus(port, [{"name": "main", "unit": 1}])], tmp_path,
                        mqtt=mqtt)
    async with recorder(broker.port) as rec, running(cfg):
        msg = await rec.wait_message("homeassistant/device/series4000_main_main/config", 15)
    kvarh = json.loads(msg.payload)["components"]["reactive_energy_kvarh"]
    assert kvarh.get("device_class") == device_class
    assert kvarh["unit_of_measurement"] == "kvarh"


@pytest.mark.parametrize(("core_info", "expected"), [
    (FakeSupervisor.ok(version="2025.6.1"), (2025, 6)),
    (FakeSupervisor.ok(version="2025.4.4"), (2025, 4)),
    (FakeSupervisor.error(403, "no access"), None),  # the add-on still starts
    ((200, {"result": "ok", "data": {"version": "landingpage"}}), None),
])
def test_addon_asks_the_supervisor(core_info: tuple[int, Any], expected: HaVersion | None,
                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_supervisor(FakeSupervisor.ok(**MOSQUITTO), core_info=core_info) as sup:
        code, rec = run_entry(tmp_path, monkeypatch, TWO_BUSES, sup.url)
    assert code == 0 and sup.core_requests == ["/core/info"]
    assert rec.calls[0][0].mqtt.ha_version == expected
