"""The configuration's schema: frozen pydantic models, unknown keys are errors (a typo must
not silently fall back to a default), and checks that span keys name the key they are about."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    SecretStr,
    model_validator,
)

from bridge.model.ha_release import HaVersion, parse_version
from bridge.model.quantities import BY_KEY
from bridge.model.topics import BRIDGE

NAME_RE = re.compile(r"^[a-z0-9_]+$")
MQTT_PORT, MQTT_TLS_PORT = 1883, 8883  # the IANA ports for MQTT and MQTT over TLS
#: Characters that would change an MQTT topic's meaning or break it.
_TOPIC_FORBIDDEN = re.compile(r"[#+\x00]|//|^/|/$|\s")


def _name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("must use only a-z, 0-9 and _ (it becomes part of MQTT topics)")
    return value


def _topic(value: str) -> str:
    if not value or _TOPIC_FORBIDDEN.search(value):
        raise ValueError("must be a non-empty MQTT topic without wildcards (#, +), spaces, "
                         "or leading/trailing/double '/'")
    return value


def _in_range(lo: float, hi: float) -> AfterValidator:
    def check(value: float) -> float:
        if not lo <= value <= hi:
            raise ValueError(f"must be {lo:g}..{hi:g}")
        return value
    return AfterValidator(check)


def _ha_release(value: str) -> str:
    if parse_version(value) is None:
        raise ValueError("must be a Home Assistant release like 2025.6 or 2025.6.1")
    return value


Name = Annotated[str, AfterValidator(_name)]
HaRelease = Annotated[str, AfterValidator(_ha_release)]
Topic = Annotated[str, AfterValidator(_topic)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TlsConfig(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    #: Skip the server certificate's host name check (self-signed broker on an IP address).
    insecure: bool = False

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate)")
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        return self


class MqttConfig(Strict):
    host: str = "127.0.0.1"
    port: Annotated[int, _in_range(1, 65535)] | None = None
    username: str | None = None
    password: SecretStr | None = None
    #: Unique per bridge instance; defaults to ``series4000-<bridge_id>``.
    client_id: str | None = None
    tls: TlsConfig | None = None
    base_topic: Topic = "series4000"
    discovery_prefix: Topic = "homeassistant"
    discovery: bool = True
    #: ``device``: one discovery message per meter (Home Assistant >= 2024.12);
    #: ``component``: one per entity, for older Home Assistant.
    discovery_mode: Literal["device", "component"] = "device"
    #: The Home Assistant release (e.g. ``2025.6``), when known: newer device classes are used
    #: from it on. Unset: the description every release since 2025.4 accepts.
    homeassistant_version: HaRelease | None = None
    keepalive: Annotated[int, _in_range(5, 3600)] = 30

    @property
    def ha_version(self) -> HaVersion | None:
        return parse_version(self.homeassistant_version) if self.homeassistant_version else None

    @property
    def effective_port(self) -> int:
        return self.port or (MQTT_TLS_PORT if self.tls else MQTT_PORT)


DEFAULT_FAST_KEYS = ("power_w", "power_a_w", "power_b_w", "power_c_w",
                     "current_a_a", "current_b_a", "current_c_a")


class MeterConfig(Strict):
    name: Name
    unit: Annotated[int, _in_range(1, 247)]
    #: Seconds between full reads of the measurements; 0 = as fast as the bus allows.
    poll_interval: Annotated[float, _in_range(0, 86400)] = 5.0
    allow_writes: bool = False
    #: Optional fast tier: these keys are also read every ``fast_interval`` seconds.
    fast_interval: Annotated[float, _in_range(0.1, 3600)] | None = None
    fast_keys: tuple[str, ...] = DEFAULT_FAST_KEYS
    #: Seconds between reads of the configuration block (system type, scales, alarms).
    config_interval: Annotated[float, _in_range(1, 86400)] = 60.0
    #: Name shown in Home Assistant (defaults to the meter name).
    display_name: str | None = None
    #: Lets the energy and maximum-demand resets through (besides ``allow_writes``): the
    #: totals people bill from are never one unguarded click away.
    allow_resets: bool = False
    #: Home Assistant area suggested for the meter's device (``Garage``).
    area: str | None = None
    #: Unit id in the bridge's Modbus TCP server (default ``unit``), unique across all buses.
    server_unit: Annotated[int, _in_range(1, 247)] | None = None

    @property
    def effective_server_unit(self) -> int:
        return self.unit if self.server_unit is None else self.server_unit

    @model_validator(mode="after")
    def _keys(self) -> MeterConfig:
        unknown = [k for k in self.fast_keys if k not in BY_KEY]
        if unknown:
            raise ValueError(f"fast_keys: unknown state key(s) {', '.join(unknown)}")
        return self


class BusConfig(Strict):
    name: Name
    transport: Literal["rtu", "tcp", "rtu_over_tcp"]
    device: str | None = None
    baudrate: Annotated[int, _in_range(300, 921600)] = 19200
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    host: str | None = None
    port: Annotated[int, _in_range(1, 65535)] = 502
    #: Seconds to wait for an answer.
    timeout: Annotated[float, _in_range(0.05, 30)] = 1.0
    retries: Annotated[int, _in_range(0, 5)] = 1
    #: Consecutive failed cycles after which a meter is marked offline and retried with back-off.
    offline_after: Annotated[int, _in_range(1, 100)] = 3
    #: First retry of an offline meter after this many seconds, doubling up to ``backoff_max_s``.
    backoff_s: Annotated[float, _in_range(0.1, 3600)] = 5.0
    backoff_max_s: Annotated[float, _in_range(1, 86400)] = 300.0
    meters: list[MeterConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _transport(self) -> BusConfig:
        if self.transport == "rtu":
            if not self.device:
                raise ValueError("device: required for transport rtu (e.g. /dev/ttyUSB0)")
            if self.host:
                raise ValueError("host: only for transports tcp and rtu_over_tcp")
        else:
            if not self.host:
                raise ValueError(f"host: required for transport {self.transport}")
            if self.device:
                raise ValueError("device: only for transport rtu")
        seen: dict[int, str] = {}
        for i, meter in enumerate(self.meters):
            if meter.unit in seen:
                raise ValueError(f"meters[{i}].unit: unit {meter.unit} is already used by "
                                 f"meter '{seen[meter.unit]}' on this bus")
            seen[meter.unit] = meter.name
        return self


class GpioInputConfig(Strict):
    name: Name
    #: GPIO chip (``gpiochip0``); omit to find the line by name on any chip.
    chip: str | None = None
    #: Line name (``GPIO17``) or offset on ``chip`` (17).
    line: int | str
    #: Name of the Modbus meter this input is wired to.
    meter: Name | None = None


class PulseInputConfig(GpioInputConfig):
    #: Wh per pulse; omit when ``meter`` is set to take it from the meter (register 144).
    wh_per_pulse: Literal[10, 100, 1000, 10000] | None = None
    edge: Literal["falling", "rising"] = "falling"
    bias: Literal["pull_up", "pull_down", "disabled"] = "pull_up"
    #: Below half the meter's shortest closure time (10 ms), so no pulse is swallowed.
    debounce_ms: Annotated[float, _in_range(0, 1000)] = 5.0
    #: Seconds without a pulse after which the power reads 0.
    power_timeout_s: Annotated[float, _in_range(1, 86400)] = 300.0

    @model_validator(mode="after")
    def _weight(self) -> PulseInputConfig:
        if self.wh_per_pulse is None and self.meter is None:
            raise ValueError("wh_per_pulse: required unless 'meter' names the Modbus meter "
                             "to read it from")
        return self


class AlarmInputConfig(GpioInputConfig):
    #: Contact state that means "alarm": the meter's alarm contact is normally closed.
    active: Literal["open", "closed"] = "open"
    bias: Literal["pull_up", "pull_down", "disabled"] = "pull_up"
    debounce_ms: Annotated[float, _in_range(0, 1000)] = 20.0


class PublishConfig(Strict):
    #: Publish a meter's state at least this often even when nothing changed.
    heartbeat_s: Annotated[float, _in_range(1, 3600)] = 60.0
    #: At most one state message per meter this often; readings in between are folded into
    #: the next message (the latest values win). Keeps Home Assistant's recorder from storing
    #: every entity several times a second when a meter is polled continuously.
    min_interval_s: Annotated[float, _in_range(0, 3600)] = 0.5
    #: Change needed before a value counts as changed, by state key or by unit
    #: (``W: 5`` or ``power_w: 10``); the key wins over the unit.
    deadband: dict[str, Annotated[float, _in_range(0, 1e9)]] = Field(default_factory=dict)


class WebConfig(Strict):
    """The status page, its JSON API and the Prometheus metrics (one HTTP server)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: Annotated[int, _in_range(1, 65535)] = 8099
    #: Every request must then carry ``Authorization: Bearer <token>``.
    token: SecretStr | None = None
    #: Only these peers are served (the add-on: the Supervisor's ingress gateway).
    allowed_clients: list[IPvAnyAddress] | None = None

    @model_validator(mode="after")
    def _guarded(self) -> WebConfig:
        loopback = self.host == "localhost"  # or 127.0.0.0/8, ::1; a name may resolve anywhere
        with contextlib.suppress(ValueError):
            loopback = loopback or ipaddress.ip_address(self.host).is_loopback
        if self.enabled and not loopback and not (self.token or self.allowed_clients):
            raise ValueError(f"host: {self.host} is reachable from other machines; set token "
                             "or allowed_clients (or use host 127.0.0.1)")
        return self


