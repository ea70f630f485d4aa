"""``python -m bridge demo``: three simulated meters, a pulse input, a local broker, the bridge,
and a live view of what it publishes, in one process. Ctrl-C stops everything it started.

The garage meter has a wiring fault (its B voltage tap is open), which the bridge's wiring
check reports in the state and in Home Assistant's "Wiring problem" entity. The simulated main
panel sends one pulse per 10 Wh, so its pulse input (a fake GPIO line driven by the simulator
at the rate its power implies) moves every few seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import socket
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from bridge.app.service import Service
from bridge.config import MQTT_PORT, parse_config
from bridge.gpio.fake import FakeGpioBackend
from bridge.model.topics import Topics
from bridge.mqtt.link import watch
from bridge.sim.broker import Broker, find_mosquitto, free_port
from bridge.sim.faults import apply_fault, parse_fault
from bridge.sim.server import Simulator

METERS = (("main_panel", 1, 40), ("garage", 2, 12), ("cabin", 3, 10))
#: One meter is wired wrong, so that the wiring check has something to show.
FAULTS = {"garage": "voltage_missing:b"}
PULSE_INPUT = "main_pulses"


def _port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Nothing listens on ``port``: the connections a previous demo left in TIME-WAIT do not
    count (SO_REUSEADDR, as Mosquitto binds its listener), a listening socket does."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _start_broker(host: str) -> Broker:
    """On MQTT's usual port when nothing listens there, else on a free one (also when another
    broker took it between the check and the start)."""
    if _port_free(MQTT_PORT, host):
        with contextlib.suppress(RuntimeError):
            return Broker(host=host, port=MQTT_PORT).start()
    return Broker(host=host, port=free_port(host)).start()


def demo_config(broker_host: str, broker_port: int, modbus_port: int,
                state_dir: Path, web_port: int = 8099) -> dict[str, Any]:
    return {
        "mqtt": {"host": broker_host, "port": broker_port},
        "buses": [{"name": "demo", "transport": "tcp", "host": "127.0.0.1",
                   "port": modbus_port, "timeout": 0.5,
                   "meters": [{"name": name, "unit": unit, "poll_interval": 2,
                               "allow_writes": name == "main_panel", "config_interval": 10}
                              for name, unit, _ in METERS]}],
        "pulse_inputs": [{"name": PULSE_INPUT, "line": "GPIO17", "meter": "main_panel",
                          "debounce_ms": 5}],
        "state_dir": str(state_dir),
        "log_level": "info",
        "web": {"host": "127.0.0.1", "port": web_port},
    }


class LiveView:
    """Keeps the latest published values and draws a compact table per meter."""

    def __init__(self, topics: Topics, out: TextIO, addresses: list[str] | None = None) -> None:
        self.topics = topics
        #: Where to look and connect: redrawn with the table, so it stays on screen.
        self.addresses = addresses or []
        self.out = out
        self.states: dict[str, dict[str, Any]] = {}
        self.available: dict[str, str] = {}
        self.tty = out.isatty()

    def on_message(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) != 3 or parts[0] != self.topics.base:
            return
        name, kind = parts[1], parts[2]
        if kind == "state":
            with contextlib.suppress(ValueError):
                self.states[name] = json.loads(payload)
        elif kind == "availability":
            self.available[name] = payload.decode(errors="replace")

    def render(self) -> str:
        lines = ["Series 4000 bridge demo: simulated meters -> Modbus TCP -> bridge -> MQTT",
                 *self.addresses, ""]
        header = (f"{'meter':<11}{'status':<9}{'type':>5}{'power W':>10}{'L-N V':>8}"
                  f"{'L-L V':>8}{'current A':>10}{'PF':>6}{'Hz':>7}{'energy kWh':>12}  alarms")
        lines += [header, "-" * len(header)]
        for name, _, _ in METERS:
            s = self.states.get(name, {})

            def num(key: str, fmt: str, s: dict[str, Any] = s) -> str:
                value = s.get(key)
                return format(value, fmt) if isinstance(value, (int, float)) else "-"

            lines.append(
                f"{name:<11}{self.available.get(name, '...'):<9}{num('system_type', 'd'):>5}"
                f"{num('power_w', '.0f'):>10}{num('voltage_ln_v', '.1f'):>8}"
                f"{num('voltage_ll_v', '.1f'):>8}{num('current_a', '.2f'):>10}"
                f"{num('power_factor', '.3f'):>6}{num('frequency_hz', '.2f'):>7}"
                f"{num('energy_kwh', '.3f'):>12}  {', '.join(s.get('alarms', [])) or '-'}")
        findings = [f"{name}: {line}" for name, _, _ in METERS
                    for line in self.states.get(name, {}).get("wiring_findings", [])]
        if findings:
            lines += ["", "Wiring check:", *(f"  {line}" for line in findings)]
        p = self.states.get(PULSE_INPUT, {})

        def shown(key: str) -> str:  # a key the bridge has no value for yet is null: "-"
            value = p.get(key)
            return "-" if value is None else str(value)

        lines += ["", f"pulse input {PULSE_INPUT} ({self.available.get(PULSE_INPUT, '...')}): "
                      f"{shown('pulses')} pulses, {shown('energy_kwh')} kWh, "
                      f"{shown('power_w')} W, vs meter: {shown('meter_difference')}"]
        return "\n".join(lines)

    def draw(self) -> None:
        text = self.render()
        if self.tty:
            self.out.write("\x1b[H\x1b[2J" + text + "\n\nCtrl-C to stop\n")
        else:
            self.out.write(text + "\n\n")
        self.out.flush()

    def complete(self) -> bool:
        return all(name in self.states for name, _, _ in METERS) and PULSE_INPUT in self.states


def _page_logs_info() -> None:
    """INFO records reach the status page's log; the terminal keeps showing warnings only,
    so the table is not scrolled away."""
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setLevel(max(handler.level, logging.WARNING))
    root.setLevel(logging.INFO)


def _drive_pulses(sim: Simulator, backend: FakeGpioBackend) -> None:
    meter = sim.meters[1]
    meter.setup.pulse_wh = 10  # a pulse every few seconds at the simulated load
    line = backend.line("GPIO17")

    def on_pulses(count: int) -> None:
        closure_s = (meter.setup.closure_ms() or 500) / 1000.0
        for _ in range(min(count, 50)):
            line.press(closure_s, at_ns=max(time.monotonic_ns(), line.last_ns + 1))

    meter.pulse_listeners.append(on_pulses)


async def run_demo(args: argparse.Namespace, out: TextIO = sys.stdout) -> int:
    from bridge.app.service import install_stop_signals
    from bridge.cli.args import parse_host_port

    broker: Broker | None = None
    if args.broker:
        host, port = parse_host_port(args.broker, MQTT_PORT)
    else:
        if find_mosquitto() is None:
            print("The demo needs an MQTT broker. Install Mosquitto (sudo apt-get install "
                  "mosquitto; `make demo` does this), or point the demo at a broker you have:\n"
                  "  python -m bridge demo --broker HOST:PORT", file=sys.stderr)
            return 2
        broker = _start_broker("127.0.0.1")
        host, port = broker.host, broker.port
    sim = Simulator.build([u for _, u, _ in METERS], [t for _, _, t in METERS])
    for name, unit, _ in METERS:
        if name in FAULTS:
            apply_fault(sim.meters[unit], parse_fault(FAULTS[name]))
    backend = FakeGpioBackend()
    _drive_pulses(sim, backend)
    stop = asyncio.Event()
    install_stop_signals(stop)
    tasks: list[asyncio.Task[None]] = []
    viewer: asyncio.Task[None] | None = None
    try:
        _, modbus_port = await sim.serve_tcp("127.0.0.1", 0)
        sim.start_clock()
        state_dir = Path(args.state_dir)
        web_port = 8099 if _port_free(8099) else free_port()
        config = parse_config(demo_config(host, port, modbus_port, state_dir, web_port))
        _page_logs_info()
        service = Service(config, gpio_backend=backend)
        addresses = [f"status page: http://127.0.0.1:{web_port}/ (open it in a browser)",
                     f"MQTT broker 127.0.0.1:{port} (connect Home Assistant's MQTT "
                     "integration here)" if broker else f"MQTT broker {host}:{port}",
                     f"simulated meters: Modbus TCP 127.0.0.1:{modbus_port}"]
        view = LiveView(service.topics, out, addresses)
        print("\n".join(addresses), file=out, flush=True)
        tasks.append(asyncio.create_task(service.run(stop)))
        viewer = asyncio.create_task(watch(host, port, f"{config.mqtt.base_topic}/#",
                                           view.on_message, f"demo-view-{port}"))
        deadline = time.monotonic() + args.seconds if args.seconds else None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            view.draw()
            if deadline is not None and time.monotonic() >= deadline:
                stop.set()
        ok = view.complete()
    finally:
        stop.set()
        if viewer is not None:
            viewer.cancel()
        for task in tasks:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(15):
                    await task
        await sim.stop()
        if broker is not None:
            broker.stop()
    print("demo stopped" + ("" if ok else ": not every meter published a state"), file=out)
    return 0 if ok else 1
