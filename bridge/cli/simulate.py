"""``python -m bridge simulate``: serve simulated meters until stopped."""

from __future__ import annotations

import argparse
import asyncio
import sys

from bridge.app.service import install_stop_signals
from bridge.cli.args import UsageError, parse_host_port, parse_units
from bridge.meters.series4000 import points as s4k
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


async def run_simulator(args: argparse.Namespace) -> int:
    units = parse_units(args.units)
    types = parse_types(args.system_type, len(units))
    if not (args.tcp or args.rtu_over_tcp or args.pty):
        raise UsageError("give at least one of --tcp, --rtu-over-tcp, --pty")
    endpoints_tcp = [parse_host_port(t) for t in args.tcp]
    endpoints_rtu = [parse_host_port(t) for t in args.rtu_over_tcp]
    sim = Simulator.build(units, types, frozen=args.frozen,
                          per_phase_without_neutral=args.per_phase_without_neutral)
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
    print(f"serving {desc} (Ctrl-C to stop)", flush=True)
    sim.start_clock()
    await stop.wait()
    await sim.stop()
    return 0