class ModbusServerConfig(Strict):
    """The Modbus TCP server other systems read the meters through (loopback by default: no
    authentication). Limits are per connection but the first; cached answers are free."""

    host: str = "127.0.0.1"
    port: Annotated[int, _in_range(1, 65535)] = 5020
    #: A cached read younger than this answers a client; an older one is read again.
    max_age_s: Annotated[float, _in_range(0.1, 3600)] = 2.0
    max_connections: Annotated[int, _in_range(1, 100)] = 8
    passthrough_reads_per_s: Annotated[float, _in_range(0.1, 100)] = 2.0
    idle_timeout_s: Annotated[float, _in_range(1, 86400)] = 60.0


class Config(Strict):
    mqtt: MqttConfig = MqttConfig()
    buses: list[BusConfig] = Field(default_factory=list)
    pulse_inputs: list[PulseInputConfig] = Field(default_factory=list)
    alarm_inputs: list[AlarmInputConfig] = Field(default_factory=list)
    publish: PublishConfig = PublishConfig()
    state_dir: Path = Path("./state")
    #: Distinguishes several bridges on one broker (client id, discovery ids).
    bridge_id: Name = "main"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: The status page, its API and metrics: on by default on loopback; ``null`` or
    #: ``enabled: false`` turn it off.
    web: WebConfig | None = WebConfig()
    modbus_server: ModbusServerConfig | None = None

    @model_validator(mode="after")
    def _cross(self) -> Config:
        # The bridge's own topics (availability, state, commands) are <base>/bridge/...
        names: dict[str, str] = {BRIDGE: "the bridge's own topics"}
        bus_names: set[str] = set()
        endpoints: dict[str, str] = {}
        served: dict[int, str] = {}  # the Modbus server's unit ids
        for b, bus in enumerate(self.buses):
            if bus.name in bus_names:
                raise ValueError(f"buses[{b}].name: bus '{bus.name}' is defined twice")
            bus_names.add(bus.name)
            endpoint = bus.device if bus.transport == "rtu" else f"{bus.host}:{bus.port}"
            assert endpoint is not None
            if endpoint in endpoints:
                raise ValueError(f"buses[{b}]: {endpoint} is already bus "
                                 f"'{endpoints[endpoint]}' (one owner per port)")
            endpoints[endpoint] = bus.name
            for m, meter in enumerate(bus.meters):
                where = f"buses[{b}].meters[{m}].name"
                if meter.name in names:
                    raise ValueError(f"{where}: '{meter.name}' is already used by "
                                     f"{names[meter.name]}")
                names[meter.name] = f"a meter on bus '{bus.name}'"
                if self.modbus_server and (unit := meter.effective_server_unit) in served:
                    raise ValueError(f"buses[{b}].meters[{m}].server_unit: '{meter.name}' and "
                                     f"'{served[unit]}' would both be served as unit {unit}")
                served[meter.effective_server_unit] = meter.name
        inputs: tuple[tuple[str, Sequence[GpioInputConfig]], ...] = (
            ("pulse_inputs", self.pulse_inputs), ("alarm_inputs", self.alarm_inputs))
        for kind, items in inputs:
            for i, item in enumerate(items):
                if item.name in names:
                    raise ValueError(f"{kind}[{i}].name: '{item.name}' is already used by "
                                     f"{names[item.name]}")
                names[item.name] = f"{kind}[{i}]"
                if item.meter is not None and item.meter not in self.meter_names():
                    raise ValueError(f"{kind}[{i}].meter: no meter named '{item.meter}'")
        lines: dict[str, str] = {}
        for kind, items in inputs:
            for i, item in enumerate(items):
                key = f"{item.chip or '*'}:{item.line}"
                if key in lines:
                    raise ValueError(f"{kind}[{i}].line: {item.line} is already used by "
                                     f"{lines[key]}")
                lines[key] = f"{kind}[{i}]"
        return self

    def meter_names(self) -> list[str]:
        return [m.name for b in self.buses for m in b.meters]

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"series4000-{self.bridge_id}"
