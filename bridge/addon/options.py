"""Add-on options -> the bridge's configuration mapping (pure: no I/O).

The add-on's options mirror the configuration file with one difference: meters are a list
beside the buses, and each meter names its bus (``meters[i].bus``), where the file nests
meters under their bus. Supervisors before 2025.09 accept option schemas at most two levels
deep (a list of mappings of plain values), and the add-on's form edits flat lists well, so
``buses[].meters[]`` cannot be an option. Because of that regrouping, an error that the
configuration check reports as ``buses[0].meters[1].unit`` is translated back to the option
the user edited, e.g. ``meters[3].unit``.

The broker: by default the one the Supervisor's ``mqtt`` service names (the Mosquitto add-on).
Options win where the user set them: ``mqtt.host`` switches to another broker entirely (then
host, port, username and password all come from the options, since the Mosquitto account is
meaningless elsewhere); ``mqtt.username`` (with ``mqtt.password``) replaces the service's
account on the service's broker; ``mqtt.port`` replaces the port. Topic settings are
independent of where the broker comes from.

The status page (``web``): the bridge's HTTP server listens on every interface of the add-on's
container, at the port the Supervisor's ingress proxies to, and accepts connections from the
ingress gateway only. Home Assistant has authenticated the user before the gateway forwards a
request, so no token is set.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import ConfigError

#: Option keys per list item, in the order they appear in the configuration file.
BUS_KEYS = ("name", "transport", "device", "host", "port", "baudrate", "parity", "stopbits",
            "timeout", "retries")
METER_KEYS = ("name", "bus", "unit", "poll_interval", "allow_writes", "display_name",
              "allow_resets", "area")
PULSE_KEYS = ("name", "chip", "line", "meter", "wh_per_pulse", "edge", "bias", "debounce_ms",
              "power_timeout_s")
ALARM_KEYS = ("name", "chip", "line", "meter", "active", "bias", "debounce_ms")
MQTT_KEYS = ("host", "port", "username", "password", "base_topic", "discovery_prefix")
TOP_KEYS = ("buses", "meters", "pulse_inputs", "alarm_inputs", "mqtt", "log_level")

#: The Supervisor's ingress: its gateway's address on the add-ons' network (hassio), and the
#: port it proxies to (the default ``ingress_port``, which config.yaml therefore leaves out).
INGRESS_GATEWAY = "172.30.32.2"
INGRESS_PORT = 8099
#: Every interface of the container: the gateway reaches it over the add-ons' network.
WEB_HOST = "0.0.0.0"


def web_config() -> dict[str, Any]:
    """The ``web`` section in add-on mode: reachable through ingress and nothing else."""
    return {"host": WEB_HOST, "port": INGRESS_PORT, "allowed_clients": [INGRESS_GATEWAY]}


#: Select options arrive as strings (the Supervisor's ``list(a|b)`` type); these are numbers.
_INT_SELECTS = frozenset({"stopbits", "wh_per_pulse"})


@dataclass(frozen=True, slots=True)
class Broker:
    """What the Supervisor's ``mqtt`` service says about the broker."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False


@dataclass(frozen=True, slots=True)
class Mapped:
    """The configuration mapping built from the options, and how to name its keys back."""

    config: dict[str, Any]
    #: Configuration path prefix -> option path prefix, where they differ.
    paths: dict[str, str]
    #: ``options`` when the user's ``mqtt.host`` names the broker, else ``supervisor``.
    broker_source: str


def is_set(value: Any) -> bool:
    """An optional option the user left empty arrives missing, ``null`` or ``""``."""
    return value is not None and value != ""


def uses_service_broker(options: Mapping[str, Any]) -> bool:
    """True unless the options name a broker of their own (then the services API is not asked)."""
    mqtt = options.get("mqtt")
    return not (isinstance(mqtt, Mapping) and is_set(mqtt.get("host")))


def to_config(options: Mapping[str, Any], broker: Broker | None, state_dir: str,
              web: bool = True) -> Mapped:
    """Build the configuration mapping; raise :class:`ConfigError` naming the option.

    ``web``: include the status page's section (:func:`web_config`).
    """
    if not isinstance(options, Mapping):
        raise ConfigError("options: expected a mapping of options")
    _unknown(options, TOP_KEYS, "")
    buses = _items(options, "buses", BUS_KEYS)
    meters = _items(options, "meters", METER_KEYS)
    pulses = _items(options, "pulse_inputs", PULSE_KEYS)
    alarms = _items(options, "alarm_inputs", ALARM_KEYS)
    if not (buses or meters or pulses or alarms):
        raise ConfigError("meters: nothing to read: add a bus and a meter (or a pulse or alarm "
                          "input) in the add-on's Configuration tab")

    config_buses, paths = _group_meters(buses, meters)
    config: dict[str, Any] = {"mqtt": _mqtt(options.get("mqtt"), broker)}
    if config_buses:
        config["buses"] = config_buses
    if pulses:
        config["pulse_inputs"] = pulses
    if alarms:
        config["alarm_inputs"] = alarms
    config["state_dir"] = state_dir
    if web:
        config["web"] = web_config()
    if is_set(options.get("log_level")):
        config["log_level"] = options["log_level"]
    source = "supervisor" if uses_service_broker(options) else "options"
    return Mapped(config, paths, source)


