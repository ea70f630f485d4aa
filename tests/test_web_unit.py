"""The status page's pure parts: the line's busy share, wiring phases, event diffs, metrics,
the log ring and the web settings."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from bridge.app.status_board import LogRing
from bridge.config import BusConfig, parse_config
from bridge.core import status
from bridge.errors import ConfigError
from bridge.meters.series4000 import PROFILE
from bridge.web import events
from bridge.web.metrics import families

# (frame bytes, seconds, baud, parity, stop bits, share): a character is start + 8 data +
# parity + stop bits, so at 9600 8N1 960 bytes take one second.
LINE_BUSY = [
    (960, 2.0, 9600, "N", 1, 0.5),
    (960, 1.0, 9600, "N", 1, 1.0),
    (1920, 1.0, 9600, "N", 1, 1.0),  # more than the line can carry: capped, not above 1
    (960, 2.2, 9600, "E", 1, 0.5),  # 11 bits per character
    (1920, 4.0, 19200, "N", 2, 0.275),  # 11 bits per character
    (0, 5.0, 9600, "N", 1, 0.0),
    (100, 0.0, 9600, "N", 1, 0.0),  # no time passed: nothing to say
]


@pytest.mark.parametrize(("line_bytes", "seconds", "baud", "parity", "stop", "share"),
                         LINE_BUSY)
def test_line_busy(line_bytes: int, seconds: float, baud: int, parity: str, stop: int,
                   share: float) -> None:
    assert status.line_busy(line_bytes, seconds, baud, parity, stop) == pytest.approx(share)


@pytest.mark.parametrize(("transport", "has_busy"), [("rtu", True), ("rtu_over_tcp", True),
                                                     ("tcp", False)])
def test_rates_per_transport(transport: str, has_busy: bool) -> None:
    where = {"device": "/dev/ttyUSB0"} if transport == "rtu" else {"host": "127.0.0.1"}
    bus = BusConfig.model_validate({"name": "b", "transport": transport, "baudrate": 9600,
                                    "meters": [{"name": "m", "unit": 1}], **where})
    rates = status.rates(bus, status.BusSample(10.0, 0, 0), status.BusSample(12.0, 960, 8))
    assert rates.transactions_per_s == 4.0
    assert rates.line_busy == (0.5 if has_busy else None)


@pytest.mark.parametrize(("system_type", "expected"), [
    (40, ["a", "b", "c"]), (31, ["a", "b", "c"]), (12, ["a", "b"]), (11, ["a"]), (10, ["a"])])
def test_phases_the_wiring_uses(system_type: int, expected: list[str]) -> None:
    assert status.phases(PROFILE.valid_keys(system_type)) == expected


def test_wall_time_of_a_monotonic_instant() -> None:
    assert status.wall_time(None, 100.0, 1.7e9) is None
    assert status.wall_time(40.0, 100.0, 1_700_000_060.0) == "2023-11-14T22:13:20+00:00"


def _status() -> dict[str, Any]:
    meter = {"name": "m1", "online": True, "read_errors": 2, "response_time_ms": 12.5,
             "refresh_s": 1.25,
             "state": {"power_w": 1500.5, "energy_kwh": 12, "ct_output": "1V",
                       "alarms": ["phase_loss_a"], "flag": True}}
    bus = {"name": "b1", "transactions": 10, "timeouts": 1, "crc_errors": 0, "exceptions": 3,
           "line_busy": None, "connected": True, "budget": None}
    serial = {**bus, "name": "b2", "line_busy": 0.5, "budget": {
        "fast_interval_s": [1.0], "poll_interval_s": [30.0], "share_needed": 1.05,
        "limit": 0.97, "fast_achievable_s": [1.108], "meter_reaction_ms": 0.25}}
    inputs = [{"name": "p1", "kind": "pulse", "state": {"energy_kwh": 3.25}},
              {"name": "a1", "kind": "alarm", "state": {"problem": False}}]
    return {"bridge": {"version": "1", "uptime_s": 5, "mqtt": {"connected": False,
                                                               "broker": "h:1"}},
            "buses": [bus, serial], "meters": [meter], "inputs": inputs, "commands": [],
            "modbus_server": {"listen": "127.0.0.1:5020", "clients": []}}


def _changed(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    new = copy.deepcopy(_status())
    node = new
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return new


@pytest.mark.parametrize(("new", "expected"), [
    (_status(), []),
    (_changed(("meters", 0, "online"), False), ["meter"]),
    (_changed(("bridge", "uptime_s"), 6), ["bridge"]),
    (_changed(("buses", 0, "timeouts"), 2), ["bus"]),
    (_changed(("inputs", 1, "state"), {"problem": True}), ["input"]),
    (_changed(("commands",), [{"setting": "x"}]), ["commands"]),
    (_changed(("modbus_server", "clients"), [{"peer": "127.0.0.1:40000", "requests": 1}]),
     ["modbus_server"]),
    (_changed(("meters",), []), ["status"]),  # a meter went away: the whole status again
    (_changed(("inputs", 0, "name"), "p2"), ["status"]),
])
def test_events_send_only_what_changed(new: dict[str, Any], expected: list[str]) -> None:
    assert [event for event, _ in events.changes(_status(), new)] == expected
    assert events.changes(None, new) == [("status", new)]


def test_event_frame_carries_one_json_line() -> None:
    data = {"message": "two\nlines", "w": 1.5}
    text = events.frame("log", data).decode()
    lines = text.split("\n")
    assert lines[0] == "event: log" and lines[1].startswith("data: ") and text.endswith("\n\n")
    assert json.loads(lines[1][6:]) == data


def _exposed(status_: dict[str, Any]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    class Fixed:
        def collect(self) -> Any:
            return families(status_)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def test_metrics_take_numbers_only_and_name_the_units() -> None:
    snapshot = _status()
    samples = _exposed(snapshot)
    values = {dict(labels)["key"]: v for (name, labels), v in samples.items()
              if name == "series4000_meter_value"}
    numbers = {k: v for k, v in snapshot["meters"][0]["state"].items()
               if isinstance(v, int | float) and not isinstance(v, bool)}
    assert values == numbers  # text, lists and booleans are not values
    assert samples[("series4000_meter_response_time_seconds", (("meter", "m1"),))] == 0.0125
    assert samples[("series4000_meter_read_errors_total", (("meter", "m1"),))] == 2
    assert samples[("series4000_bus_exceptions_total", (("bus", "b1"),))] == 3
    assert samples[("series4000_pulse_energy_kwh", (("input", "p1"),))] == 3.25
    assert not any(dict(labels).get("input") == "a1" for _, labels in samples)
    assert samples[("series4000_meter_refresh_seconds", (("meter", "m1"),))] == 1.25
    # No serial line (Modbus TCP): no busy share nor budget rather than a made-up 0.
    for family in ("line_busy_ratio", "line_needed_ratio", "fast_achievable_seconds",
                   "meter_reaction_seconds"):
        assert not any(name == f"series4000_bus_{family}" and labels == (("bus", "b1"),)
                       for name, labels in samples)
    assert samples[("series4000_bus_line_needed_ratio", (("bus", "b2"),))] == 1.05
    assert samples[("series4000_bus_fast_achievable_seconds", (("bus", "b2"),))] == 1.108
    assert samples[("series4000_bus_meter_reaction_seconds", (("bus", "b2"),))] == 0.00025
    assert samples[("series4000_mqtt_connected", ())] == 0.0


def test_log_ring_keeps_the_last_records_at_info_and_above() -> None:
    changes: list[int] = []
    ring = LogRing(lambda: changes.append(1), capacity=3)
    logger = logging.getLogger("tests.ring")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(ring)
    try:
        logger.debug("not kept")
        for i in range(5):
            logger.warning("line %d", i)
    finally:
        logger.removeHandler(ring)
    records = ring.records()
    assert [r["message"] for r in records] == ["line 2", "line 3", "line 4"]
    assert [r["seq"] for r in records] == [3, 4, 5] and len(changes) == 5
    assert [r["message"] for r in ring.records(after=4)] == ["line 4"]
    assert records[0]["level"] == "WARNING" and records[0]["logger"] == "tests.ring"


@pytest.mark.parametrize(("web", "error"), [
    ({"host": "0.0.0.0"}, "web.host: 0.0.0.0 is reachable from other machines"),
    ({"host": "bridge.local"}, "web.host: bridge.local is reachable"),
    ({"host": "0.0.0.0", "allowed_clients": []}, "web.host:"),
    ({"allowed_clients": ["172.30.32.300"]}, "web.allowed_clients[0]: value is not a valid"),
    ({"port": 70000}, "web.port: must be 1..65535"),
    ({"token": None, "colour": "red"}, "web.colour: unknown key"),
])
def test_web_settings_errors_name_the_key(web: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config({"web": web}, env={})
    assert str(info.value).startswith(error)


@pytest.mark.parametrize(("web", "on"), [
    ({}, True), (None, False), ({"enabled": False}, False), ({"host": "127.0.0.2"}, True),
    ({"host": "::1"}, True), ({"host": "localhost"}, True),
    ({"host": "0.0.0.0", "token": "${WEB_TOKEN}"}, True),
    ({"host": "0.0.0.0", "allowed_clients": ["172.30.32.2"]}, True),
])
def test_web_settings_that_are_accepted(web: dict[str, Any] | None, on: bool) -> None:
    config = parse_config({"web": web} if web != {} else {}, env={"WEB_TOKEN": "s3cr3t"})
    assert (config.web is not None and config.web.enabled) == on
    assert "s3cr3t" not in repr(config) and "s3cr3t" not in str(config.model_dump())
