"""The web server end to end: the real service on simulated meters and a real broker, read
through a real HTTP client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from bridge.sim.broker import Broker
from bridge.sim.faults import apply_fault, parse_fault
from tests.conftest import run_cli
from tests.faults.proxy import Fault, FaultPlan, fault_proxy
from tests.mqtt_helpers import recorder
from tests.service_helpers import bridge_config, running, tcp_bus
from tests.web_helpers import base_url, get, get_json, serving, sse, web_settings

STATE = "series4000/{}/state"


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus exposition, by name and sorted labels."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


async def settled(service: Any, name: str) -> None:
    """Wait until the meter's last reading is published (none held back for min_interval)."""
    rt = service.pollers[0].meters[name]
    while rt.last_state is None or "publish" in rt.due:
        await asyncio.sleep(0.05)


async def test_api_and_metrics_equal_what_mqtt_got(broker: Broker, sim_factory: Any,
                                                   tmp_path: Path) -> None:
    sim = sim_factory([1, 2], [40, 12])
    _, port = await sim.serve_tcp()
    # One poll, then quiet for a minute: the API, the metrics and MQTT show the same poll.
    meters = [{"name": n, "unit": u, "poll_interval": 60, "config_interval": 60}
              for n, u in (("main", 1), ("shed", 2))]
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path, web=web_settings(),
                        publish={"heartbeat_s": 3600})
    assert cfg.web is not None
    url = base_url(cfg.web)
    async with recorder(broker.port) as rec, running(cfg) as service:
        await serving(service)
        for name in ("main", "shed"):
            await rec.wait_message(STATE.format(name))
            await settled(service, name)
        status = await get_json(url + "api/status")
        _, metrics, content_type = await get(url + "metrics")
    assert content_type.startswith("text/plain")
    samples = metric_samples(metrics)
    assert status["bridge"]["mqtt"] == {"connected": True, "broker": f"127.0.0.1:{broker.port}"}
    assert samples[("series4000_mqtt_connected", ())] == 1.0
    by_name = {m["name"]: m for m in status["meters"]}
    assert set(by_name) == {"main", "shed"}
    for name, meter in by_name.items():
        published = rec.last_json(STATE.format(name))
        assert meter["state"] == published
        assert meter["online"] is True and meter["bus"] == "panel"
        assert meter["system_type"] == published["system_type"]
        assert samples[("series4000_meter_online", (("meter", name),))] == 1.0
        numeric = {k: v for k, v in published.items()
                   if isinstance(v, int | float) and not isinstance(v, bool)}
        assert "power_w" in numeric
        for key, value in numeric.items():
            assert samples[("series4000_meter_value", (("key", key), ("meter", name)))] == value
        assert samples[("series4000_meter_read_errors_total", (("meter", name),))] == \
            published["read_errors"]
        assert samples[("series4000_meter_response_time_seconds", (("meter", name),))] == \
            published["response_time_ms"] / 1000.0
    # Only the phases the wiring uses: split phase has no phase C.
    assert by_name["shed"]["phases"] == ["a", "b"] and by_name["main"]["phases"] == ["a", "b", "c"]
    assert "current_c_a" not in by_name["shed"]["state"]
    bus = status["buses"][0]
    assert bus["name"] == "panel" and bus["connected"] and bus["transactions"] > 0
    assert samples[("series4000_bus_transactions_total", (("bus", "panel"),))] == \
        bus["transactions"]
    assert samples[("series4000_bus_timeouts_total", (("bus", "panel"),))] == bus["timeouts"]


