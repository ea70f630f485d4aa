"""The bridge's own device: its entities per configured bus, its state message and when it is
sent (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.config import WebConfig
from bridge.core.bridge_state import (
    LINE_USE_AFTER_S,
    STATE_INTERVAL_S,
    Sent,
    bridge_state,
    due,
    online_counts,
)
from bridge.homeassistant.bridge_device import bridge_components, bridge_device, status_page_url
from bridge.model.topics import Topics
from tests.service_helpers import bridge_config, tcp_bus

T = Topics()
NODE = "series4000_main_bridge"


def buses(*specs: tuple[str, str]) -> Any:
    """Configured buses (name, transport), each with one meter."""
    made = [tcp_bus(5020 + i, [{"name": f"m{i}", "unit": 1}], name=name, transport=transport)
            for i, (name, transport) in enumerate(specs)]
    return bridge_config(1883, made, "/tmp/unused").buses


@pytest.mark.parametrize(("specs", "keys"), [
    ([], set()),
    ([("panel", "tcp")], {"bus_panel_meters_online", "bus_panel_requests",
                          "bus_panel_read_errors"}),
    ([("panel", "rtu_over_tcp")], {"bus_panel_meters_online", "bus_panel_requests",
                                   "bus_panel_read_errors", "bus_panel_line_use"}),
    ([("panel", "tcp"), ("shed", "rtu_over_tcp")],
     {"bus_panel_meters_online", "bus_panel_requests", "bus_panel_read_errors",
      "bus_shed_meters_online", "bus_shed_requests", "bus_shed_read_errors",
      "bus_shed_line_use"}),
])
def test_entities_per_configured_bus(specs: list[tuple[str, str]], keys: set[str]) -> None:
    comps = bridge_components(NODE, buses(*specs), T)
    assert set(comps) == {"connected", "started", "mqtt_published"} | keys
    # All are diagnostics of the bridge; every figure reads the bridge state and is unavailable
    # while the bridge is offline; the connection sensor reads the availability itself.
    assert all(c.config["entity_category"] == "diagnostic" for c in comps.values())
    assert comps["connected"].config["state_topic"] == T.bridge_availability
    for key in set(comps) - {"connected"}:
        cfg = comps[key].config
        assert cfg["state_topic"] == "series4000/bridge/state", key
        assert cfg["availability"] == [{"topic": "series4000/bridge/availability"}], key
        assert cfg["unique_id"] == f"{NODE}_{key}"


def test_figures_name_their_bus_and_have_statistics() -> None:
    comps = bridge_components(NODE, buses(("main_panel", "rtu_over_tcp")), T)
    online = comps["bus_main_panel_meters_online"].config
    assert online["name"] == "Main panel meters online"
    assert online["value_template"] == \
        "{{ value_json.get('buses', {}).get('main_panel', {}).get('meters_online') }}"
    assert "'configured': value_json.get('buses', {}).get('main_panel', {})" \
           ".get('meters_configured')" in online["json_attributes_template"]
    for key in ("bus_main_panel_requests", "bus_main_panel_read_errors", "mqtt_published"):
        assert comps[key].config["state_class"] == "total_increasing", key
    line = comps["bus_main_panel_line_use"].config
    assert (line["unit_of_measurement"], line["state_class"]) == ("%", "measurement")
    assert comps["started"].config["device_class"] == "timestamp"


@pytest.mark.parametrize(("web", "url"), [
    (None, None),
    (WebConfig(enabled=False), None),
    (WebConfig(host="127.0.0.1", port=8099), "http://127.0.0.1:8099/"),
    (WebConfig(host="::1", port=8099), "http://[::1]:8099/"),
    (WebConfig(host="0.0.0.0", port=8099, token="t"), None),  # every interface: no one address
    (WebConfig(host="bridge.local", port=80, token="t"), "http://bridge.local:80/"),
])
def test_the_device_links_the_status_page_where_its_address_is_known(
        web: WebConfig | None, url: str | None) -> None:
    assert status_page_url(web) == url
    block = bridge_device(NODE, "Leviton", web).block()
    assert block.get("configuration_url") == url
    assert block["sw_version"]


def snapshot(meters: list[tuple[str, bool, int]], bus_rows: list[dict[str, Any]]) -> Any:
    """A status snapshot with what the state message reads: meters (bus, online, errors)."""
    return {"bridge": {"version": "1.2.3", "uptime_s": 75, "mqtt": {}},
            "buses": bus_rows,
            "meters": [{"bus": bus, "online": online, "read_errors": errors}
                       for bus, online, errors in meters]}


@pytest.mark.parametrize(("line_busy", "uptime_s", "pct"), [
    (None, 60, None),        # Modbus TCP: no serial line
    (1.0, 0, None),          # the start's burst over a fraction of a second
    (0.5, LINE_USE_AFTER_S - 1, None),
    (0.02345, LINE_USE_AFTER_S, 2.3),
    (0.0, 3600, 0.0),
])
def test_line_use_is_reported_where_measured_and_once_it_means_something(
        line_busy: float | None, uptime_s: int, pct: float | None) -> None:
    snap = snapshot([("shed", True, 0)], [{"name": "shed", "transactions": 1,
                                           "line_busy": line_busy}])
    snap["bridge"]["uptime_s"] = uptime_s
    assert bridge_state(snap, None, 0)["buses"]["shed"]["line_use_pct"] == pct


def test_the_state_sums_each_bus_from_the_snapshot() -> None:
    snap = snapshot([("panel", True, 2), ("panel", False, 5), ("shed", True, 0)],
                    [{"name": "panel", "transactions": 120, "line_busy": None},
                     {"name": "shed", "transactions": 40, "line_busy": 0.01234}])
    state = bridge_state(snap, "2026-01-01T00:00:00+00:00", 300)
    assert state == {
        "version": "1.2.3", "started": "2026-01-01T00:00:00+00:00", "uptime_s": 75,
        "mqtt": {"published": 300},
        "buses": {
            "panel": {"meters_online": 1, "meters_configured": 2, "requests": 120,
                      "read_errors": 7, "line_use_pct": None},
            "shed": {"meters_online": 1, "meters_configured": 1, "requests": 40,
                     "read_errors": 0, "line_use_pct": 1.2}}}
    assert online_counts(state) == (("panel", 1), ("shed", 1))


@pytest.mark.parametrize(("last", "online", "now", "expected"), [
    (None, (("panel", 3),), 0.0, True),                           # at start
    (Sent(100.0, (("panel", 3),)), (("panel", 3),), 101.0, False),  # nothing changed
    (Sent(100.0, (("panel", 3),)), (("panel", 3),), 100.0 + STATE_INTERVAL_S - 0.1, False),
    (Sent(100.0, (("panel", 3),)), (("panel", 3),), 100.0 + STATE_INTERVAL_S, True),
    (Sent(100.0, (("panel", 3),)), (("panel", 2),), 101.0, True),   # a meter went offline
    (Sent(100.0, (("panel", 2),)), (("panel", 3),), 100.5, True),   # and came back
])
def test_the_state_goes_out_at_start_on_an_online_change_and_every_30_s(
        last: Sent | None, online: tuple[tuple[str, int], ...], now: float,
        expected: bool) -> None:
    assert due(last, online, now) is expected
