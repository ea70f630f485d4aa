"""Meters that differ from the simulator's defaults: read around what they refuse, register
dumps (``read --raw``, ``simulate --from-dump``), and every dump in tests/fixtures/dumps read
through the read path."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from bridge.meters.series4000 import PROFILE
from bridge.meters.series4000 import points as s4k
from bridge.meters.series4000.setup import decode_setup, valid_state_keys
from bridge.modbus.client import open_bus
from bridge.modbus.dump import read_dump
from bridge.modbus.links import TcpLink
from bridge.modbus.reader import read_once
from bridge.model import codec
from bridge.model.dump import DumpError, RegisterDump, from_json, to_json
from bridge.model.quantities import published_decimals, quantity
from bridge.sim.broker import Broker
from bridge.sim.dumped import DumpedMeter
from bridge.sim.quirks import Quirks
from bridge.sim.server import Simulator
from tests.conftest import run_cli
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.test_service_e2e import SETTINGS_KEYS, STATUS_KEYS
from tests.test_validity import EXPECTED

DUMPS = sorted((Path(__file__).parent / "fixtures" / "dumps").glob("*.json"))
QUIRKY = Quirks(max_read_registers=60, missing=frozenset(range(343, 347)))
LACKED_KEYS = {"energy_b_kwh", "energy_c_kwh"}  # floats 343-346
STATE = "series4000/main/state"
DEVICE = "homeassistant/device/series4000_main_main/config"


async def test_read_json_around_a_meter_that_refuses_long_reads_and_lacks_registers(
        sim_factory: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].quirks = QUIRKY
    _, port = await sim.serve_tcp()
    code, out, err = await run_cli("read", "--tcp", f"127.0.0.1:{port}", "--unit", "1", "--json")
    assert code == 0, err
    state = json.loads(out)
    measured = set(state) - SETTINGS_KEYS - STATUS_KEYS - {"system_type"}
    assert measured == EXPECTED[40] - LACKED_KEYS
    truth = sim.meters[1].state()
    for key in measured:
        assert state[key] == pytest.approx(truth[key], rel=1e-6), key
    assert "does not have registers 343-346" in err
    assert "refuses reads of 90 registers or more" in err


async def test_other_exceptions_still_fail_the_read(sim_factory: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].quirks = Quirks(max_read_registers=0)  # refuses every read with 03
    _, port = await sim.serve_tcp()
    code, _, err = await run_cli("read", "--tcp", f"127.0.0.1:{port}", "--unit", "1", "--json")
    assert code == 1 and "illegal data value" in err


async def test_a_dump_served_back_is_the_same_image(sim_factory: Any) -> None:
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].quirks = Quirks(max_read_registers=60, missing=frozenset(range(343, 347)),
                                  identification_first=1)
    _, port = await sim.serve_tcp()
    code, out, err = await run_cli("read", "--tcp", f"127.0.0.1:{port}", "--unit", "1", "--raw")
    assert code == 0, err
    dump = from_json(out)
    assert dump.identification == {1: "Leviton", 2: "Series 4000", 3: "V1.051"}
    assert [(r.start, r.count, r.exception) for r in dump.refused] == [(343, 2, 2), (345, 2, 2)]
    assert dump.longest_read_answered <= 60 < (dump.shortest_read_refused or 0)
    image = sim.meters[1].registers()
    assert all(dump.words[reg] == image[reg] for reg in dump.words)
    assert set(dump.words) == {reg for row in s4k.ALL_REGISTERS
                               for reg in range(row.reg, row.last_reg + 1)} - set(range(343, 347))
    # Served from the file, the dump reads back identical, and so does the state.
    served = Simulator({1: DumpedMeter(dump)})
    try:
        _, port2 = await served.serve_tcp()
        code, again, err = await run_cli("read", "--tcp", f"127.0.0.1:{port2}", "--unit", "1",
                                         "--raw")
        assert code == 0, err
        assert again == out
        states = [json.loads((await run_cli("read", "--tcp", f"127.0.0.1:{p}", "--unit", "1",
                                            "--json"))[1]) for p in (port, port2)]
        assert states[0] == states[1]
    finally:
        await served.stop()


def expected_state(dump: RegisterDump) -> dict[str, Any]:
    """An independent reading of the image: each valid float row whose words the dump holds
    and that are not QNAN, decoded on its own."""
    setup = decode_setup([dump.words[r] for r in range(129, 155)])
    valid = valid_state_keys(setup.system_type)
    out: dict[str, Any] = {}
    for row in s4k.MEASUREMENT_ROWS:
        words = [dump.words.get(r) for r in range(row.reg, row.last_reg + 1)]
        if row.key not in valid or None in words:
            continue
        value = codec.decode_raw(row.dtype, [w for w in words if w is not None])
        if value is not None:
            out[row.key] = value * row.factor
    return out


@pytest.mark.parametrize("path", DUMPS, ids=[p.stem for p in DUMPS])
async def test_every_dump_reads_through_the_read_path(path: Path) -> None:
    dump = from_json(path.read_text())
    sim = Simulator({dump.unit: DumpedMeter(dump)})
    try:
        _, port = await sim.serve_tcp()
        async with open_bus(TcpLink("127.0.0.1", port)) as bus:
            reading = await read_once(bus, dump.unit, PROFILE)
            again = await read_dump(bus, dump.unit, PROFILE)
    finally:
        await sim.stop()
    expected = expected_state(dump)
    measured = {k: v for k, v in reading.state.items()
                if k not in SETTINGS_KEYS | STATUS_KEYS}
    assert set(measured) == set(expected), path.name
    for key, value in expected.items():
        assert measured[key] == pytest.approx(value, rel=1e-6), (path.name, key)
    assert to_json(again) == path.read_text(), "the dump is not served exactly"
    if isinstance(dump.identification, dict) and dump.identification:
        assert reading.identity.vendor == "Leviton" and reading.identity.firmware


@pytest.mark.parametrize(("change", "error"), [
    (lambda d: d.update(format="something else"), "format: must be"),
    (lambda d: d.update(version=2), "version: must be 1"),
    (lambda d: d.update(unit=0), "unit: must be an integer 1..247"),
    (lambda d: d["ranges"][0]["words"].__setitem__(3, 70000),
     "ranges[0].words[3]: must be an integer 0..65535"),
    (lambda d: d["ranges"].append({"start": 400, "count": 2}),
     ".exception: must be an integer 1..255"),
    (lambda d: d.update(identification=[1, 2]), "identification: must be an object"),
    (lambda d: d.update(slave_id={"id": 247}), "slave_id: must be"),
])
def test_a_bad_dump_names_the_problem(change: Any, error: str) -> None:
    doc = json.loads(DUMPS[0].read_text())
    change(doc)
    with pytest.raises(DumpError, match=re.escape(error)):
        from_json(json.dumps(doc))


async def test_simulate_from_a_bad_dump_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    code, _, err = await run_cli("simulate", "--tcp", "127.0.0.1:0", "--from-dump", str(bad))
    assert code == 2 and "--from-dump" in err and "format: must be" in err


async def until(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_run_publishes_around_a_meter_that_refuses(broker: Broker, sim_factory: Any,
                                                         tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The service learns the meter's limits once, warns once naming the registers, and
    publishes and announces every other valid quantity, poll after poll."""
    caplog.set_level(logging.INFO)
    sim = sim_factory([1], 40, frozen=True)
    sim.meters[1].quirks = QUIRKY
    _, port = await sim.serve_tcp()
    meter = {"name": "main", "unit": 1, "poll_interval": 0.2}
    cfg = bridge_config(broker.port, [tcp_bus(port, [meter])], tmp_path)
    async with recorder(broker.port) as rec, running(cfg) as service:
        rt = service.pollers[0].meters["main"]
        # The longest read is bisected over the first polls (a refused probe in some)...
        await until(lambda: rt.polls >= 8, "eight polls")
        # ...then every poll is two requests (60 + 30 registers) and nothing is refused.
        refused, requests, polls = sim.refused_reads, sim.requests, rt.polls
        await until(lambda: rt.polls >= polls + 5, "five more polls")
        assert sim.refused_reads == refused
        assert len(rt.full_blocks) == 2 and max(b.count for b in rt.full_blocks) <= 60
        assert sim.requests - requests <= 2 * (rt.polls - polls) + 2
        state = (await rec.wait_message(STATE, 10)).json()
        device = rec.last_json(DEVICE)
    measured = set(state) - SETTINGS_KEYS - STATUS_KEYS
    assert measured == EXPECTED[40] - LACKED_KEYS
    truth = sim.meters[1].state()
    for key in measured:  # published at one digit past the display precision
        step = 10.0 ** -published_decimals(quantity(key))
        assert state[key] == pytest.approx(truth[key], rel=1e-6, abs=step), key
    # (A component that is only {"platform": ...} is the marker that removes it.)
    sensors = {k for k, c in device["components"].items()
               if c.get("platform") == "sensor" and len(c) > 1}
    assert not sensors & LACKED_KEYS and measured <= sensors
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "reading around it" in r.getMessage()]
    assert warnings == ["main: the meter does not have registers 343-346; refuses reads of 90 "
                        "registers or more (answered 44); reading around it"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