async def test_token_and_allowed_clients_guard_every_route(broker: Broker, sim_factory: Any,
                                                           tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    bus = [tcp_bus(port, [{"name": "m1", "unit": 1}])]
    routes = ("", "api/status", "api/history", "api/log", "metrics")
    token_cfg = bridge_config(broker.port, bus, tmp_path,
                              web=web_settings(host="127.0.0.1", token="opensesame-42"))
    assert token_cfg.web is not None
    url = base_url(token_cfg.web)
    async with running(token_cfg) as service:
        await serving(service)
        for route in (*routes, "api/events"):
            status, _, _ = await get(url + route)
            assert status == 401, route
            status, _, _ = await get(url + route, {"Authorization": "Bearer wrong"})
            assert status == 401, route
        for route in routes:
            status, _, _ = await get(url + route, {"Authorization": "Bearer opensesame-42"})
            assert status == 200, route
    for allowed, expected in ((["127.0.0.2"], 403), (["127.0.0.1"], 200)):
        cfg = bridge_config(broker.port, bus, tmp_path,
                            web=web_settings(host="0.0.0.0", allowed_clients=allowed))
        assert cfg.web is not None
        async with running(cfg) as service:
            await serving(service)
            for route in routes:
                status, _, _ = await get(f"http://127.0.0.1:{cfg.web.port}/{route}")
                assert status == expected, (allowed, route)


async def test_no_secret_in_any_answer(broker: Broker, sim_factory: Any, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)  # the service's default level: the log view has lines
    password, token = "mqtt-pw-7d1f3c", "web-token-93ab11"
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [{"name": "m1", "unit": 1}])], tmp_path,
                        mqtt={"username": "bridge", "password": password},
                        web=web_settings(token=token))
    assert cfg.web is not None
    url, auth = base_url(cfg.web), {"Authorization": f"Bearer {token}"}
    async with recorder(broker.port) as rec, running(cfg) as service:
        await serving(service)
        await rec.wait_message(STATE.format("m1"))
        bodies = [(await get(url + route, auth))[1]
                  for route in ("", "api/status", "api/history", "api/log", "metrics")]
        events = []
        async for event in sse(url + "api/events", auth):
            events.append(repr(event))
            if event[0] == "log" or len(events) > 200:
                break
    assert "m1" in bodies[1] and "MQTT connected" in "".join(events)
    for text in [*bodies, *events]:
        assert password not in text and token not in text


async def test_events_send_the_status_then_what_changes(broker: Broker, sim_factory: Any,
                                                        tmp_path: Path) -> None:
    sim = sim_factory([1], 40)
    _, port = await sim.serve_tcp()
    sim.start_clock()
    cfg = bridge_config(broker.port, [tcp_bus(port, [{"name": "m1", "unit": 1,
                                                      "poll_interval": 0.5}])], tmp_path,
                        web=web_settings())
    assert cfg.web is not None
    seen: list[tuple[str, Any]] = []
    async with running(cfg) as service:
        await serving(service)
        async for event in sse(base_url(cfg.web) + "api/events"):
            seen.append(event)
            powers = [d["state"].get("power_w") for e, d in seen if e == "meter"]
            if len(set(powers) - {None}) >= 2:
                break
    first, data = seen[0]
    assert first == "status" and {"bridge", "buses", "meters", "inputs", "commands"} <= set(data)
    # After the first, only the objects that changed, one meter at a time.
    assert all(e in {"bridge", "bus", "meter", "input", "commands", "log"} for e, _ in seen[1:])
    assert all(d["name"] == "m1" for e, d in seen if e == "meter")


async def test_line_busy_and_crc_errors_on_a_serial_line(broker: Broker, sim_factory: Any,
                                                         tmp_path: Path) -> None:
    """RTU frames through a gateway at 9600 baud; one answer in five has a damaged CRC."""
    sim = sim_factory([1], 40, frozen=True)
    upstream = await sim.serve_rtu_over_tcp()
    plan = FaultPlan(responses={Fault.BAD_CRC: 0.2})
    async with fault_proxy(upstream, plan, seed=3) as proxy:
        bus = tcp_bus(proxy.port, [{"name": "m1", "unit": 1, "poll_interval": 0}],
                      transport="rtu_over_tcp", baudrate=9600, timeout=0.2)
        cfg = bridge_config(broker.port, [bus], tmp_path, web=web_settings())
        assert cfg.web is not None
        async with running(cfg) as service:
            await serving(service)
            stats = service.pollers[0].client.stats
            while stats.crc_errors < 3:
                await asyncio.sleep(0.1)
            status = (await get_json(base_url(cfg.web) + "api/status"))["buses"][0]
    assert status["baudrate"] == 9600
    assert 0 < status["line_busy"] <= 1
    damaged = proxy.faults("response")[Fault.BAD_CRC]
    assert 3 <= status["crc_errors"] <= damaged, (status, damaged)
    assert status["timeouts"] >= status["crc_errors"]
    assert status["last_error"] is not None or status["failed"] == 0


