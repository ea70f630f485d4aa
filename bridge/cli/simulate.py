"""``python -m bridge simulate``: serve simulated meters until stopped."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bridge.app.service import install_stop_signals
from bridge.cli.args import UsageError, parse_host_port, parse_units
from bridge.meters.series4000 import points as s4k
from bridge.model.dump import DumpError, RegisterDump, from_json
from bridge.sim.dumped import DumpedMeter
from bridge.sim.faults import FaultError, apply_fault, parse_fault
from bridge.sim.quirks import MODBUS_MAX_READ, Quirks, parse_registers
from bridge.sim.server import Simulator


def parse_types(text: str, count: int) -> list[int]:
    try:
        types = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--system-type {text!r}: expected numbers like 40 or 40,12,10") from None
    bad = [t for t in types if t not in s4k.SYSTEM_TYPES]
    if bad or not types:
        raise UsageError(f"--system-type {text!r}: each must be one of "
                         f"{', '.join(map(str, s4k.SYSTEM_TYPES))}")
    if len(types) == 1:
        return types * count
    if len(types) != count:
        raise UsageError(f"--system-type gives {len(types)} types for {count} units")
    return types


def quirks_from_args(args: argparse.Namespace) -> Quirks:
    """--max-read, --lack and --identification-from as the meters' quirks."""
    if args.max_read is not None and not 1 <= args.max_read <= MODBUS_MAX_READ:
        raise UsageError(f"--max-read must be 1..{MODBUS_MAX_READ}")
    try:
        missing = parse_registers(args.lack)
    except ValueError as exc:
        raise UsageError(f"--lack: {exc}") from None
    first = None if args.identification_from == "none" else int(args.identification_from)
    return Quirks(max_read_registers=args.max_read or MODBUS_MAX_READ, missing=missing,
                  identification_first=first)


def load_dump(path: str) -> RegisterDump:
    try:
        with open(path, encoding="utf-8") as f:
            return from_json(f.read())
    except OSError as exc:
        raise UsageError(f"--from-dump {path}: {exc.strerror}") from None
    except DumpError as exc:
        raise UsageError(f"--from-dump {path}: {exc}") from None


async def run_simulator(args: argparse.Namespace) -> int:
    units = parse_units(args.units)
    types = parse_types(args.system_type, len(units))
    if not (args.tcp or args.rtu_over_tcp or args.pty):
        raise UsageError("give at least one of --tcp, --rtu-over-tcp, --pty")
    endpoints_tcp = [parse_host_port(t) for t in args.tcp]
    endpoints_rtu = [parse_host_port(t) for t in args.rtu_over_tcp]
    if args.from_dump and args.fault:
        raise UsageError("--fault wires a simulated meter; a dump is a real meter's registers")
    if args.from_dump:
        meter = DumpedMeter(load_dump(args.from_dump))
        sim = Simulator({meter.unit: meter})
        units, types = [meter.unit], [meter.setup.system_type]
    else:
        sim = Simulator.build(units, types, frozen=args.frozen,
                              per_phase_without_neutral=args.per_phase_without_neutral)
        quirks = quirks_from_args(args)
        for simulated in sim.meters.values():
            simulated.quirks = quirks
        try:
            for text in args.fault:
                fault = parse_fault(text)
                for simulated in sim.meters.values():
                    apply_fault(simulated, fault)
        except FaultError as exc:
            raise UsageError(str(exc)) from None
    stop = asyncio.Event()
    install_stop_signals(stop)
    try:
        for host, port in endpoints_tcp:
            h, p = await sim.serve_tcp(host, port)
            print(f"modbus-tcp {h}:{p}", flush=True)
        for host, port in endpoints_rtu:
            h, p = await sim.serve_rtu_over_tcp(host, port)
            print(f"rtu-over-tcp {h}:{p}", flush=True)
        if args.pty:
            print(f"pty {await sim.serve_pty()}", flush=True)
    except OSError as exc:
        await sim.stop()
        print(f"error: cannot listen: {exc}", file=sys.stderr)
        return 2
    desc = ", ".join(f"unit {u} type {t}" for u, t in zip(units, types, strict=True))
    if args.fault:
        desc += f", wired with {', '.join(args.fault)}"
    print(f"serving {desc} (Ctrl-C to stop)", flush=True)
    sim.start_clock()
    await stop.wait()
    await sim.stop()
    return 0
