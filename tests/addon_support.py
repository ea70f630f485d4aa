"""For the add-on tests: option sets as the Supervisor writes them, and a stand-in for the
Supervisor's services API on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOKEN = "test-supervisor-token"


def bus(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, **kw}


def options(**kw: Any) -> dict[str, Any]:
    """Options as the Supervisor writes them: every list present, ``mqtt`` a mapping, select
    values as strings."""
    base: dict[str, Any] = {"buses": [], "meters": [], "pulse_inputs": [], "alarm_inputs": [],
                            "mqtt": {}, "log_level": "info"}
    base.update(kw)
    return base


TWO_BUSES = options(
    buses=[bus("panel", transport="rtu", device="/dev/serial/by-id/usb-FTDI-if00-port0",
               baudrate=9600, parity="E", stopbits="2"),
           bus("shed", transport="tcp", host="192.0.2.7", port=5020, timeout=2.5)],
    meters=[{"name": "shed_main", "bus": "shed", "unit": 3},
            {"name": "main_panel", "bus": "panel", "unit": 1, "poll_interval": 2,
             "allow_writes": True, "display_name": "Main panel"},
            {"name": "sub_panel", "bus": "panel", "unit": 2}],
    log_level="debug")
GPIO_ONLY = options(
    pulse_inputs=[{"name": "pulses", "line": "GPIO17", "wh_per_pulse": "1000"},
                  {"name": "pulses_b", "line": "22", "chip": "gpiochip0",
                   "wh_per_pulse": "10", "edge": "rising", "debounce_ms": 5}],
    alarm_inputs=[{"name": "door", "line": "GPIO27", "active": "closed"}],
    mqtt={"base_topic": "home/meters", "discovery_prefix": "ha", "host": ""})
OWN_BROKER = options(
    buses=[bus("gw", transport="rtu_over_tcp", host="192.0.2.9")],
    meters=[{"name": "m1", "bus": "gw", "unit": 1}],
    mqtt={"host": "broker.lan", "port": 8883, "username": "me", "password": "pw"})
OWN_ACCOUNT = options(
    buses=[bus("gw", transport="tcp", host="192.0.2.9")],
    meters=[{"name": "m1", "bus": "gw", "unit": 1}],
    mqtt={"username": "bridge", "password": "mine", "port": 1884})
OPTION_SETS = {"two-buses": TWO_BUSES, "gpio-only": GPIO_ONLY, "own-broker": OWN_BROKER,
               "own-account": OWN_ACCOUNT}


@dataclass
class FakeSupervisor:
    """Answers ``GET /services/mqtt`` like the Supervisor; ``answers`` are used in turn (the
    last one repeats). Each answer is ``(status, json_body)``."""

    answers: list[tuple[int, Any]]
    #: The requests for /services/mqtt.
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    url: str = ""
    #: The answer to GET /core/info (Home Assistant's release), and the requests for it.
    core_info: tuple[int, Any] = (200, {"result": "ok", "data": {"version": "2025.4.4"}})
    core_requests: list[str] = field(default_factory=list)

    @staticmethod
    def ok(**data: Any) -> tuple[int, Any]:
        return 200, {"result": "ok", "data": data}

    @staticmethod
    def error(status: int, message: str) -> tuple[int, Any]:
        return status, {"result": "error", "message": message}


MOSQUITTO = {"host": "core-mosquitto", "port": 1883, "ssl": False, "protocol": "3.1.1",
             "username": "addons", "password": "s3cret-from-mosquitto", "app": "core_mosquitto"}


@contextmanager
def fake_supervisor(*answers: tuple[int, Any],
                    core_info: tuple[int, Any] | None = None) -> Iterator[FakeSupervisor]:
    fake = FakeSupervisor(list(answers))
    if core_info is not None:
        fake.core_info = core_info

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/core/info":
                fake.core_requests.append(self.path)
                status, body = fake.core_info
            else:
                fake.requests.append((self.path, self.headers.get("Authorization")))
                index = min(len(fake.requests), len(fake.answers)) - 1
                status, body = fake.answers[index]
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, body = 403, {"result": "error", "message": "invalid token"}
            elif self.path not in ("/services/mqtt", "/core/info"):
                status, body = 404, {"result": "error", "message": "Service does not exist"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
