"""Command line: ``python -m bridge <verb>`` (the verbs and exit codes the README lists).

Exit codes: 0 success, 1 the meter or bus did not answer, 2 bad arguments or configuration,
3 the wiring check found an error or a warning.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from bridge import __version__
from bridge.cli.args import (
    EXIT_FINDINGS,
    EXIT_NO_ANSWER,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    add_link_args,
    link_from_args,
    parse_units,
)
from bridge.errors import BridgeError, DecodeError, ModbusError
from bridge.modbus.client import BusClient

if TYPE_CHECKING:
    from bridge.config import Config

# ---------------------------------------------------------------------------------------------
# Verbs


def cmd_read(args: argparse.Namespace) -> int:
    from bridge.cli.tables import format_reading
    from bridge.meters.series4000 import PROFILE
    from bridge.modbus.dump import read_dump
    from bridge.modbus.reader import read_once
    from bridge.model.dump import to_json
    from bridge.model.read_limits import describe

    link = link_from_args(args)
    if not 1 <= args.unit <= 247:
        raise UsageError("--unit must be 1..247")

    async def run() -> int:
        bus = BusClient(link, timeout=args.timeout, retries=1)
        try:
            if args.raw:
                print(to_json(await read_dump(bus, args.unit, PROFILE)), end="")
                return EXIT_OK
            reading = await read_once(bus, args.unit, PROFILE)
        finally:
            bus.close()
        note = describe(reading.limits)
        if note:
            print(f"note: unit {args.unit} {note}; read around it", file=sys.stderr)
        if args.json:
            out = dict(reading.state)
            out["system_type"] = reading.setup.system_type
            print(json.dumps(out, sort_keys=True))
        else:
            print(format_reading(reading))
        return EXIT_OK

    return asyncio.run(run())


def cmd_check_wiring(args: argparse.Namespace) -> int:
    from bridge.cli.check_wiring import run_check
    from bridge.meters.series4000 import PROFILE

    link = link_from_args(args)
    if not 1 <= args.unit <= 247:
        raise UsageError("--unit must be 1..247")
    if not 0 <= args.seconds <= 600:
        raise UsageError("--seconds must be 0..600")

    async def run() -> bool:
        bus = BusClient(link, timeout=args.timeout, retries=1)
        return await run_check(bus, args.unit, args.seconds, args.json, PROFILE)

    return EXIT_FINDINGS if asyncio.run(run()) else EXIT_OK


def cmd_scan(args: argparse.Namespace) -> int:
    from bridge.cli.scan import scan

    link = link_from_args(args)
    units = parse_units(args.units)
    return asyncio.run(scan(link, units, timeout=args.timeout, out=sys.stdout))


def cmd_demo(args: argparse.Namespace) -> int:
    from bridge.cli.demo import run_demo

    return asyncio.run(run_demo(args))


def cmd_simulate(args: argparse.Namespace) -> int:
    from bridge.cli.simulate import run_simulator

    return asyncio.run(run_simulator(args))


def _load(path: str) -> Config:
    from bridge.config import load_config

    return load_config(path)


def cmd_check_config(args: argparse.Namespace) -> int:
    from bridge.core.budget import planned
    from bridge.meters.series4000 import PROFILE

    config = _load(args.config)
    meters = sum(len(b.meters) for b in config.buses)
    print(f"{args.config}: valid")
    print(f"  MQTT {config.mqtt.host}:{config.mqtt.effective_port} as {config.client_id}"
          f"{' with TLS' if config.mqtt.tls else ''}"
          f"{' user ' + config.mqtt.username if config.mqtt.username else ''}")
    for bus in config.buses:
        where = bus.device if bus.transport == "rtu" else f"{bus.host}:{bus.port}"
        print(f"  bus {bus.name}: {bus.transport} {where}, "
              + ", ".join(f"{m.name} (unit {m.unit})" for m in bus.meters))
        share = planned(bus, PROFILE)
        if share is not None:
            print(f"  {share}")
    for p in config.pulse_inputs:
        print(f"  pulse input {p.name}: line {p.line}")
    for a in config.alarm_inputs:
        print(f"  alarm input {a.name}: line {a.line}")
    print(f"  {len(config.buses)} bus(es), {meters} meter(s)")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from bridge.app.service import Service, install_stop_signals

    config = _load(args.config)
    if not args.verbose:
        logging.getLogger().setLevel(config.log_level.upper())

    async def run() -> int:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await Service(config).run(stop)
        return EXIT_OK

    return asyncio.run(run())


def cmd_install_service(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bridge.cli.install_service import install_service

    return install_service(Path(args.unit_dir), args.python, Path(args.config), args.user,
                           args.dry_run)


def cmd_print_discovery(args: argparse.Namespace) -> int:
    from bridge.cli.print_discovery import print_discovery

    config = _load(args.config)
    return asyncio.run(print_discovery(config, args.system_type, sys.stdout))


VERBS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run,
    "check-config": cmd_check_config,
    "print-discovery": cmd_print_discovery,
    "read": cmd_read,
    "check-wiring": cmd_check_wiring,
    "scan": cmd_scan,
    "simulate": cmd_simulate,
    "demo": cmd_demo,
    "install-service": cmd_install_service,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bridge",
        description="Leviton Series 4000-K meters (Modbus) to MQTT and Home Assistant.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: -v info, -vv debug (before the verb)")
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    p = sub.add_parser("run", help="run the bridge (the service)")
    p.add_argument("--config", required=True, metavar="FILE",
                   help="the configuration (see config.example.yaml); stop with Ctrl-C or "
                        "SIGTERM")

    p = sub.add_parser("check-config", help="validate a configuration file")
    p.add_argument("config", metavar="FILE", help="the configuration file to check")

    p = sub.add_parser("print-discovery",
                       help="print the Home Assistant discovery messages the bridge would send")
    p.add_argument("--config", required=True, metavar="FILE", help="the configuration")
    p.add_argument("--system-type", type=int, choices=[10, 11, 12, 31, 40],
                   help="assume this wiring instead of reading it from each meter")

    p = sub.add_parser("read", help="read one meter once and print its values")
    add_link_args(p)
    p.add_argument("--unit", type=int, required=True, help="Modbus address 1..247")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="one JSON object of state keys")
    out.add_argument("--raw", action="store_true",
                     help="every register of the map as the meter answers it, as JSON (a "
                          "dump for simulate --from-dump and for bug reports)")

    p = sub.add_parser("check-wiring",
                       help="commissioning: check one meter's wiring and set-up (exit 3 when "
                            "something needs attention)")
    add_link_args(p)
    p.add_argument("--unit", type=int, required=True, help="Modbus address 1..247")
    p.add_argument("--json", action="store_true",
                   help='{"system_type", "findings": [{"code", "severity", "phase", ...}]}')
    p.add_argument("--seconds", type=float, default=5.0,
                   help="read over this long; a finding must hold in every reading "
                        "(default %(default)s)")

    p = sub.add_parser("scan", help="find Series 4000 meters on a bus")
    add_link_args(p)
    p.add_argument("--units", default="1-247", help="e.g. 1-10,20 (default 1-247)")
    p.set_defaults(timeout=0.3)

    p = sub.add_parser("demo", help="simulated meters + local broker + bridge + live view")
    p.add_argument("--broker", metavar="HOST:PORT",
                   help="use this MQTT broker instead of starting Mosquitto")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long")
    p.add_argument("--state-dir", default=".demo/state",
                   help="where the pulse total is kept (default %(default)s)")

    p = sub.add_parser("simulate", help="serve simulated Series 4000-K meters")
    p.add_argument("--tcp", metavar="HOST:PORT", action="append", default=[],
                   help="serve Modbus TCP here (repeatable)")
    p.add_argument("--rtu-over-tcp", metavar="HOST:PORT", action="append", default=[],
                   help="serve RTU frames over TCP here, as a gateway does (repeatable)")
    p.add_argument("--pty", action="store_true", help="RTU on a pseudo-terminal")
    p.add_argument("--units", default="1", help="e.g. 1-10,20 (default %(default)s)")
    p.add_argument("--system-type", default="40",
                   help="one type for all units, or one per unit: 40,12,10")
    p.add_argument("--frozen", action="store_true", help="values do not move")
    p.add_argument("--max-read", type=int, metavar="N",
                   help="refuse reads of more than N registers (exception 03)")
    p.add_argument("--lack", metavar="REGS", default="",
                   help="registers the meters do not have (exception 02), e.g. 343-346")
    p.add_argument("--identification-from", choices=("0", "1", "none"), default="0",
                   help="number the 0x2B objects from 0 (standard) or 1, or lack 0x2B")
    p.add_argument("--from-dump", metavar="FILE",
                   help="serve exactly the register image of a read --raw dump (static)")
    p.add_argument("--per-phase-without-neutral", action="store_true",
                   help="report per-phase power in types 11 and 31 instead of QNAN")
    p.add_argument("--fault", action="append", default=[], metavar="FAULT[:ARG]",
                   help="a wiring fault on every unit, e.g. voltage_missing:c, ct_wrong_phase:b, "
                        "system_voltage:480 (repeatable; the README's Commissioning section "
                        "lists them all)")

    p = sub.add_parser("install-service",
                       help="write the systemd unit that runs the bridge (Raspberry Pi OS)")
    p.add_argument("--config", default="/etc/series4000-bridge/config.yaml", metavar="FILE",
                   help="the config file the service reads (default %(default)s)")
    p.add_argument("--user", default="series4000", help="service user (default %(default)s)")
    p.add_argument("--unit-dir", default="/etc/systemd/system", metavar="DIR",
                   help="where the unit goes (default %(default)s)")
    p.add_argument("--python", default=sys.executable,
                   help="the Python that runs the bridge (default: this one, %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="print the unit instead of writing it")
    for action in sub._choices_actions:  # `VERB --help` starts with what the verb does
        sub.choices[action.dest].description = action.help
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose, 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return VERBS[args.verb](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ModbusError, DecodeError) as exc:
        # The meter did not answer, or answered something that is not a Series 4000 reply.
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_ANSWER
    except BridgeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (KeyboardInterrupt, BrokenPipeError):
        return EXIT_OK
