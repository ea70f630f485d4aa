"""The add-on entry point: options -> configuration, the Supervisor's services API, health."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from bridge.addon import health
from bridge.addon.entry import SERVES_WEB, URL_ENV, main
from bridge.addon.options import Broker, to_config, translate
from bridge.addon.supervisor import NoMqttService, SupervisorError, fetch_mqtt_service
from bridge.config import Config, load_config, parse_config
from bridge.errors import ConfigError
from bridge.sim.broker import Broker as Mosquitto
from bridge.sim.broker import free_port
from tests.addon_support import (
    GPIO_ONLY,
    MOSQUITTO,
    OWN_ACCOUNT,
    OWN_BROKER,
    TOKEN,
    TWO_BUSES,
    FakeSupervisor,
    bus,
    fake_supervisor,
    options,
)

ROOT = Path(__file__).resolve().parent.parent
SERVICE_BROKER = Broker("core-mosquitto", 1883, "addons", "s3cret-from-mosquitto")


# ---------------------------------------------------------------------------------------------
# options -> configuration (pure)

MAPPINGS = [
    pytest.param(TWO_BUSES, {
        "mqtt": {"host": "core-mosquitto", "port": 1883, "username": "addons",
                 "password": "s3cret-from-mosquitto"},
        "buses": [
            {"name": "panel", "transport": "rtu",
             "device": "/dev/serial/by-id/usb-FTDI-if00-port0", "baudrate": 9600,
             "parity": "E", "stopbits": 2,
             "meters": [{"name": "main_panel", "unit": 1, "poll_interval": 2,
                         "allow_writes": True, "display_name": "Main panel"},
                        {"name": "sub_panel", "unit": 2}]},
            {"name": "shed", "transport": "tcp", "host": "192.0.2.7", "port": 5020,
             "timeout": 2.5, "meters": [{"name": "shed_main", "unit": 3}]}],
        "state_dir": "/data/state", "log_level": "debug"}, id="meters-grouped-by-bus"),
    pytest.param(GPIO_ONLY, {
        "mqtt": {"host": "core-mosquitto", "port": 1883, "username": "addons",
                 "password": "s3cret-from-mosquitto", "base_topic": "home/meters",
                 "discovery_prefix": "ha"},
        "pulse_inputs": [{"name": "pulses", "line": "GPIO17", "wh_per_pulse": 1000},
                         {"name": "pulses_b", "line": 22, "chip": "gpiochip0",
                          "wh_per_pulse": 10, "edge": "rising", "debounce_ms": 5}],
        "alarm_inputs": [{"name": "door", "line": "GPIO27", "active": "closed"}],
        "state_dir": "/data/state", "log_level": "info"}, id="gpio-only-topics-overridden"),
    pytest.param(OWN_BROKER, {
        "mqtt": {"host": "broker.lan", "port": 8883, "username": "me", "password": "pw"},
        "buses": [{"name": "gw", "transport": "rtu_over_tcp", "host": "192.0.2.9",
                   "meters": [{"name": "m1", "unit": 1}]}],
        "state_dir": "/data/state", "log_level": "info"}, id="own-broker"),
    pytest.param(OWN_ACCOUNT, {
        "mqtt": {"host": "core-mosquitto", "port": 1884, "username": "bridge",
                 "password": "mine"},
        "buses": [{"name": "gw", "transport": "tcp", "host": "192.0.2.9",
                   "meters": [{"name": "m1", "unit": 1}]}],
        "state_dir": "/data/state", "log_level": "info"}, id="own-account-on-mosquitto"),
]


#: The web server's contract in add-on mode: every interface of the container, the ingress
#: port, the Supervisor's ingress gateway as the only client, no token.
ADDON_WEB = {"host": "0.0.0.0", "port": 8099, "allowed_clients": ["172.30.32.2"]}


@pytest.mark.parametrize(("opts", "expected"), MAPPINGS)
def test_options_map_to_config(opts: dict[str, Any], expected: dict[str, Any]) -> None:
    mapped = to_config(opts, SERVICE_BROKER, "/data/state")
    assert mapped.config == {**expected, "web": ADDON_WEB}
    # and the result is a valid configuration (with `web` once the bridge has the HTTP server)
    checked = to_config(opts, SERVICE_BROKER, "/data/state", web=SERVES_WEB)
    parse_config(checked.config, env={})


def test_the_web_section_has_exactly_the_contracts_shape() -> None:
    web = to_config(TWO_BUSES, SERVICE_BROKER, "/data/state").config["web"]
    assert web == ADDON_WEB
    assert list(web) == ["host", "port", "allowed_clients"]  # and no token
    assert "web" not in to_config(TWO_BUSES, SERVICE_BROKER, "/data/state", web=False).config


def test_broker_source_and_tls_from_service() -> None:
    tls_broker = Broker("core-mosquitto", 8883, "addons", "pw", ssl=True)
    opts = options(buses=[bus("b", transport="tcp", host="192.0.2.1")],
                   meters=[{"name": "m", "bus": "b", "unit": 1}])
    mapped = to_config(opts, tls_broker, "/data/state", web=SERVES_WEB)
    assert mapped.broker_source == "supervisor"
    assert mapped.config["mqtt"]["tls"] == {}
    config = parse_config(mapped.config, env={})
    assert config.mqtt.tls is not None and config.mqtt.effective_port == 8883
    own = to_config({**opts, "mqtt": {"host": "x"}}, None, "/s")
    assert own.broker_source == "options"


@pytest.mark.parametrize(("opts", "message"), [
    (options(), "meters: nothing to read"),
    (options(buses=[bus("a", transport="tcp", host="h")],
             meters=[{"name": "m", "bus": "b", "unit": 1}]),
     "meters[0].bus: no bus named 'b' (buses: a)"),
    (options(buses=[bus("a", transport="tcp", host="h"), bus("b", transport="tcp", host="i")],
             meters=[{"name": "m", "bus": "a", "unit": 1}]),
     "buses[1]: no meter uses bus 'b'"),
    (options(buses=[bus("a", transport="tcp", host="h"), bus("a", transport="tcp", host="i")],
             meters=[{"name": "m", "bus": "a", "unit": 1}]),
     "buses[1].name: 'a' is already the name of buses[0]"),
    (options(buses=[bus("a", transport="tcp", host="h", speed=9600)]),
     "buses[0].speed: unknown option"),
    (options(extra=1), "extra: unknown option"),
    (options(pulse_inputs=[{"name": "p", "line": "GPIO17", "wh_per_pulse": "10"}],
             mqtt={"password": "x"}), "mqtt.password: set mqtt.username too"),
])
def test_options_errors_name_the_option(opts: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        to_config(opts, SERVICE_BROKER, "/data/state")
    assert message in str(err.value)


def test_translate_names_the_meter_option() -> None:
    paths = {"buses[0].meters[0]": "meters[1]", "buses[0].meters[1]": "meters[4]"}
    text = ("buses[0].meters[1].unit: must be 1..247\n"
            "buses[0].meters[0].name: 'x' is already used\n"
            "buses[0].device: only for transport rtu")
    assert translate(text, paths) == ("meters[4].unit: must be 1..247\n"
                                      "meters[1].name: 'x' is already used\n"
                                      "buses[0].device: only for transport rtu")


# ---------------------------------------------------------------------------------------------
# the services API


def test_fetch_mqtt_service_good_answer() -> None:
    with fake_supervisor(FakeSupervisor.ok(**MOSQUITTO)) as sup:
        broker = fetch_mqtt_service(sup.url, TOKEN, wait_s=0)
    assert broker == Broker("core-mosquitto", 1883, "addons", "s3cret-from-mosquitto", False)
    assert sup.requests == [("/services/mqtt", f"Bearer {TOKEN}")]
    assert "s3cret" not in repr(broker)


@pytest.mark.parametrize(("answer", "message", "transient"), [
    (FakeSupervisor.error(401, "Unauthorized"), "HTTP 401: Unauthorized", False),
    (FakeSupervisor.error(403, "No access to mqtt service!"), "HTTP 403", False),
    (FakeSupervisor.error(500, "Unknown error, see Supervisor logs"), "HTTP 500", True),
    (FakeSupervisor.error(400, "Service not enabled"), "install and start the Mosquitto", True),
    ((200, {"result": "ok", "data": {}}), "no broker host", False),
    ((200, "not an object"), "unexpected answer", False),
])
def test_fetch_mqtt_service_errors(answer: tuple[int, Any], message: str,
                                   transient: bool) -> None:
    with fake_supervisor(answer) as sup, pytest.raises(SupervisorError) as err:
        fetch_mqtt_service(sup.url, TOKEN, wait_s=0)
    assert message in str(err.value)
    assert err.value.transient is transient
    assert len(sup.requests) == 1


def test_fetch_mqtt_service_not_enabled_is_its_own_error() -> None:
    answer = FakeSupervisor.error(400, "Service not enabled")
    with fake_supervisor(answer) as sup, pytest.raises(NoMqttService):
        fetch_mqtt_service(sup.url, TOKEN, wait_s=0)


def test_fetch_mqtt_service_unreachable() -> None:
    port = free_port()  # nothing listens there any more
    with pytest.raises(SupervisorError) as err:
        fetch_mqtt_service(f"http://127.0.0.1:{port}", TOKEN, timeout=2, wait_s=0)
    assert "cannot reach the Supervisor" in str(err.value)


def test_fetch_mqtt_service_retries_transient_failures() -> None:
    slept: list[float] = []
    with fake_supervisor(FakeSupervisor.error(500, "busy"),
                         FakeSupervisor.error(400, "Service not enabled"),
                         FakeSupervisor.ok(**MOSQUITTO)) as sup:
        broker = fetch_mqtt_service(sup.url, TOKEN, wait_s=60, retry_delay_s=1,
                                    sleep=slept.append)
    assert broker.host == "core-mosquitto"
    assert len(sup.requests) == 3 and slept == [1, 1]


def test_fetch_mqtt_service_needs_the_token() -> None:
    with pytest.raises(SupervisorError, match="SUPERVISOR_TOKEN is not set"):
        fetch_mqtt_service("http://127.0.0.1:9", None, wait_s=0)


# ---------------------------------------------------------------------------------------------
# the entry point, in-process (the bridge itself replaced by a recorder)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Config, Path]] = []

    def __call__(self, config: Config, health_file: Path) -> int:
        self.calls.append((config, health_file))
        return 0


def run_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, opts: Any, url: str,
              *extra: str) -> tuple[int, Recorder]:
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(opts))
    monkeypatch.setenv(URL_ENV, url)
    monkeypatch.setenv("SUPERVISOR_TOKEN", TOKEN)
    recorder = Recorder()
    code = main(["--options", str(options_file), "--data-dir", str(tmp_path / "data"),
                 "--health-file", str(tmp_path / "health.json"), "--wait", "0", *extra],
                runner=recorder)
    return code, recorder


def test_entry_writes_private_config_and_runs_the_bridge(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    with fake_supervisor(FakeSupervisor.ok(**MOSQUITTO)) as sup:
        code, recorder = run_entry(tmp_path, monkeypatch, TWO_BUSES, sup.url)
    assert code == 0 and len(sup.requests) == 1
    written = tmp_path / "data" / "config.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    config, health_file = recorder.calls[0]
    assert health_file == tmp_path / "health.json"
    assert config == load_config(written, env={})  # what runs is what the file says
    assert config.mqtt.host == "core-mosquitto" and config.mqtt.username == "addons"
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "s3cret-from-mosquitto"
    assert config.state_dir == tmp_path / "data" / "state"
    assert [m.name for m in config.buses[0].meters] == ["main_panel", "sub_panel"]
    out, err = capsys.readouterr()
    assert "s3cret" not in out + err + caplog.text
    assert "core-mosquitto:1883 as addons" in caplog.text


def test_entry_with_own_broker_does_not_ask_the_supervisor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    opts = options(buses=[bus("b", transport="tcp", host="192.0.2.1")],
                   meters=[{"name": "m", "bus": "b", "unit": 1}],
                   mqtt={"host": "broker.lan", "username": "u", "password": "p"})
    with fake_supervisor(FakeSupervisor.error(400, "Service not enabled")) as sup:
        code, recorder = run_entry(tmp_path, monkeypatch, opts, sup.url)
    assert code == 0 and sup.requests == []
    assert recorder.calls[0][0].mqtt.host == "broker.lan"


def test_entry_check_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          capsys: pytest.CaptureFixture[str]) -> None:
    with fake_supervisor(FakeSupervisor.ok(**MOSQUITTO)) as sup:
        code, recorder = run_entry(tmp_path, monkeypatch, TWO_BUSES, sup.url, "--check")
    assert code == 0 and recorder.calls == []
    assert "config.yaml: valid" in capsys.readouterr().out


@pytest.mark.parametrize(("opts", "expected", "not_expected"), [
    pytest.param(options(buses=[bus("a", transport="tcp", host="h"),
                                bus("b", transport="tcp", host="i")],
                         meters=[{"name": "m1", "bus": "b", "unit": 1},
                                 {"name": "m2", "bus": "a", "unit": 4},
                                 {"name": "m3", "bus": "a", "unit": 4}]),
                 "meters[2].unit: unit 4 is already used by meter 'm2'", "buses[",
                 id="duplicate-unit"),
    pytest.param(options(buses=[bus("a", transport="tcp", host="h"),
                                bus("b", transport="tcp", host="i")],
                         meters=[{"name": "m1", "bus": "b", "unit": 1},
                                 {"name": "m1", "bus": "a", "unit": 2}]),
                 "meters[0].name: 'm1' is already used", "buses[0].meters",
                 id="duplicate-meter-name"),
    pytest.param(options(buses=[bus("a", transport="tcp", host="h", device="/dev/ttyUSB0")],
                         meters=[{"name": "m", "bus": "a", "unit": 1}]),
                 "buses[0].device: only for transport rtu", "meters[", id="device-on-tcp"),
    pytest.param(options(buses=[bus("a", transport="rtu")],
                         meters=[{"name": "m", "bus": "a", "unit": 1}]),
                 "buses[0].device: required for transport rtu", "meters[", id="rtu-no-device"),
    pytest.param(options(pulse_inputs=[{"name": "p", "line": "GPIO17", "meter": "nope"}]),
                 "pulse_inputs[0].meter: no meter named 'nope'", "buses", id="unknown-meter"),
    pytest.param(options(pulse_inputs=[{"name": "p", "line": "GPIO17"}]),
                 "pulse_inputs[0].wh_per_pulse: required", "buses", id="no-pulse-weight"),
    pytest.param(options(), "nothing to read", "Traceback", id="nothing-configured"),
])
def test_entry_bad_options_exit_2_naming_the_option(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        opts: dict[str, Any], expected: str, not_expected: str) -> None:
    with fake_supervisor(FakeSupervisor.ok(**MOSQUITTO)) as sup:
        code, recorder = run_entry(tmp_path, monkeypatch, opts, sup.url)
    err = capsys.readouterr().err
    assert code == 2 and recorder.calls == []
    assert "the add-on options are not valid" in err and expected in err
    assert not_expected not in err
    assert not (tmp_path / "data" / "config.yaml").exists()


@pytest.mark.parametrize(("answer", "expected"), [
    (FakeSupervisor.error(401, "Unauthorized"), "HTTP 401"),
    (FakeSupervisor.error(500, "Unknown error"), "HTTP 500"),
    (FakeSupervisor.error(400, "Service not enabled"), "Mosquitto broker add-on"),
])
def test_entry_supervisor_errors_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str],
                                        answer: tuple[int, Any], expected: str) -> None:
    with fake_supervisor(answer) as sup:
        code, recorder = run_entry(tmp_path, monkeypatch, TWO_BUSES, sup.url)
    assert code == 1 and recorder.calls == []
    assert expected in capsys.readouterr().err


def test_entry_supervisor_unreachable_exit_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, recorder = run_entry(tmp_path, monkeypatch, TWO_BUSES,
                               f"http://127.0.0.1:{free_port()}")
    assert code == 1 and recorder.calls == []
    assert "cannot reach the Supervisor" in capsys.readouterr().err


def test_entry_missing_or_broken_options_file(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--options", str(tmp_path / "none.json"), "--data-dir", str(tmp_path)]) == 2
    assert "cannot read the add-on options" in capsys.readouterr().err
    broken = tmp_path / "options.json"
    broken.write_text("{")
    assert main(["--options", str(broken), "--data-dir", str(tmp_path)]) == 2
    assert "not valid JSON" in capsys.readouterr().err
    broken.write_text("[]")
    assert main(["--options", str(broken), "--data-dir", str(tmp_path)]) == 2
    assert "expected a mapping of options" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# health


@pytest.mark.parametrize(("record", "healthy", "why"), [
    (None, False, "no heartbeat"),
    ({"time": 1000, "mqtt_connected": True, "meters": {"a": True, "b": False}}, True,
     "MQTT connected, 1/2 meter(s) online"),
    ({"time": 800, "mqtt_connected": True}, False, "210 s old"),
    ({"time": 1000, "mqtt_connected": False, "mqtt_down_since": 900}, True,
     "disconnected for 110 s, reconnecting"),
    ({"time": 1000, "mqtt_connected": False, "mqtt_down_since": 300}, False,
     "disconnected for 710 s"),
    ({"mqtt_connected": True}, False, "unreadable"),
])
def test_health_judge(record: dict[str, Any] | None, healthy: bool, why: str) -> None:
    ok, text = health.judge(record, now=1010)
    assert ok is healthy and why in text


async def test_heartbeat_tracks_how_long_mqtt_is_down(tmp_path: Path) -> None:
    path = tmp_path / "health.json"
    states = iter([True, False, False])
    times = iter([100.0, 200.0, 300.0])
    stop = asyncio.Event()
    records: list[dict[str, Any]] = []

    def status() -> dict[str, Any]:
        connected = next(states)
        if records or path.exists():
            records.append(json.loads(path.read_text()))
        if not connected and len(records) == 2:
            stop.set()
        return {"mqtt_connected": connected, "meters": {"m": connected}}

    await health.heartbeat(status, path, stop, interval_s=0, tick_s=0,
                           clock=lambda: next(times))
    records.append(json.loads(path.read_text()))
    assert [(r["time"], r["mqtt_connected"], r["mqtt_down_since"]) for r in records] == [
        (100.0, True, None), (200.0, False, 200.0), (300.0, False, 200.0)]


def test_health_main_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "health.json"
    assert health.main([str(path)]) == 1
    health.write(path, {"time": time.time(), "mqtt_connected": True, "meters": {}})
    assert health.main([str(path)]) == 0
    assert "MQTT connected" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# end to end: the add-on process against a fake Supervisor, a real broker with a password and
# a simulated meter


@pytest.fixture
def password_broker(tmp_path: Path) -> Any:
    pwfile = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), MOSQUITTO["username"],
                    MOSQUITTO["password"]], check=True, capture_output=True)
    pwfile.chmod(0o600)
    port = free_port()
    b = Mosquitto(port=port, extra_config=(f"listener {port} 127.0.0.1\nallow_anonymous false\n"
                                           f"password_file {pwfile}\n")).start()
    try:
        yield b
    finally:
        b.stop()


async def test_addon_process_end_to_end(tmp_path: Path, password_broker: Mosquitto,
                                        sim_factory: Any) -> None:
    sim = sim_factory([7], 40)
    host, port = await sim.serve_tcp()
    opts = options(buses=[bus("gateway", transport="tcp", host=host, port=port)],
                   meters=[{"name": "main_panel", "bus": "gateway", "unit": 7,
                            "poll_interval": 1}])
    (tmp_path / "options.json").write_text(json.dumps(opts))
    answer = FakeSupervisor.ok(**{**MOSQUITTO, "host": "127.0.0.1",
                                  "port": password_broker.port})
    health_file = tmp_path / "health.json"
    with fake_supervisor(answer) as sup:
        env = {**os.environ, URL_ENV: sup.url, "SUPERVISOR_TOKEN": TOKEN}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bridge.addon", "--options", str(tmp_path / "options.json"),
            "--data-dir", str(tmp_path / "data"), "--health-file", str(health_file),
            cwd=str(ROOT), env=env, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            state = await asyncio.wait_for(_first_state(password_broker.port), 45)
            assert "power_w" in state
            record = None
            for _ in range(50):  # the heartbeat looks every second
                record = health.read(health_file)
                if record is not None and record["mqtt_connected"]:
                    break
                await asyncio.sleep(0.1)
            assert record is not None and record["mqtt_connected"] is True
            assert health.judge(record, time.time())[0]
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert MOSQUITTO["password"] not in (out + err).decode()


async def _first_state(port: int) -> dict[str, Any]:
    async with aiomqtt.Client("127.0.0.1", port, username=MOSQUITTO["username"],
                              password=MOSQUITTO["password"]) as client:
        await client.subscribe("series4000/main_panel/state")
        async for message in client.messages:
            payload = json.loads(bytes(message.payload))  # type: ignore[arg-type]
            if isinstance(payload, dict) and payload.get("power_w") is not None:
                return payload
    raise AssertionError("no state")


def test_free_port_is_refused() -> None:
    """The unreachable case above relies on a closed loopback port refusing at once."""
    port = free_port()
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))
