"""`python -m bridge read` against the simulator: Modbus TCP, RTU over TCP and a pty (pyserial),
every system type, valid quantities only; clear exits when something is wrong."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.test_service_e2e import SETTINGS_KEYS, STATUS_KEYS
from tests.test_validity import EXPECTED

TYPES = [10, 11, 12, 31, 40]


async def test_read_json_all_transports_all_types(sim_factory: Any) -> None:
    units = list(range(1, len(TYPES) + 1))
    sim = sim_factory(units, TYPES, frozen=True)
    _, tcp = await sim.serve_tcp()
    _, rtu = await sim.serve_rtu_over_tcp()
    pty = await sim.serve_pty()
    runs = []
    for system_type in TYPES:
        runs.append((system_type, "tcp", ("--tcp", f"127.0.0.1:{tcp}")))
        runs.append((system_type, "rtu-over-tcp", ("--rtu-over-tcp", f"127.0.0.1:{rtu}")))
    results = await asyncio.gather(*(
        run_cli("read", *link, "--unit", str(TYPES.index(st) + 1), "--json")
        for st, _, link in runs))
    # One serial port, one master at a time: the pty reads run one after the other.
    for unit, system_type in zip(units, TYPES, strict=True):
        runs.append((system_type, "pty", ("--serial", pty)))
        results.append(await run_cli("read", "--serial", pty, "--unit", str(unit), "--json"))
    for (system_type, transport, _), (code, out, err) in zip(runs, results, strict=True):
        assert code == 0, (transport, system_type, err)
        state = json.loads(out)
        assert state["system_type"] == system_type
        measured = set(state) - SETTINGS_KEYS - STATUS_KEYS
        assert measured == EXPECTED[system_type], (transport, system_type)
        truth = sim.meters[TYPES.index(system_type) + 1].state()
        for key in measured:
            assert state[key] == pytest.approx(truth[key], rel=1e-6), (transport, key)


async def test_read_table_for_people(sim_factory: Any) -> None:
    sim = sim_factory([3], 12, frozen=True)
    _, port = await sim.serve_tcp()
    code, out, _ = await run_cli("read", "--tcp", f"127.0.0.1:{port}", "--unit", "3")
    assert code == 0
    assert "System type 12: Split phase 3-wire (12)" in out
    assert "voltage_bn_v" in out and "voltage_cn_v" not in out
    assert "firmware V1.051" in out


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--unit", "9"), 1, "unit 9: no answer"),  # nobody at that address
    (("--unit", "300"), 2, "--unit must be 1..247"),
])
async def test_read_errors(sim_factory: Any, args: tuple[str, ...], code: int,
                           message: str) -> None:
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    got, out, err = await run_cli("read", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.3",
                                  *args)
    assert got == code and message in err and not out
    assert "continue with next request" not in err  # pymodbus's internals, not the meter's


async def test_read_bad_arguments_exit_2() -> None:
    for args in (("read", "--unit", "1"), ("read", "--tcp", "host:x", "--unit", "1"),
                 ("read", "--tcp", "h:1", "--serial", "/dev/x", "--unit", "1"),
                 ("simulate", "--units", "0"), ("scan", "--tcp", "h:1", "--units", "5-2")):
        code, _, err = await run_cli(*args)
        assert code == 2 and err, args


async def test_read_refused_connection_exits_1() -> None:
    code, _, err = await run_cli("read", "--tcp", "127.0.0.1:1", "--unit", "1")
    assert code == 1 and "cannot connect (connection refused or host unreachable)" in err


async def test_read_of_a_name_that_does_not_resolve_says_so() -> None:
    # .invalid never resolves (RFC 6761): the lookup fails, nothing is connected to.
    code, _, err = await run_cli("read", "--tcp", "nosuchhost.invalid:502", "--unit", "1")
    assert code == 1 and "host name 'nosuchhost.invalid' does not resolve" in err, err


async def test_scan_reversed_range_says_so() -> None:
    code, out, err = await run_cli("scan", "--tcp", "127.0.0.1:1", "--units", "5-1")
    assert code == 2 and not out
    assert err.strip() == "error: units '5-1': '5-1' is a reversed range (write 1-5)"


async def test_scan_finds_the_meters(sim_factory: Any) -> None:
    sim = sim_factory([2, 5], 40)
    _, port = await sim.serve_tcp()
    code, out, _ = await run_cli("scan", "--tcp", f"127.0.0.1:{port}", "--units", "1-6",
                                 "--timeout", "0.2")
    assert code == 0
    rows = [line.split()[0] for line in out.splitlines()[2:]]
    assert rows == ["2", "5"]
