"""Set-up commands end to end: MQTT command -> validation -> write -> read-back -> result."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest

from bridge.sim.broker import Broker
from tests.mqtt_helpers import Recorder, recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_commands import valid_oracle

RESULT = "series4000/main/result"
STATE = "series4000/main/state"
DEVICE = "homeassistant/device/series4000_main_main/config"


def meter_cfg(**extra: Any) -> dict[str, Any]:
    return {"name": "main", "unit": 1, "poll_interval": 0.3, "config_interval": 30,
            "allow_writes": True, **extra}


async def command(rec: Recorder, setting: str, payload: str | bytes,
                  timeout: float = 10) -> dict[str, Any]:
    t0 = asyncio.get_running_loop().time()
    await rec.publish(f"series4000/main/set/{setting}", payload)
    msg = await rec.wait_for(
        lambda r: next((m for m in r.on(RESULT) if m.at >= t0
                        and m.json()["setting"] == setting), None),
        timeout, f"the result of {setting}")
    result: dict[str, Any] = msg.json()
    return result


async def start(rec: Recorder) -> dict[str, Any]:
    state: dict[str, Any] = (await rec.wait_message(STATE, 15)).json()
    return state


# (setting, payload, value in the result and the state, register, register value)
WRITES = [
    ("ct_primary_a", "200", 200, 131, 200),
    ("ct_output", "0.333V", "0.333V", 132, 3),
    ("pt_ratio", "1.2", 1.2, 133, 120),
    ("system_voltage_v", "415", 415, 134, 415),
    ("pulse_wh", "100", 100, 144, 100),
    ("demand_subintervals", "3", 3, 149, 3),
    ("demand_subinterval_s", "60", 60, 150, 60),
    ("phase_loss_voltage_pct", "15", 15, 142, 15),
    ("phase_loss_imbalance_pct", "20", 20, 143, 20),
    ("display_units", "IEC", "IEC", 137, 0),
    ("system_type", "3-phase delta 3-wire (31)", 31, 130, 31),
]


async def test_every_setting_is_written_and_read_back(broker: Broker, sim_factory: Any,
                                                      tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        for setting, payload, value, reg, raw in WRITES:
            result = await command(rec, setting, payload)
            assert result == {"setting": setting, "requested": payload, "ok": True,
                              "value": value, "error": None}, result
            assert sim.meters[1].registers()[reg] == raw
            state = await rec.wait_for(
                lambda r, s=setting, v=value: next(
                    (m.json() for m in reversed(r.on(STATE)) if m.json().get(s) == v), None),
                5, f"{setting} in the state")
            assert state[setting] == value
        # The CT size changed the theoretical maximum power: read back with the set-up.
        assert state["max_power_w"] == pytest.approx(3**0.5 * 415 * 200, rel=0.01)


async def test_pt_install_in_the_manuals_order(broker: Broker, sim_factory: Any,
                                              tmp_path: Path) -> None:
    """480 V without PTs -> 24 kV through 60:1 PTs: PT ratio 60, then system voltage 24000."""
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].setup.system_voltage_v = 480
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        before = await start(rec)
        assert (before["system_voltage_v"], before["pt_ratio"]) == (480, 1.0)
        ratio = await command(rec, "pt_ratio", "60")
        assert ratio["ok"] and ratio["value"] == 60.0 and ratio["error"] is None, ratio
        # The result says what to set next: the voltage is now out of range for the ratio.
        assert "set system_voltage_v next (4920..32000 V" in ratio["note"], ratio
        voltage = await command(rec, "system_voltage_v", "24000")
        assert voltage == {"setting": "system_voltage_v", "requested": "24000", "ok": True,
                           "value": 24000, "error": None}, voltage
        image = sim.meters[1].registers()
        assert (image[133], image[134]) == (6000, 24000)
        state = await rec.wait_for(
            lambda r: next((m.json() for m in reversed(r.on(STATE))
                            if m.json().get("system_voltage_v") == 24000), None),
            5, "the new system voltage in the state")
        assert state["pt_ratio"] == 60.0


async def test_every_button_acts_on_the_meter(broker: Broker, sim_factory: Any,
                                              tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    meter = sim.meters[1]
    meter.pulse_count = 777
    meter.max_demand = (50_000.0, 10_000.0, 60_000.0)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg(allow_resets=True)])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        before = await start(rec)
        assert before["energy_kwh"] == pytest.approx(1234.5)
        assert (await command(rec, "reset_energy", "PRESS"))["ok"]
        assert meter.energy_kwh == 0.0 and meter.energy_resets == 1
        # The drop is a known reset: it is published, not held back as "lower than before".
        state = await rec.wait_for(lambda r: next((m.json() for m in reversed(r.on(STATE))
                                                   if m.json().get("energy_kwh") == 0.0), None),
                                   5, "energy 0 after the reset")
        assert state["energy_reset_count"] == 1
        assert (await command(rec, "reset_pulse_counters", "PRESS"))["ok"]
        assert meter.pulse_count == 0
        subintervals = len(meter._sub_done)
        assert (await command(rec, "new_demand_interval", "PRESS"))["ok"]
        assert len(meter._sub_done) == subintervals + 1
        # A second demand command within 10 s is refused before it reaches the meter.
        writes = len(sim.write_log)
        refused = await command(rec, "reset_max_demand", "PRESS")
        assert not refused["ok"] and "less than 10 s apart" in refused["error"]
        assert len(sim.write_log) == writes


async def test_reset_max_demand(broker: Broker, sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    meter = sim.meters[1]
    meter.max_demand = (50_000.0, 10_000.0, 60_000.0)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg(allow_resets=True)])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        assert (await command(rec, "reset_max_demand", "PRESS"))["ok"]
        assert meter.max_demand == pytest.approx(meter.present_demand(), rel=1e-9)
        assert meter.max_demand[0] < 50_000.0


async def test_system_type_command_removes_phase_entities(broker: Broker, sim_factory: Any,
                                                          tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        assert (await rec.wait_message(DEVICE)).json()["components"]["power_c_w"]["name"]
        t0 = asyncio.get_running_loop().time()
        result = await command(rec, "system_type", "10")
        assert result["ok"] and result["value"] == 10
        # 398 V was entered line-to-line; type 10 takes line-to-neutral: the result says so.
        assert result["note"] == ("system voltage 398 V is a line-to-line value and type 10 "
                                  "takes line-to-neutral: set system_voltage_v to 230 next")
        comps = (await rec.wait_message(DEVICE, after=t0)).json()["components"]
        for key in ("power_b_w", "power_c_w", "voltage_bn_v", "current_c_a", "energy_b_kwh",
                    "power_a_w"):
            assert comps[key] == {"platform": "sensor"}, key
        assert comps["voltage_an_v"]["unique_id"].endswith("voltage_an_v")
        assert (await command(rec, "system_voltage_v", "230"))["ok"]
        assert comps["set_system_type"]["platform"] == "select"


async def test_resets_need_allow_resets(broker: Broker, sim_factory: Any,
                                        tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        comps = (await rec.wait_message(DEVICE)).json()["components"]
        assert "reset_energy" not in comps and "reset_max_demand" not in comps
        for key in ("reset_energy", "reset_max_demand"):
            result = await command(rec, key, "PRESS")
            assert not result["ok"] and "allow_resets: true" in result["error"], result
        # Other buttons need allow_writes only.
        assert (await command(rec, "reset_pulse_counters", "PRESS"))["ok"]
    assert [(w.reg, w.values) for w in sim.write_log] == [(129, [16498])]  # pulse counters only
    assert sim.meters[1].energy_resets == 0


async def test_writes_disabled_means_zero_writes(broker: Broker, sim_factory: Any,
                                                 tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg(allow_writes=False)])],
                        tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        for setting, payload, *_ in WRITES:
            result = await command(rec, setting, payload)
            assert not result["ok"] and "writes are disabled" in result["error"]
        result = await command(rec, "reset_energy", "PRESS")
        assert not result["ok"] and "writes are disabled" in result["error"]
    assert sim.write_log == []


async def test_refused_and_ignored_writes_are_reported(broker: Broker, sim_factory: Any,
                                                       tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True, ct_output_fixed=True)
    meter = sim.meters[1]
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await start(rec)
        refused = await command(rec, "ct_output", "0.333V")
        assert refused == {"setting": "ct_output", "requested": "0.333V", "ok": False,
                           "value": "1V", "error": refused["error"]}
        assert "refused 0.333V" in refused["error"] and "exception 03" in refused["error"]
        # Someone sets a large CT on the front panel; the bridge has not re-read the set-up,
        # so its own check passes, the meter acknowledges and keeps its old pulse weight.
        meter.setup.ct_primary_a = 5000
        ignored = await command(rec, "pulse_wh", "10")
        assert ignored["ok"] is False and ignored["value"] == 1000
        assert "did not take 10; it holds 1000" in ignored["error"]
        assert meter.ignored_writes == 1


async def test_retained_and_malformed_commands(broker: Broker, sim_factory: Any,
                                               tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter_cfg()])], tmp_path)
    async with recorder(broker.port) as rec:
        # Left retained on the broker: it would be replayed at every start of the bridge.
        await rec.publish("series4000/main/set/ct_primary_a", "300", retain=True)
    async with recorder(broker.port) as rec, running(cfg):
        result = await rec.wait_for(lambda r: next((m.json() for m in r.on(RESULT)), None),
                                    10, "result")
        assert not result["ok"] and "retained commands are ignored" in result["error"]
        await start(rec)
        # ...and the retained command is gone from the broker.
        async with recorder(broker.port, ("series4000/main/set/#",)) as late:
            await asyncio.sleep(0.5)
            assert not [m for m in late.messages if m.payload]
        empty = await command(rec, "ct_primary_a", "")
        assert not empty["ok"] and empty["error"] == "empty payload"
        unknown = await command(rec, "colour", "red")
        assert not unknown["ok"] and "unknown setting" in unknown["error"]
        # Commands to unknown meters and odd topics are ignored; the bridge keeps running.
        await rec.publish("series4000/nobody/set/ct_primary_a", "100")
        await rec.publish("series4000/main/set/x/y", "100")
        ok = await command(rec, "ct_primary_a", "250")
        assert ok["ok"]
    assert [w.values for w in sim.write_log] == [[250]]


def payloads(rng: random.Random) -> list[tuple[str, bytes]]:
    settings = [w[0] for w in WRITES if w[0] != "system_type"]
    samples = [b"", b" ", b"NaN", b"inf", b"-1", b"1e3", b"0x10", b"PRESS", b"\x00\xff",
               "４０".encode(), b"9" * 40, b"1" * 1_000_000, b"12.5", b"0", b"-0", b"+7"]
    out = []
    for _ in range(1500):
        setting = rng.choice(settings)
        kind = rng.random()
        if kind < 0.3:
            payload = rng.choice(samples)
        elif kind < 0.6:
            payload = str(rng.randint(-40000, 40000)).encode()
        elif kind < 0.8:
            payload = f"{rng.uniform(-1000, 1000):.{rng.randint(0, 4)}f}".encode()
        else:
            payload = bytes(rng.randrange(256) for _ in range(rng.randint(0, 20)))
        out.append((setting, payload))
    return out


async def test_random_payloads_never_write_an_invalid_value(broker: Broker, sim_factory: Any,
                                                             tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    # The writes are counted against the accepted commands below, so no answer may time out: a
    # write whose answer came late may still have reached the meter, and its retry writes again.
    # The simulator answers from this test's event loop, which is busy publishing the commands;
    # on a loaded machine it once took longer than the helpers' 0.3 s.
    bus = tcp_bus(port, [meter_cfg(poll_interval=5)], timeout=5.0)
    cfg = bridge_config(broker.port, [bus], tmp_path)
    sent = payloads(random.Random(4000))
    async with recorder(broker.port, ("series4000/main/result",)) as rec, running(cfg):
        await asyncio.sleep(1.0)
        assert rec.client is not None
        for setting, payload in sent:
            await rec.client.publish(f"series4000/main/set/{setting}", payload, qos=1)
        await rec.wait_for(lambda r: len(r.messages) >= len(sent), 120,
                           f"{len(sent)} results")
    results = [m.json() for m in rec.messages]
    assert len(results) == len(sent)  # every command answered, none lost
    by_reg = {w[3]: w[0] for w in WRITES}
    for write in sim.write_log:
        # In range, and accepted by the meter: the cross-register rules (voltage / PT ratio)
        # depend on what was written before, and the meter checks them itself.
        assert valid_oracle(by_reg[write.reg], write.values[0], cross=False), write
        assert write.exception is None, write
    accepted = [r for r in results if r["ok"]]
    assert len(accepted) == len([w for w in sim.write_log if w.exception is None])
    assert all(isinstance(r["error"], str) and r["error"] for r in results if not r["ok"])
    print(f"{len(sent)} payloads, {len(sim.write_log)} writes, {len(accepted)} accepted")
