"""The wiring check end to end: ``check-wiring`` against simulated meters with each fault, the
``simulate --fault`` verb, and the running bridge (state ``wiring``, the Wiring problem entity,
one log line per new finding) against a real broker."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from bridge.meters.series4000.wiring_basis import CODES
from bridge.sim.broker import Broker
from bridge.sim.faults import apply_fault, parse_fault
from tests.conftest import ROOT, run_cli
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus

# One fault per code (the simulated meter is a 3-phase wye unless the row says otherwise).
FAULTS: list[tuple[str, str, int]] = [
    ("voltage_missing:c", "voltage_missing", 3),
    ("phase_lost:c", "system_type_mismatch", 3),
    ("phase_loss:b", "phase_loss", 3),
    ("voltage_out_of_range:a", "voltage_out_of_range", 3),
    ("voltage_imbalance", "voltage_imbalance", 3),
    ("system_voltage:480", "system_voltage_setting", 3),
    ("ct_wrong_phase:b", "ct_wrong_phase", 3),
    ("ct_over_range:a", "ct_over_range", 3),
    ("frequency:40", "frequency_out_of_range", 3),
    ("pulse_weight_too_small", "pulse_weight_too_small", 3),
    ("ct_no_current:c", "ct_no_current", 0),  # information only: nothing to fix
]


def test_every_code_has_a_simulated_fault() -> None:
    assert {code for _, code, _ in FAULTS} == set(CODES)


async def test_check_wiring_finds_each_fault(sim_factory: Any) -> None:
    units = list(range(1, len(FAULTS) + 2))
    sim = sim_factory(units, 40)
    for unit, (fault, _, _) in zip(units, FAULTS, strict=False):
        apply_fault(sim.meters[unit], parse_fault(fault))
    _, port = await sim.serve_tcp()
    sim.start_clock()
    results = await asyncio.gather(*(
        run_cli("check-wiring", "--tcp", f"127.0.0.1:{port}", "--unit", str(unit),
                "--seconds", "1", "--json", timeout=60) for unit in units))
    for (fault, code, exit_code), (rc, out, err) in zip(FAULTS, results, strict=False):
        assert rc == exit_code, (fault, out, err)
        result = json.loads(out)
        assert result["system_type"] == 40
        assert code in [f["code"] for f in result["findings"]], (fault, out)
        for f in result["findings"]:
            assert set(f) >= {"code", "severity", "phase", "message", "fix"}
    rc, out, _ = results[-1]  # the clean meter
    assert rc == 0 and json.loads(out) == {"system_type": 40, "findings": []}


async def test_check_wiring_text_over_rtu_and_errors(sim_factory: Any) -> None:
    sim = sim_factory([1, 2], [12, 10])
    apply_fault(sim.meters[1], parse_fault("voltage_missing:b"))
    _, port = await sim.serve_rtu_over_tcp()
    rc, out, _ = await run_cli("check-wiring", "--rtu-over-tcp", f"127.0.0.1:{port}",
                               "--unit", "1", "--seconds", "0")
    assert rc == 3, out
    assert re.search(r"^error\s+voltage_missing\s+bn\s+Voltage BN reads 0 V", out, re.M), out
    assert "1. voltage_missing (bn): Check the voltage lead of phase B" in out
    rc, out, _ = await run_cli("check-wiring", "--rtu-over-tcp", f"127.0.0.1:{port}",
                               "--unit", "2", "--seconds", "0")
    assert rc == 0 and "No findings" in out, out
    # Nobody at unit 9: exit 1 with the reason; bad arguments: exit 2.
    rc, _, err = await run_cli("check-wiring", "--rtu-over-tcp", f"127.0.0.1:{port}",
                               "--unit", "9", "--seconds", "0", "--timeout", "0.2")
    assert rc == 1 and "unit 9" in err, err
    for bad in (["--unit", "300"], ["--unit", "1", "--seconds", "-1"], ["--unit", "x"]):
        rc, _, err = await run_cli("check-wiring", "--tcp", f"127.0.0.1:{port}", *bad)
        assert rc == 2 and err, (bad, err)


async def test_simulate_verb_serves_a_faulty_meter() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", "simulate", "--tcp", "127.0.0.1:0", "--system-type",
        "40", "--fault", "ct_wrong_phase:b", "--fault", "system_voltage:480", cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        port = first.strip().rsplit(":", 1)[1]
        assert "wired with ct_wrong_phase:b, system_voltage:480" in (
            await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        rc, out, _ = await run_cli("check-wiring", "--tcp", f"127.0.0.1:{port}", "--unit", "1",
                                   "--seconds", "0", "--json")
        assert rc == 3
        assert {f["code"] for f in json.loads(out)["findings"]} == {
            "ct_wrong_phase", "system_voltage_setting"}
    finally:
        proc.terminate()
        await proc.wait()
    rc, _, err = await run_cli("simulate", "--tcp", "127.0.0.1:0", "--system-type", "10",
                               "--fault", "voltage_missing:c")
    assert rc == 2 and "system type 10 has no phase C" in err
    rc, _, err = await run_cli("simulate", "--tcp", "127.0.0.1:0", "--from-dump", "meter.json",
                               "--fault", "voltage_missing:c")
    assert rc == 2 and "a dump is a real meter's registers" in err


async def test_running_bridge_reports_held_findings(broker: Broker, sim_factory: Any,
                                                    tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="bridge.core.wiring")
    sim = sim_factory([1, 2], [40, 12], frozen=True)
    apply_fault(sim.meters[1], parse_fault("voltage_missing:c"))
    _, port = await sim.serve_tcp()
    meters = [{"name": name, "unit": unit, "poll_interval": 0.2, "config_interval": 5}
              for name, unit in (("faulty", 1), ("clean", 2))]
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path)
    async with recorder(broker.port) as rec, running(cfg):
        await rec.wait_for(
            lambda r: (r.last_json("series4000/faulty/state") or {}).get("wiring"), 20,
            "the faulty meter's wiring finding")
        states = [m.json() for m in rec.on("series4000/faulty/state")]
        # Held: the first states (before a few full reads) carry no finding yet.
        assert states[0]["wiring"] == []
        state = states[-1]
        assert state["wiring"] == ["voltage_missing"]
        assert state["wiring_findings"][0].startswith("voltage_missing_cn: Voltage CN reads 0 V")
        assert "Fix: Check the voltage lead of phase C" in state["wiring_findings"][0]
        disc = (await rec.wait_message("homeassistant/device/series4000_main_faulty/config")).json()
        comp = disc["components"]["wiring_problem"]
        assert comp["platform"] == "binary_sensor" and comp["name"] == "Wiring problem"
        assert comp["device_class"] == "problem" and comp["entity_category"] == "diagnostic"
        assert comp["json_attributes_topic"] == "series4000/faulty/state"
        # The fault is repaired: the finding clears after a few reads, and the log says so.
        sim.meters[1].load.voltage_scale.clear()
        sim.meters[1].rewired()
        await rec.wait_for(
            lambda r: r.last_json("series4000/faulty/state")["wiring"] == [], 20,
            "the finding to clear")
        clean = [m.json() for m in rec.on("series4000/clean/state")]
    assert clean and all(s["wiring"] == [] and s["wiring_findings"] == [] for s in clean)
    raised = [r for r in caplog.records if "voltage_missing (cn)" in r.getMessage()]
    assert len(raised) == 1 and raised[0].levelno == logging.WARNING  # said once
    assert "faulty: wiring error voltage_missing (cn)" in raised[0].getMessage()
    assert any("faulty: wiring finding voltage_missing_cn is gone" in r.getMessage()
               for r in caplog.records)
    assert not [r for r in caplog.records if r.getMessage().startswith("clean:")]
