"""Meter identity by content: 0x2B objects numbered from 0 or from 1, register 7001 otherwise."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.meters.identity import identity_from_objects, looks_like_revision
from bridge.meters.profile import Identity
from bridge.meters.series4000 import PROFILE
from bridge.modbus.client import open_bus
from bridge.modbus.links import TcpLink
from bridge.modbus.reader import read_identity
from bridge.sim.broker import Broker
from bridge.sim.quirks import Quirks
from tests.conftest import run_cli
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus

LEVITON = Identity("Leviton", "Series 4000", "V1.051")


@pytest.mark.parametrize(("objects", "identity"), [
    ({0: "Leviton", 1: "Series 4000", 2: "V1.051"}, LEVITON),  # the Modbus standard
    ({1: "Leviton", 2: "Series 4000", 3: "V1.051"}, LEVITON),  # as the manuals list them
    ({2: "V1.051", 0: "Leviton", 1: "Series 4000"}, LEVITON),  # answer order does not matter
    ({0: " Leviton ", 1: "Series 4000 ", 2: "v12.345"},
     Identity("Leviton", "Series 4000", "v12.345")),
    ({0: "Leviton", 1: "Series 4000"}, Identity("Leviton", "Series 4000", None)),
    ({1: "Leviton", 2: "", 3: "V1.051"}, Identity("Leviton", None, "V1.051")),
    ({}, Identity()),
    # Objects outside the basic range (e.g. 0x05 model name) do not shift the numbering.
    ({1: "Leviton", 2: "Series 4000", 3: "V1.051", 5: "4000-K"}, LEVITON),
])
def test_identity_from_objects(objects: dict[int, str], identity: Identity) -> None:
    assert identity_from_objects(objects) == identity


@pytest.mark.parametrize(("text", "revision"), [
    ("V1.051", True), ("1.051", True), ("V12.345", True), ("V2.1.3", True), ("V1.05a", True),
    ("Leviton", False), ("Series 4000", False), ("4000", False), ("V", False), ("", False),
])
def test_revision_by_form(text: str, revision: bool) -> None:
    assert looks_like_revision(text) is revision


@pytest.mark.parametrize(("first", "identity"), [
    (0, LEVITON),
    (1, LEVITON),
    # No 0x2B at all: the profile's vendor and the firmware from register 7001.
    (None, Identity("Leviton", None, "V1.051")),
])
async def test_read_identity_over_modbus(first: int | None, identity: Identity,
                                         sim_factory: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].quirks = Quirks(identification_first=first)
    _, port = await sim.serve_tcp()
    async with open_bus(TcpLink("127.0.0.1", port)) as bus:
        assert await read_identity(bus, 1, PROFILE) == identity


async def test_read_shows_the_identity_of_a_meter_numbering_from_1(sim_factory: Any) -> None:
    sim = sim_factory([1], 40, frozen=True, firmware=2107)
    sim.meters[1].quirks = Quirks(identification_first=1)
    _, port = await sim.serve_tcp()
    code, out, err = await run_cli("read", "--tcp", f"127.0.0.1:{port}", "--unit", "1")
    assert code == 0, err
    assert "Unit 1: Leviton Series 4000 firmware V2.107" in out


@pytest.mark.parametrize("first", [0, 1, None])
async def test_discovery_names_vendor_model_and_firmware(first: int | None, broker: Broker,
                                                         sim_factory: Any,
                                                         tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True, firmware=2107)
    sim.meters[1].quirks = dataclasses.replace(Quirks(), identification_first=first)
    _, port = await sim.serve_tcp()
    meter = {"name": "main", "unit": 1, "poll_interval": 0.3}
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        msg = await rec.wait_message("homeassistant/device/series4000_main_main/config", 15)
    device = json.loads(msg.payload)["device"]
    assert device["manufacturer"] == "Leviton"
    assert device["model"].startswith("Series 4000")
    assert device["sw_version"] == "V2.107"
