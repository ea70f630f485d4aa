"""``python -m bridge.addon``: options + the Supervisor's broker -> config.yaml -> the bridge.

Steps: read ``/data/options.json``; unless the options name a broker, ask the Supervisor's
services API for the Mosquitto add-on's broker and account; build the configuration mapping
(:mod:`.options`); check it with :func:`bridge.config.parse_config`, the check the Raspberry
Pi service's file goes through, reporting errors under the option names; write it to
``/data/config.yaml`` (mode 0600: it holds the broker password, which is never logged) so that
what runs can be inspected with ``python -m bridge check-config``; run the bridge with a
heartbeat for the image's HEALTHCHECK.

Exit codes as for ``python -m bridge``: 2 the options are invalid, 1 no broker could be
learned from the Supervisor, 0 stopped by SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from bridge import __version__
from bridge.addon import health
from bridge.addon.options import Broker, Mapped, to_config, translate, uses_service_broker
from bridge.addon.supervisor import (
    DEFAULT_URL,
    SupervisorError,
    fetch_core_version,
    fetch_mqtt_service,
)
from bridge.config import Config, parse_config
from bridge.errors import ConfigError
from bridge.files import write_atomic

if TYPE_CHECKING:
    from bridge.gpio.backend import GpioBackend

log = logging.getLogger("bridge.addon")

EXIT_OK, EXIT_NO_BROKER, EXIT_BAD_OPTIONS = 0, 1, 2
#: Environment variable that points the services API elsewhere (tests, a development host).
URL_ENV = "SERIES4000_SUPERVISOR_URL"

Runner = Callable[[Config, Path], int]
#: Whether this bridge has the HTTP server (the configuration knows ``web``); the add-on's
#: ingress panel shows its status page. Without it the add-on runs without the page.
SERVES_WEB = "web" in Config.model_fields


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge.addon",
        description="Home Assistant add-on entry point: add-on options -> config -> bridge.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--options", type=Path, default=Path("/data/options.json"),
                        help="the options the Supervisor wrote (default /data/options.json)")
    parser.add_argument("--data-dir", type=Path, default=Path("/data"),
                        help="where config.yaml and state/ go (default /data)")
    parser.add_argument("--health-file", type=Path, default=health.DEFAULT_PATH,
                        help=f"heartbeat for the HEALTHCHECK (default {health.DEFAULT_PATH})")
    parser.add_argument("--wait", type=float, default=30.0, metavar="SECONDS",
                        help="how long to retry the Supervisor while it or the broker starts")
    parser.add_argument("--check", action="store_true",
                        help="write and check config.yaml, then exit without running")
    return parser


def read_options(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the add-on options ({exc.strerror})") from None
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None


def learn_broker(options: dict[str, Any], url: str, token: str | None,
                 wait_s: float) -> Broker | None:
    """The Supervisor's broker, or ``None`` when the options name their own."""
    if not uses_service_broker(options):
        log.info("MQTT broker from the add-on options (mqtt.host)")
        return None
    broker = fetch_mqtt_service(url, token, wait_s=wait_s)
    log.info("MQTT broker from the Supervisor: %s:%d%s%s", broker.host, broker.port,
             f" as {broker.username}" if broker.username else "", " with TLS" if broker.ssl else "")
    return broker


def check(mapped: Mapped) -> Config:
    """The configuration check every config file goes through, with option names in errors.

    ``${NAME}`` references are not expanded from the container's environment: options cannot
    set environment variables, and the Supervisor resolves ``!secret`` itself.
    """
    try:
        return parse_config(mapped.config, env={})
    except ConfigError as exc:
        raise ConfigError(translate(str(exc), mapped.paths)) from None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` readable by the owner only, replacing the file atomically."""
    write_atomic(path, text.encode("utf-8"), mode=0o600)


def prepare(args: argparse.Namespace, env: dict[str, str]) -> tuple[Config, Path]:
    options = read_options(args.options)
    if not isinstance(options, dict):
        raise ConfigError(f"{args.options}: expected a mapping of options")
    url, token = env.get(URL_ENV, DEFAULT_URL), env.get("SUPERVISOR_TOKEN")
    broker = learn_broker(options, url, token, args.wait)
    mapped = to_config(options, broker, str(args.data_dir / "state"), web=SERVES_WEB)
    version = fetch_core_version(url, token)
    if version is not None:
        log.info("Home Assistant %s", version)
        mapped.config["mqtt"]["homeassistant_version"] = version
    config = check(mapped)
    path = args.data_dir / "config.yaml"
    header = ("# Written by the add-on at every start from its options; edit the options in "
              "Home Assistant,\n# not this file.\n")
    write_private(path, header + yaml.safe_dump(mapped.config, sort_keys=False))
    return config, path


def run_bridge(config: Config, health_file: Path,
               gpio_backend: GpioBackend | None = None) -> int:
    """Run the bridge until SIGTERM, writing the heartbeat beside it.

    ``gpio_backend``: the GPIO lines (default: the kernel's, when inputs are configured).
    """
    from bridge.app.service import Service, install_stop_signals

    logging.getLogger().setLevel(config.log_level.upper())

    async def run() -> int:
        service = Service(config, gpio_backend=gpio_backend)
        stop = asyncio.Event()
        install_stop_signals(stop)
        beat = asyncio.create_task(health.heartbeat(service.status, health_file, stop))
        try:
            await service.run(stop)
        finally:
            stop.set()
            await beat
        return EXIT_OK

    return asyncio.run(run())


def main(argv: Sequence[str] | None = None, runner: Runner = run_bridge) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config, path = prepare(args, dict(os.environ))
    except ConfigError as exc:
        print(f"error: the add-on options are not valid:\n{exc}", file=sys.stderr)
        return EXIT_BAD_OPTIONS
    except SupervisorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_BROKER
    meters = sum(len(bus.meters) for bus in config.buses)
    log.info("%s: %d bus(es), %d meter(s), %d pulse input(s), %d alarm input(s)", path,
             len(config.buses), meters, len(config.pulse_inputs), len(config.alarm_inputs))
    if args.check:
        print(f"{path}: valid")
        return EXIT_OK
    return runner(config, args.health_file)
