"""Pulse and alarm inputs inside the running bridge (fake GPIO backend, real broker and meter)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import pytest

from bridge.app.service import Service
from bridge.gpio.fake import FakeGpioBackend
from bridge.sim.broker import Broker
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, tcp_bus

DEVICE = "homeassistant/device/series4000_main_main/config"


def meter_cfg(**extra: Any) -> dict[str, Any]:
    return {"name": "main", "unit": 1, "poll_interval": 0.3, "config_interval": 1, **extra}


async def run_service(cfg: Any, backend: FakeGpioBackend) -> tuple[Service, asyncio.Event,
                                                                    asyncio.Task[None]]:
    service = Service(cfg, gpio_backend=backend)
    stop = asyncio.Event()
    return service, stop, asyncio.create_task(service.run(stop))


async def test_linked_pulse_input(broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    meter = sim.meters[1]
    meter.setup.pulse_wh = 100
    _, port = await sim.serve_tcp()
    backend = FakeGpioBackend()
    line = backend.line("GPIO17")
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path,
                        pulse_inputs=[{"name": "main_pulses", "line": "GPIO17",
                                       "meter": "main", "debounce_ms": 2}])
    _, stop, task = await run_service(cfg, backend)
    try:
        async with recorder(broker.port) as rec:
            first = (await rec.wait_message("series4000/main_pulses/state", 20)).json()
            assert first["pulses"] == 0 and first["energy_kwh"] == 0
            comps = (await rec.wait_for(
                lambda r: next((m.json()["components"] for m in reversed(r.on(DEVICE))
                                if "main_pulses_energy_kwh" in m.json()["components"]), None),
                10, "pulse entities in the meter's device"))
            energy = comps["main_pulses_energy_kwh"]
            assert energy["state_topic"] == "series4000/main_pulses/state"
            assert energy["unit_of_measurement"] == "kWh"
            assert energy["state_class"] == "total_increasing"
            assert {"topic": "series4000/main_pulses/availability"} in energy["availability"]
            assert comps["main_pulses_meter_difference"]["entity_category"] == "diagnostic"
            assert (await rec.wait_message("series4000/main_pulses/availability")).payload \
                == "online"
            # 40 pulses of 100 Wh (weight from register 144), counted by the meter as well,
            # one per second: the meter's 500 ms closure time allows no faster.
            await asyncio.sleep(0.5)  # the cross-check takes its baseline from a full read
            line.pulse_train(40, 1.0, start_ns=time.monotonic_ns() - 41 * 10**9)
            meter.pulse_count += 40
            state = await rec.wait_for(
                lambda r: next((m.json() for m in reversed(r.on("series4000/main_pulses/state"))
                                if m.json()["pulses"] == 40
                                and m.json().get("meter_difference") == 0), None),
                15, "40 pulses, none missed")
            assert state["energy_kwh"] == pytest.approx(4.0)
            # 100 Wh per second is 360 kW while pulses arrive; it decays once they stop.
            assert 0 < state["power_w"] <= 360_000 * 1.01
            # Pulses the GPIO missed show up as a negative difference.
            meter.pulse_count += 3
            await rec.wait_for(
                lambda r: any(m.json().get("meter_difference") == -3
                              for m in r.on("series4000/main_pulses/state")),
                15, "three missed pulses")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    stored = json.loads((tmp_path / "pulses_main_pulses.json").read_text())
    assert stored["pulses"] == 40


async def test_pulse_weight_that_disagrees_with_the_meter_is_refused(
        broker: Broker, sim_factory: Any, tmp_path: Path, caplog: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()  # the meter sends one pulse per 1000 Wh
    backend = FakeGpioBackend()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path,
                        pulse_inputs=[{"name": "p", "line": "GPIO17", "meter": "main",
                                       "wh_per_pulse": 100}])
    service, stop, task = await run_service(cfg, backend)
    try:
        async with recorder(broker.port) as rec:
            await rec.wait_for(lambda r: service.pulse_channels[0].refused, 20, "refusal")
            await asyncio.sleep(0.5)
            assert rec.last("series4000/p/availability").payload == "offline"
            assert not rec.on("series4000/p/state")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    assert "configured wh_per_pulse 100 but the meter main sends one pulse per 1000 Wh" \
        in caplog.text
    assert not (tmp_path / "pulses_p.json").exists()  # nothing was counted


async def test_lost_state_file_restarts_from_the_retained_total(broker: Broker,
                                                                tmp_path: Path) -> None:
    async with recorder(broker.port) as rec:
        await rec.publish("series4000/p/state",
                          json.dumps({"energy_kwh": 12.34, "power_w": 0, "pulses": 1234}),
                          retain=True)
    backend = FakeGpioBackend()
    line = backend.line("GPIO17")
    cfg = bridge_config(broker.port, [], tmp_path,
                        pulse_inputs=[{"name": "p", "line": "GPIO17", "wh_per_pulse": 10,
                                       "debounce_ms": 1}])
    assert not (tmp_path / "pulses_p.json").exists()
    _, stop, task = await run_service(cfg, backend)
    try:
        async with recorder(broker.port) as rec:
            await rec.wait_for(lambda r: any(m.json()["pulses"] >= 1234
                                             for m in r.on("series4000/p/state")
                                             if not m.retain), 20, "restored total")
            line.pulse_train(2, 1.0, start_ns=time.monotonic_ns() - 3 * 10**9)
            await rec.wait_for(lambda r: any(m.json()["pulses"] == 1236
                                             for m in r.on("series4000/p/state")), 10,
                               "1236 pulses")
            assert min(m.json()["pulses"] for m in rec.on("series4000/p/state")) >= 1234
            disc = (await rec.wait_message("homeassistant/device/series4000_main_p/config")
                    ).json()
            assert disc["device"]["model"] == "Pulse input"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)


async def test_linked_alarm_input(broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    meter = sim.meters[1]
    _, port = await sim.serve_tcp()
    backend = FakeGpioBackend()
    line = backend.line("GPIO27")
    line.set_level(False)  # normally closed contact pulls the line low: no problem
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path,
                        alarm_inputs=[{"name": "alarm", "line": "GPIO27", "meter": "main",
                                       "debounce_ms": 1}])
    _, stop, task = await run_service(cfg, backend)
    topic = "series4000/alarm/state"
    try:
        async with recorder(broker.port) as rec:
            state = (await rec.wait_message(topic, 20)).json()
            assert state["problem"] is False
            comps = await rec.wait_for(
                lambda r: next((m.json()["components"] for m in reversed(r.on(DEVICE))
                                if "alarm_problem" in m.json()["components"]), None),
                10, "alarm entities")
            assert comps["alarm_problem"]["device_class"] == "problem"
            assert comps["alarm_wiring"]["entity_category"] == "diagnostic"
            # Phase B lost: the meter sets bit 9 and opens its contact; both agree.
            meter.lose_phase("b")
            line.set_level(True)
            await rec.wait_for(lambda r: r.last_json(topic)["problem"] is True, 10, "problem")
            await asyncio.sleep(3)
            assert rec.last_json(topic)["agrees_with_meter"] in (True, None)
            # The phase comes back but the contact stays open (a broken wire): after two
            # configuration reads the disagreement is reported.
            meter.lose_phase("b", lost=False)
            await rec.wait_for(lambda r: r.last_json(topic).get("agrees_with_meter") is False,
                               20, "disagreement")
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