def translate(message: str, paths: Mapping[str, str]) -> str:
    """Rename configuration paths at the start of each line to the options' paths."""
    def rename(line: str) -> str:
        match = _PATH_START.match(line)
        if match is None:
            return line
        prefix = match.group(0)
        return paths.get(prefix, prefix) + line[len(prefix):]
    return "\n".join(rename(line) for line in message.splitlines())


_PATH_START = re.compile(r"^buses\[\d+\]\.meters\[\d+\]")


# ---------------------------------------------------------------------------------------------


def _unknown(item: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    """The Supervisor drops keys its schema does not know; one here means the schema and this
    mapping disagree, which must fail loudly rather than lose a setting."""
    for key in item:
        if key not in keys:
            path = f"{where}.{key}" if where else str(key)
            raise ConfigError(f"{path}: unknown option")


def _items(options: Mapping[str, Any], key: str, keys: Sequence[str]) -> list[dict[str, Any]]:
    raw = options.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{key}: expected a list")
    out: list[dict[str, Any]] = []
    for i, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ConfigError(f"{key}[{i}]: expected a mapping of options")
        _unknown(item, keys, f"{key}[{i}]")
        out.append({k: _value(k, v) for k, v in item.items() if is_set(v)})
    return out


def _value(key: str, value: Any) -> Any:
    if key in _INT_SELECTS and isinstance(value, str) and value.isdigit():
        return int(value)
    if key == "line" and isinstance(value, str) and value.strip().isdigit():
        return int(value)  # a line offset on the chip; "GPIO17" stays a line name
    return value


def _group_meters(buses: list[dict[str, Any]], meters: list[dict[str, Any]]
                  ) -> tuple[list[dict[str, Any]], dict[str, str]]:
    index: dict[str, int] = {}
    for j, bus in enumerate(buses):
        name = bus.get("name")
        if not is_set(name):
            raise ConfigError(f"buses[{j}].name: required")
        if name in index:
            raise ConfigError(f"buses[{j}].name: '{name}' is already the name of "
                              f"buses[{index[name]}]")
        index[str(name)] = j
    grouped: list[list[tuple[int, dict[str, Any]]]] = [[] for _ in buses]
    for i, meter in enumerate(meters):
        bus_name = meter.get("bus")
        if not is_set(bus_name):
            raise ConfigError(f"meters[{i}].bus: required (the name of one of the buses)")
        if bus_name not in index:
            known = ", ".join(index) or "none defined"
            raise ConfigError(f"meters[{i}].bus: no bus named '{bus_name}' (buses: {known})")
        grouped[index[bus_name]].append((i, meter))

    config_buses: list[dict[str, Any]] = []
    paths: dict[str, str] = {}
    for j, bus in enumerate(buses):
        if not grouped[j]:
            raise ConfigError(f"buses[{j}]: no meter uses bus '{bus['name']}' (add a meter with "
                              f"bus: {bus['name']}, or remove the bus)")
        entry = {k: bus[k] for k in BUS_KEYS if k in bus}
        entry["meters"] = []
        for m, (i, meter) in enumerate(grouped[j]):
            entry["meters"].append({k: meter[k] for k in METER_KEYS if k in meter and k != "bus"})
            paths[f"buses[{j}].meters[{m}]"] = f"meters[{i}]"
        config_buses.append(entry)
    return config_buses, paths


def _mqtt(raw: Any, broker: Broker | None) -> dict[str, Any]:
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError("mqtt: expected a mapping of options")
    _unknown(raw, MQTT_KEYS, "mqtt")
    opts = {k: v for k, v in raw.items() if is_set(v)}
    mqtt: dict[str, Any] = {}
    if "host" in opts:
        for key in ("host", "port", "username", "password"):
            if key in opts:
                mqtt[key] = opts[key]
    else:
        if broker is None:
            raise ConfigError("mqtt.host: no broker: the Supervisor offers none and the "
                              "options name none")
        mqtt["host"] = broker.host
        mqtt["port"] = opts.get("port", broker.port)
        if broker.ssl:
            mqtt["tls"] = {}
        if "username" in opts:
            mqtt["username"] = opts["username"]
            if "password" in opts:
                mqtt["password"] = opts["password"]
        else:
            if "password" in opts:
                raise ConfigError("mqtt.password: set mqtt.username too (a password without "
                                  "its account would be ignored)")
            if broker.username is not None:
                mqtt["username"] = broker.username
            if broker.password is not None:
                mqtt["password"] = broker.password
    for key in ("base_topic", "discovery_prefix"):
        if key in opts:
            mqtt[key] = opts[key]
    return mqtt
