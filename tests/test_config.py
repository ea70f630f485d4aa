"""The configuration file: the example is valid, and bad files exit 2 naming the key."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from bridge.config import load_config, parse_config
from bridge.errors import ConfigError
from tests.conftest import ROOT, run_cli

GOOD_BUS = {"name": "panel", "transport": "tcp", "host": "127.0.0.1",
            "meters": [{"name": "main", "unit": 1}]}


def with_bus(**changes: Any) -> dict[str, Any]:
    return {"buses": [{**GOOD_BUS, **changes}]}


# (config, expected start of the message: the key path and the problem)
INVALID: list[tuple[Any, str]] = [
    ({"mqtt": {"hots": "x"}}, "mqtt.hots: unknown key"),
    ({"mqtt": {"port": "eighty"}}, "mqtt.port: input should be a valid integer"),
    ({"mqtt": {"port": 70000}}, "mqtt.port: must be 1..65535"),
    ({"mqtt": {"base_topic": "a/#"}}, "mqtt.base_topic: must be a non-empty MQTT topic"),
    ({"mqtt": {"base_topic": "with space"}}, "mqtt.base_topic: must be a non-empty"),
    ({"mqtt": {"discovery_mode": "legacy"}}, "mqtt.discovery_mode: must be one of"),
    (with_bus(transport="serial"), "buses[0].transport: must be one of"),
    (with_bus(transport="rtu", host=None), "buses[0].device: required for transport rtu"),
    (with_bus(device="/dev/ttyUSB0"), "buses[0].device: only for transport rtu"),
    (with_bus(host=None), "buses[0].host: required for transport tcp"),
    (with_bus(parity="X"), "buses[0].parity: must be one of"),
    (with_bus(stopbits=3), "buses[0].stopbits: must be one of"),
    (with_bus(meters=[]), "buses[0].meters: list should have at least 1 item"),
    (with_bus(meters=[{"name": "m", "unit": 0}]), "buses[0].meters[0].unit: must be 1..247"),
    (with_bus(meters=[{"name": "m", "unit": 248}]), "buses[0].meters[0].unit: must be 1..247"),
    (with_bus(meters=[{"name": "Main Panel", "unit": 1}]),
     "buses[0].meters[0].name: must use only a-z, 0-9 and _"),
    (with_bus(meters=[{"name": "a/b", "unit": 1}]), "buses[0].meters[0].name: must use only"),
    (with_bus(meters=[{"name": "a", "unit": 1}, {"name": "b", "unit": 1}]),
     "buses[0].meters[1].unit: unit 1 is already used by meter 'a'"),
    (with_bus(meters=[{"name": "a", "unit": 1}, {"name": "a", "unit": 2}]),
     "buses[0].meters[1].name: 'a' is already used"),
    (with_bus(meters=[{"name": "bridge", "unit": 1}]),
     "buses[0].meters[0].name: 'bridge' is already used by the bridge's own topics"),
    (with_bus(meters=[{"name": "a", "unit": 1, "poll_interval": -1}]),
     "buses[0].meters[0].poll_interval: must be 0..86400"),
    (with_bus(meters=[{"name": "a", "unit": 1, "fast_keys": ["power_x"]}]),
     "buses[0].meters[0].fast_keys: unknown state key(s) power_x"),
    (with_bus(meters=[{"name": "a", "unit": 1, "colour": "red"}]),
     "buses[0].meters[0].colour: unknown key"),
    ({"buses": [GOOD_BUS, {**GOOD_BUS, "name": "other",
                           "meters": [{"name": "x", "unit": 1}]}]},
     "buses[1]: 127.0.0.1:502 is already bus 'panel'"),
    ({"pulse_inputs": [{"name": "p", "line": 17}]},
     "pulse_inputs[0].wh_per_pulse: required unless 'meter'"),
    ({**with_bus(), "pulse_inputs": [{"name": "p", "line": 17, "meter": "nope"}]},
     "pulse_inputs[0].meter: no meter named 'nope'"),
    ({"pulse_inputs": [{"name": "p", "line": 17, "wh_per_pulse": 5}]},
     "pulse_inputs[0].wh_per_pulse: must be one of"),
    ({"alarm_inputs": [{"name": "a", "line": 3, "active": "sometimes"}]},
     "alarm_inputs[0].active: must be one of"),
    ({"mqtt": {"tls": {"ca_file": "/nonexistent/ca.pem"}}},
     "mqtt.tls.ca_file: /nonexistent/ca.pem is not a readable file"),
    ({"mqtt": {"password": "${NOT_SET_ANYWHERE}"}},
     "mqtt.password: environment variable NOT_SET_ANYWHERE is not set"),
    ({"log_level": "loud"}, "log_level: must be one of"),
    ({"bridge_id": "My Bridge"}, "bridge_id: must use only"),
    ([1, 2], "config: the top level must be a mapping"),
]

TWO_BUSES_ONE_UNIT = {"buses": [GOOD_BUS, {**GOOD_BUS, "name": "barn", "port": 503,
                                           "meters": [{"name": "barn_meter", "unit": 1}]}],
                      "modbus_server": {}}

# The Modbus server's keys (checked in-process; check-config's exit code once, below).
INVALID_SERVER: list[tuple[Any, str]] = [
    (TWO_BUSES_ONE_UNIT,
     "buses[1].meters[0].server_unit: 'barn_meter' and 'main' would both be served as unit 1"),
    (with_bus(meters=[{"name": "a", "unit": 1}, {"name": "b", "unit": 2, "server_unit": 1}])
     | {"modbus_server": {}},
     "buses[0].meters[1].server_unit: 'b' and 'a' would both be served as unit 1"),
    (with_bus(meters=[{"name": "a", "unit": 1, "server_unit": 0}]),
     "buses[0].meters[0].server_unit: must be 1..247"),
    ({"modbus_server": {"port": 0}}, "modbus_server.port: must be 1..65535"),
    ({"modbus_server": {"max_age": 2}}, "modbus_server.max_age: unknown key"),
]


@pytest.mark.parametrize(("data", "expected"), INVALID_SERVER,
                         ids=[e for _, e in INVALID_SERVER])
def test_invalid_server_config_names_the_key(data: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={})
    assert str(err.value).startswith(expected), str(err.value)


async def test_check_config_names_both_meters_of_a_server_unit(tmp_path: Path) -> None:
    path = tmp_path / "units.yaml"
    path.write_text(yaml.safe_dump(TWO_BUSES_ONE_UNIT))
    code, _, err = await run_cli("check-config", str(path))
    assert code == 2 and "'barn_meter' and 'main' would both be served as unit 1" in err


def test_server_units_default_to_the_meter_units() -> None:
    two_buses = {"buses": [GOOD_BUS, {**GOOD_BUS, "name": "barn", "port": 503,
                                      "meters": [{"name": "barn_meter", "unit": 1,
                                                  "server_unit": 2}]}]}
    config = parse_config({**two_buses, "modbus_server": {"port": 5020}}, env={})
    assert [m.effective_server_unit for b in config.buses for m in b.meters] == [1, 2]
    assert config.modbus_server is not None and config.modbus_server.max_age_s == 2.0
    # Without the server, unit ids only need to be unique on their own bus.
    del two_buses["buses"][1]["meters"][0]["server_unit"]
    assert parse_config(two_buses, env={}).modbus_server is None


@pytest.mark.parametrize(("data", "expected"), INVALID, ids=[e for _, e in INVALID])
def test_invalid_config_names_the_key(data: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(data, env={})
    assert str(err.value).startswith(expected), str(err.value)


async def test_check_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    files = []
    for i, (data, expected) in enumerate(INVALID):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(data))
        files.append((path, expected))
    results = await asyncio.gather(*(run_cli("check-config", str(p)) for p, _ in files))
    for (path, expected), (code, out, err) in zip(files, results, strict=True):
        assert code == 2, (path, out, err)
        assert f"error: {expected}" in err, (expected, err)


async def test_check_config_accepts_the_example_and_hides_the_password() -> None:
    code, _, err = await run_cli("check-config", str(ROOT / "config.example.yaml"))
    # The example reads the password from the environment: without it, a clear error.
    assert code == 2 and "MQTT_PASSWORD is not set" in err
    config = load_config(ROOT / "config.example.yaml", env={"MQTT_PASSWORD": "s3cret-pw"})
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret-pw"
    assert "s3cret-pw" not in repr(config) and "s3cret-pw" not in str(config.model_dump())


def test_example_documents_every_key() -> None:
    """Every key of the models appears in config.example.yaml (comments count)."""
    from bridge.config import (
        AlarmInputConfig,
        BusConfig,
        Config,
        MeterConfig,
        ModbusServerConfig,
        MqttConfig,
        PublishConfig,
        PulseInputConfig,
        TlsConfig,
        WebConfig,
    )
    text = (ROOT / "config.example.yaml").read_text()
    for model in (Config, MqttConfig, TlsConfig, BusConfig, MeterConfig, PulseInputConfig,
                  AlarmInputConfig, PublishConfig, ModbusServerConfig, WebConfig):
        for key in model.model_fields:
            assert f"{key}:" in text, f"{model.__name__}.{key} is not in config.example.yaml"


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("mqtt:\n  host: [unclosed\n")
    with pytest.raises(ConfigError, match=r"line \d+, column \d+: not valid YAML"):
        load_config(path)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"mqtt:\n  host: caf\xe9\n")  # Latin-1, as an old editor saves it
    with pytest.raises(ConfigError, match=r"c.yaml: line 2: not UTF-8 text \(byte 0xe9\)"):
        load_config(path)


def test_defaults_work() -> None:
    config = parse_config({"buses": [GOOD_BUS]}, env={})
    assert config.mqtt.effective_port == 1883
    assert config.client_id == "series4000-main"
    assert config.buses[0].meters[0].poll_interval == 5.0
    assert config.buses[0].meters[0].allow_writes is False


def model_paths(model: type, prefix: str = "") -> set[str]:
    """Every key path of a configuration model (lists of models get ``[]``)."""
    import typing

    from pydantic import BaseModel

    paths = set()
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        path = f"{prefix}{name}"
        paths.add(path)
        annotation = field.annotation
        if typing.get_origin(annotation) is list:
            args = [annotation]
        else:
            args = [a for a in typing.get_args(annotation) if a is not type(None)] \
                or [annotation]
        for arg in args:
            inner = typing.get_args(arg)
            if typing.get_origin(arg) is list and inner and isinstance(inner[0], type) \
                    and issubclass(inner[0], BaseModel):
                paths |= model_paths(inner[0], f"{path}[].")
            elif isinstance(arg, type) and issubclass(arg, BaseModel):
                paths |= model_paths(arg, f"{path}.")
    return paths


def test_readme_configuration_reference_matches_the_models() -> None:
    import re

    from bridge.config import Config

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Configuration reference", 1)[1].split("\n## ", 1)[0]
    documented = set(re.findall(r"^\| `([^`]+)` \|", section, re.MULTILINE))
    assert documented == model_paths(Config)