async def test_bad_requests_get_an_error_and_the_bridge_goes_on(broker: Broker,
                                                                sim_factory: Any,
                                                                tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    cfg = bridge_config(broker.port, [tcp_bus(port, [{"name": "m1", "unit": 1}])], tmp_path,
                        web=web_settings())
    assert cfg.web is not None
    url = base_url(cfg.web)
    async with running(cfg) as service:
        await serving(service)
        assert (await get(url + "nothing-here"))[0] == 404
        assert (await get(url + "api/status?x=%ff%fe"))[0] == 200
        # A request line that is not HTTP at all.
        reader, writer = await asyncio.open_connection(cfg.web.host, cfg.web.port)
        writer.write(b"\x00\xffGARBAGE / HTTP/9\r\n\r\n")
        await writer.drain()
        answer = await reader.read(100)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n")[0]
        status = await get_json(url + "api/status")
    assert status["meters"][0]["name"] == "m1"


async def test_check_config_names_web_when_open_without_a_guard(tmp_path: Path) -> None:
    base = {"buses": [{"name": "b", "transport": "tcp", "host": "127.0.0.1",
                       "meters": [{"name": "m", "unit": 1}]}]}
    cases = (({"host": "0.0.0.0"}, 2), ({"host": "192.168.1.5", "port": 8099}, 2),
             ({"host": "0.0.0.0", "token": "t"}, 0),
             ({"host": "0.0.0.0", "allowed_clients": ["172.30.32.2"]}, 0),
             ({"host": "::1"}, 0), (None, 0), ({"enabled": False, "host": "0.0.0.0"}, 0))
    for i, (web, expected) in enumerate(cases):
        path = tmp_path / f"c{i}.yaml"
        path.write_text(yaml.safe_dump({**base, "web": web}))
        rc, out, err = await run_cli("check-config", str(path))
        assert rc == expected, (web, out, err)
        if expected:
            assert err.startswith("web.host:") or "web.host:" in err, err


async def test_command_results_newest_first(broker: Broker, sim_factory: Any,
                                            tmp_path: Path) -> None:
    sim = sim_factory([1], 40, frozen=True)
    _, port = await sim.serve_tcp()
    meters = [{"name": "main", "unit": 1, "allow_writes": True}]
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path, web=web_settings())
    async with recorder(broker.port) as rec, running(cfg) as service:
        url = await serving(service)
        await rec.wait_message(STATE.format("main"))
        await rec.publish("series4000/main/set/ct_primary_a", "200")
        await rec.wait_message("series4000/main/result")
        await rec.publish("series4000/main/set/ct_primary_a", "-5")
        await rec.wait_for(lambda r: len(r.on("series4000/main/result")) == 2, what="2 results")
        commands = (await get_json(url + "api/status"))["commands"]
    published = [m.json() for m in rec.on("series4000/main/result")]
    assert [{k: c[k] for k in published[0]} for c in commands] == published[::-1]
    assert commands[0]["ok"] is False and commands[1]["ok"] is True
    assert all(c["meter"] == "main" and c["time"] for c in commands)


async def test_wiring_findings_with_their_fix(broker: Broker, sim_factory: Any,
                                              tmp_path: Path) -> None:
    """An open B voltage tap on a split-phase meter: the finding and its fix in the status."""
    sim = sim_factory([1], 12)
    apply_fault(sim.meters[1], parse_fault("voltage_missing:b"))
    _, port = await sim.serve_tcp()
    meters = [{"name": "shed", "unit": 1, "poll_interval": 0.2}]
    cfg = bridge_config(broker.port, [tcp_bus(port, meters)], tmp_path, web=web_settings())
    async with recorder(broker.port) as rec, running(cfg) as service:
        url = await serving(service)
        state = await rec.wait_for(
            lambda r: (s := r.last_json(STATE.format("shed"))) and s.get("wiring") and s,
            what="a wiring finding")
        meter = (await get_json(url + "api/status"))["meters"][0]
    assert [f["code"] for f in meter["wiring"]] == state["wiring"]
    finding = meter["wiring"][0]
    assert finding["phase"] == "bn" and finding["message"] and finding["fix"]
    assert f"{finding['code']}_{finding['phase']}: {finding['message']}" in \
        state["wiring_findings"][0]
